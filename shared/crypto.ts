/**
 * Crypto of protocol version 3 on Node's built-in `crypto` (docs/protocol.md §2, §5):
 * AES-256-CBC with an all-zero IV and PKCS#7 padding for file content, RSA-1024 (e = 17, so the
 * SPKI DER is exactly 160 bytes) with OAEP-SHA-1 for wrapping the AES key.
 */
import {
  constants,
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  generateKeyPairSync,
  privateDecrypt,
  publicEncrypt,
  type Cipher,
  type Decipher,
  type KeyObject,
} from 'node:crypto';
import { Size } from '../protocol/v3/constants';
import { CodedError } from './coded-error';

export const AES_ALGORITHM = 'aes-256-cbc';
/** §5: the IV is all zeros (a known weakness, §10). */
export const ZERO_IV: Buffer = Buffer.alloc(Size.AES_BLOCK);
export const RSA_MODULUS_BITS = 1024;
/** e = 17 keeps the SPKI DER at exactly 160 bytes; 65537 would need 162 (§2). */
export const RSA_PUBLIC_EXPONENT = 17;
const OAEP_HASH = 'sha1';

export const CryptoErrorCode = {
  BAD_PUBLIC_KEY: 'BAD_PUBLIC_KEY',
  BAD_PRIVATE_KEY: 'BAD_PRIVATE_KEY',
  BAD_AES_KEY: 'BAD_AES_KEY',
  UNWRAP_FAILED: 'UNWRAP_FAILED',
  BAD_PADDING: 'BAD_PADDING',
} as const;
export type CryptoErrorCode = (typeof CryptoErrorCode)[keyof typeof CryptoErrorCode];

export class CryptoError extends CodedError<CryptoErrorCode> {
  override readonly name = 'CryptoError';
}

function checkAesKey(key: Buffer): void {
  if (key.length !== Size.AES_KEY) {
    throw new CryptoError(CryptoErrorCode.BAD_AES_KEY, `AES key must be ${Size.AES_KEY} bytes`);
  }
}

/** A streaming encryptor for one upload (PKCS#7 padding added by `final`). */
export function createFileCipher(key: Buffer): Cipher {
  checkAesKey(key);
  return createCipheriv(AES_ALGORITHM, key, ZERO_IV);
}

/** A streaming decryptor for one upload; `final` throws on bad padding. */
export function createFileDecipher(key: Buffer): Decipher {
  checkAesKey(key);
  return createDecipheriv(AES_ALGORITHM, key, ZERO_IV);
}

export function aesEncrypt(key: Buffer, plaintext: Buffer): Buffer {
  const c = createFileCipher(key);
  return Buffer.concat([c.update(plaintext), c.final()]);
}

export function aesDecrypt(key: Buffer, ciphertext: Buffer): Buffer {
  const d = createFileDecipher(key);
  try {
    return Buffer.concat([d.update(ciphertext), d.final()]);
  } catch {
    throw new CryptoError(CryptoErrorCode.BAD_PADDING, 'ciphertext has bad padding or length');
  }
}

export interface RsaKeyPair {
  /** SPKI DER, exactly 160 bytes for RSA-1024 with e = 17. */
  readonly publicKeyDer: Buffer;
  /** PKCS#8 DER. */
  readonly privateKeyDer: Buffer;
}

export function generateRsaKeyPairSync(): RsaKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: RSA_MODULUS_BITS,
    publicExponent: RSA_PUBLIC_EXPONENT,
    publicKeyEncoding: { type: 'spki', format: 'der' },
    privateKeyEncoding: { type: 'pkcs8', format: 'der' },
  });
  return { publicKeyDer: publicKey, privateKeyDer: privateKey };
}

/** Off the main thread: RSA generation takes tens of milliseconds. */
export function generateRsaKeyPair(): Promise<RsaKeyPair> {
  return new Promise((resolve, reject) => {
    generateKeyPair(
      'rsa',
      {
        modulusLength: RSA_MODULUS_BITS,
        publicExponent: RSA_PUBLIC_EXPONENT,
        publicKeyEncoding: { type: 'spki', format: 'der' },
        privateKeyEncoding: { type: 'pkcs8', format: 'der' },
      },
      (err, publicKey, privateKey) =>
        err ? reject(err) : resolve({ publicKeyDer: publicKey, privateKeyDer: privateKey }),
    );
  });
}

