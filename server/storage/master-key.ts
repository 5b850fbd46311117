/**
 * Keys at rest: the optional master key, and sealing of the `AESKey` column.
 *
 * A sealed column value is `version (1) ‖ nonce (12) ‖ ciphertext (32) ‖ GCM tag (16)` under
 * AES-256-GCM with the master key, a random nonce per write, and the client id as associated
 * data, so a sealed key copied onto another client's row does not open. A plain value (written
 * before a master key was configured) is exactly the 32 raw key bytes; the two forms differ in
 * length, so reading needs no extra column. No message here ever contains key bytes.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { errnoCode } from '../../shared/errno';
import { decodeBase64 } from '../../shared/validators';
import { StorageError, StorageErrorCode } from './types';

export const MASTER_KEY_BYTES = 32;
/** Environment variable holding the master key (32 bytes, base64). */
export const MASTER_KEY_ENV = 'SFT_MASTER_KEY';

const SEAL_ALGORITHM = 'aes-256-gcm';
/** First byte of a sealed value; a later format gets a new number. */
export const SEALED_FORMAT_V1 = 0x01;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** The protocol's AES key length (§2: a fresh random 32-byte key). */
export const PLAIN_AES_KEY_BYTES = 32;
export const SEALED_AES_KEY_BYTES = 1 + NONCE_BYTES + PLAIN_AES_KEY_BYTES + TAG_BYTES;

function masterKeyError(message: string, cause?: unknown): StorageError {
  return new StorageError(StorageErrorCode.MASTER_KEY, message, cause ? { cause } : undefined);
}

/** Decodes a base64 master key; `source` names where it came from (never the value). */
export function parseMasterKey(text: string, source: string): Buffer {
  const compact = text.replace(/\s+/g, '');
  if (compact.length === 0) throw masterKeyError(`master key from ${source} is empty`);
  const key = decodeBase64(compact, { requirePadding: true });
  if (key === undefined) throw masterKeyError(`master key from ${source} is not valid base64`);
  if (key.length !== MASTER_KEY_BYTES) {
    throw masterKeyError(
      `master key from ${source} must decode to ${MASTER_KEY_BYTES} bytes, got ${key.length} ` +
        `(make one with: openssl rand -base64 ${MASTER_KEY_BYTES})`,
    );
  }
  return key;
}

/**
 * The master key from `file` (e.g. `--master-key-file`) or else from `env` (the value of
 * SFT_MASTER_KEY); undefined when neither is set. An empty `env` counts as unset. The file wins
 * when both are given: an explicit flag overrides the environment.
 */
export function loadMasterKey(options: { file?: string; env?: string }): Buffer | undefined {
  if (options.file !== undefined) {
    let text: string;
    try {
      text = readFileSync(options.file, 'utf8');
    } catch (err) {
      const reason = errnoCode(err) ?? 'unreadable';
      throw masterKeyError(`cannot read master key file ${options.file}: ${reason}`, err);
    }
    return parseMasterKey(text, `file ${options.file}`);
  }
  if (options.env !== undefined && options.env.trim() !== '') {
    return parseMasterKey(options.env, `environment variable ${MASTER_KEY_ENV}`);
  }
  return undefined;
}

export type StoredKeyForm = 'plain' | 'sealed';

/** Which form a stored `AESKey` value has; throws MASTER_KEY for anything unrecognised. */
export function storedKeyForm(stored: Buffer): StoredKeyForm {
  if (stored.length === PLAIN_AES_KEY_BYTES) return 'plain';
  if (stored.length === SEALED_AES_KEY_BYTES && stored[0] === SEALED_FORMAT_V1) return 'sealed';
  throw masterKeyError(`stored AES key has an unknown format (${stored.length} bytes)`);
}

/** Seals `aesKey` for the row of `clientId`. `nonce` is injectable for reproducible tests. */
export function sealAesKey(
  masterKey: Buffer,
  clientId: Buffer,
  aesKey: Buffer,
  nonce: Buffer = randomBytes(NONCE_BYTES),
): Buffer {
  if (aesKey.length !== PLAIN_AES_KEY_BYTES) {
    throw masterKeyError(`AES key to store must be ${PLAIN_AES_KEY_BYTES} bytes`);
  }
  const cipher = createCipheriv(SEAL_ALGORITHM, masterKey, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(clientId);
  const body = Buffer.concat([cipher.update(aesKey), cipher.final()]);
  return Buffer.concat([Buffer.of(SEALED_FORMAT_V1), nonce, body, cipher.getAuthTag()]);
}

/** Opens a sealed value; a wrong master key (or a value moved to another row) → MASTER_KEY. */
export function openSealedAesKey(masterKey: Buffer, clientId: Buffer, sealed: Buffer): Buffer {
  const nonce = sealed.subarray(1, 1 + NONCE_BYTES);
  const body = sealed.subarray(1 + NONCE_BYTES, sealed.length - TAG_BYTES);
  const tag = sealed.subarray(sealed.length - TAG_BYTES);
  const decipher = createDecipheriv(SEAL_ALGORITHM, masterKey, nonce, {
    authTagLength: TAG_BYTES,
  });
  decipher.setAAD(clientId);
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(body), decipher.final()]);
  } catch (err) {
    throw masterKeyError(
      `stored AES key of client ${clientId.toString('hex')} does not open with the configured ` +
        'master key (wrong master key, or the row was tampered with)',
      err,
    );
  }
}

/**
 * The clear AES key of a stored column value. A sealed value without a master key → MASTER_KEY
 * (the server cannot use it); a plain value is returned as is (the caller re-seals it).
 */
export function unsealStoredAesKey(
  masterKey: Buffer | undefined,
  clientId: Buffer,
  stored: Buffer,
): { readonly key: Buffer; readonly form: StoredKeyForm } {
  const form = storedKeyForm(stored);
  if (form === 'plain') return { key: stored, form };
  if (!masterKey) {
    throw masterKeyError(
      `stored AES key of client ${clientId.toString('hex')} is encrypted, but no master key ` +
        `is configured (--master-key-file or ${MASTER_KEY_ENV})`,
    );
  }
  return { key: openSealedAesKey(masterKey, clientId, stored), form };
}
