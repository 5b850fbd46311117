/** The key set as sent (docs/protocol-v4.md §4.14): every key record, signed by the current key. */
import { createPublicKey, sign } from 'node:crypto';
import {
  KeyStatus,
  ResponseCode,
  keySetStatement,
  type KeyEntry,
  type KeySet,
} from '../../protocol/v4';
import type { Identity } from '../../shared/identity';
import { ALGORITHM, type KeyRecord, type LoadedKeys } from './key-rotation';

const STATUS: Readonly<Record<KeyRecord['status'], KeyEntry['status']>> = {
  current: KeyStatus.CURRENT,
  next: KeyStatus.NEXT,
  retired: KeyStatus.RETIRED,
};

export function signKeySet(loaded: LoadedKeys, issuedAt: number): KeySet {
  const keys: KeyEntry[] = loaded.keys.map((k) => ({
    keyId: k.id,
    algorithm: k.algorithm,
    notBefore: k.notBefore,
    notAfter: k.notAfter,
    status: STATUS[k.status],
    publicKey: Buffer.from(k.publicKey, 'base64'),
  }));
  const signature = sign(null, keySetStatement(keys, issuedAt), loaded.current.privateKey);
  return { code: ResponseCode.KEY_SET, keys, issuedAt, signature };
}

/** The set of a server that has only its one key (no key files to rotate). */
export function singleKeySet(identity: Identity, now: number): KeySet {
  const record: KeyRecord = {
    id: identity.fingerprint,
    algorithm: ALGORITHM,
    notBefore: now,
    notAfter: 0,
    status: 'current',
    publicKey: createPublicKey(identity.privateKey)
      .export({ type: 'spki', format: 'der' })
      .toString('base64'),
  };
  return signKeySet({ current: identity, next: undefined, keys: [record] }, now);
}