/** Pads an SPKI DER into the 160-byte public key field (§2). */
export function encodePublicKeyField(spkiDer: Buffer): Buffer {
  if (spkiDer.length > Size.PUBLIC_KEY) {
    throw new CryptoError(
      CryptoErrorCode.BAD_PUBLIC_KEY,
      `public key DER is ${spkiDer.length} bytes; the field holds ${Size.PUBLIC_KEY} (use e = 17)`,
    );
  }
  const field = Buffer.alloc(Size.PUBLIC_KEY);
  spkiDer.copy(field);
  return field;
}

const DER_SEQUENCE = 0x30;
const DER_LONG_FORM = 0x80;

/** Length of the DER SEQUENCE at the start of `field`, or -1 if it is not one that fits. */
function derLength(field: Buffer): number {
  if (field.length < 2 || field[0] !== DER_SEQUENCE) return -1;
  const first = field[1];
  if (first < DER_LONG_FORM) return 2 + first;
  const lengthBytes = first & ~DER_LONG_FORM;
  if (lengthBytes === 0 || lengthBytes > 2 || field.length < 2 + lengthBytes) return -1;
  let len = 0;
  for (let i = 0; i < lengthBytes; i++) len = len * 256 + field[2 + i];
  return 2 + lengthBytes + len;
}

/**
 * Parses the 160-byte public key field (§2): an RSA SPKI DER at the start, zeros after it,
 * modulus of exactly 1024 bits (larger keys cannot fit the field together with their wrapped
 * AES key in a 128-byte slot).
 */
export function parsePublicKeyField(field: Buffer): KeyObject {
  const bad = (why: string): CryptoError => new CryptoError(CryptoErrorCode.BAD_PUBLIC_KEY, why);
  const len = derLength(field);
  if (len < 0 || len > field.length)
    throw bad('public key field does not start with a DER sequence');
  for (let i = len; i < field.length; i++) {
    if (field[i] !== 0) throw bad('public key field has bytes after the DER');
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: field.subarray(0, len), format: 'der', type: 'spki' });
  } catch {
    throw bad('public key is not a valid SPKI DER');
  }
  if (key.asymmetricKeyType !== 'rsa') throw bad('public key is not RSA');
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits !== RSA_MODULUS_BITS)
    throw bad(`RSA key has ${bits} bits; ${RSA_MODULUS_BITS} required`);
  // e = 1 makes "encryption" the identity: the wrapped AES key would travel readable.
  const e = key.asymmetricKeyDetails?.publicExponent ?? BigInt(0);
  if (e < BigInt(3) || e % BigInt(2) === BigInt(0)) throw bad('RSA public exponent is not usable');
  return key;
}

/** RSA-OAEP (SHA-1, MGF1-SHA-1) wrap of an AES key: 128 bytes for RSA-1024 (§2). */
export function wrapAesKey(publicKey: KeyObject, aesKey: Buffer): Buffer {
  checkAesKey(aesKey);
  return publicEncrypt(
    { key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: OAEP_HASH },
    aesKey,
  );
}

export function unwrapAesKey(privateKey: KeyObject, wrapped: Buffer): Buffer {
  let key: Buffer;
  try {
    key = privateDecrypt(
      { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: OAEP_HASH },
      wrapped,
    );
  } catch {
    throw new CryptoError(
      CryptoErrorCode.UNWRAP_FAILED,
      'wrapped AES key does not decrypt with our private key',
    );
  }
  checkAesKey(key);
  return key;
}

/** Loads a PKCS#8 DER private key (as stored base64 in me.info / priv.key, §8). */
export function loadPrivateKey(pkcs8Der: Buffer): KeyObject {
  try {
    const key = createPrivateKey({ key: pkcs8Der, format: 'der', type: 'pkcs8' });
    if (key.asymmetricKeyType !== 'rsa') throw new Error('not RSA');
    return key;
  } catch {
    throw new CryptoError(
      CryptoErrorCode.BAD_PRIVATE_KEY,
      'private key is not an RSA PKCS#8 DER key',
    );
  }
}

/** The SPKI DER of a private key's public half. */
export function publicKeyDerOf(privateKey: KeyObject): Buffer {
  return createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
}
