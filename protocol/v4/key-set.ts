/**
 * The server's key set (docs/protocol-v4.md §4.14): every identity key it has, will have or
 * had, with JWKS-like fields (key id = fingerprint, algorithm, not-before, not-after, status),
 * signed by the key the server presents. Bytes only: signing and checking are the callers'.
 */
import { assertNever, ProtocolErrorCode, protocolError } from '../errors';
import {
  KEY_SET_CONTEXT,
  KeyStatus,
  MAX_KEY_SET_SIGNATURE,
  MAX_KEYS_IN_SET,
  MAX_SET_PUBLIC_KEY,
  RequestCode,
  ResponseCode,
} from './constants';
import { FieldReader, textField, u64Bytes } from './fields';

type Code<C extends number> = { readonly code: C };

export type Keys = Code<typeof RequestCode.KEYS>;

export interface KeyEntry {
  /** The key's fingerprint (docs/protocol-v4.md §2.2). */
  readonly keyId: string;
  /** `Ed25519`. */
  readonly algorithm: string;
  /** ms since the epoch. */
  readonly notBefore: number;
  /** ms since the epoch; 0: no end set. */
  readonly notAfter: number;
  readonly status: KeyStatus;
  /** DER SubjectPublicKeyInfo; its fingerprint is `keyId`. */
  readonly publicKey: Buffer;
}

export type KeySet = Code<typeof ResponseCode.KEY_SET> & {
  readonly keys: readonly KeyEntry[];
  /** When the server signed it, ms since the epoch. */
  readonly issuedAt: number;
  /** By the key with status CURRENT, over keySetStatement(keys, issuedAt). */
  readonly signature: Buffer;
};

function sized(value: Buffer, max: number, code: number): Buffer {
  if (value.length > max) {
    throw protocolError(ProtocolErrorCode.BAD_SIZE, `field of ${value.length} > ${max}`, code);
  }
  const length = Buffer.allocUnsafe(2);
  length.writeUInt16LE(value.length, 0);
  return Buffer.concat([length, value]);
}

function statusOf(value: number, code: number): KeyStatus {
  switch (value) {
    case KeyStatus.CURRENT:
    case KeyStatus.NEXT:
    case KeyStatus.RETIRED:
      return value;
    default:
      throw protocolError(ProtocolErrorCode.BAD_SIZE, `key status ${value}`, code);
  }
}

/** count, entries, issued-at: the part of KEY_SET the signature covers. */
function body(keys: readonly KeyEntry[], issuedAt: number): Buffer {
  const code = ResponseCode.KEY_SET;
  if (keys.length > MAX_KEYS_IN_SET) {
    throw protocolError(ProtocolErrorCode.BAD_SIZE, `${keys.length} keys in one set`, code);
  }
  return Buffer.concat([
    Buffer.from([keys.length]),
    ...keys.flatMap((key) => [
      textField(key.keyId, code),
      textField(key.algorithm, code),
      u64Bytes(key.notBefore),
      u64Bytes(key.notAfter),
      Buffer.from([statusOf(key.status, code)]),
      sized(key.publicKey, MAX_SET_PUBLIC_KEY, code),
    ]),
    u64Bytes(issuedAt),
  ]);
}

/** The bytes the signature is over: a context string, then the body of the message. */
export function keySetStatement(keys: readonly KeyEntry[], issuedAt: number): Buffer {
  return Buffer.concat([Buffer.from(KEY_SET_CONTEXT, 'latin1'), body(keys, issuedAt)]);
}

export function keySetParts(message: KeySet): Buffer[] {
  return [
    body(message.keys, message.issuedAt),
    sized(message.signature, MAX_KEY_SET_SIGNATURE, message.code),
  ];
}

export function decodeKeySet(payload: Buffer): KeySet {
  const code = ResponseCode.KEY_SET;
  const reader = new FieldReader(payload, code);
  const count = reader.u8();
  if (count > MAX_KEYS_IN_SET) {
    throw protocolError(ProtocolErrorCode.BAD_SIZE, `${count} keys in one set`, code);
  }
  const keys: KeyEntry[] = [];
  for (let i = 0; i < count; i++) {
    keys.push({
      keyId: reader.text(),
      algorithm: reader.text(),
      notBefore: reader.u64(),
      notAfter: reader.u64(),
      status: statusOf(reader.u8(), code),
      publicKey: reader.sizedBytes(MAX_SET_PUBLIC_KEY),
    });
  }
  const issuedAt = reader.u64();
  const signature = reader.sizedBytes(MAX_KEY_SET_SIGNATURE);
  reader.end();
  return { code, keys, issuedAt, signature };
}

export function decodeKeys(payload: Buffer): Keys {
  const reader = new FieldReader(payload, RequestCode.KEYS);
  reader.end();
  return { code: RequestCode.KEYS };
}

/** Names for people and JSON. */
export function keyStatusName(status: KeyStatus): 'current' | 'next' | 'retired' {
  switch (status) {
    case KeyStatus.CURRENT:
      return 'current';
    case KeyStatus.NEXT:
      return 'next';
    case KeyStatus.RETIRED:
      return 'retired';
    default:
      return assertNever(status, 'key status');
  }
}
