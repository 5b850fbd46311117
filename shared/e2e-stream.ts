/**
 * End-to-end encrypted files (docs/protocol-v4.md §5.9): a streaming AEAD in the design of
 * Tink's AES-GCM-HKDF streaming AEAD, which follows the STREAM construction of Hoang,
 * Reyhanitabar, Rogaway and Vizár ("Online Authenticated-Encryption and its Nonce-Reuse
 * Misuse-Resistance", CRYPTO 2015), as age does with ChaCha20-Poly1305:
 *
 *   header   = "sft-e2e" 0x01 (8 bytes) ‖ salt (32 random bytes) ‖ nonce prefix (7 random bytes)
 *   key      = HKDF-SHA256(ikm = the 32-byte secret, salt, info = "sft-e2e v1" NUL ‖ file name)
 *   segment i = AES-256-GCM(key, nonce = prefix ‖ u32 big-endian i ‖ last ? 0x01 : 0x00,
 *               64 KiB of plaintext, the last one shorter) ‖ its 16-byte tag
 *
 * A fresh salt gives every file its own key, so nonces never repeat under one key. The counter
 * fixes each segment's place (no reordering or dropping), the last-segment flag makes
 * truncation and appending fail, and the file name in the key binds the content to its name (a
 * server cannot hand out one of a client's files under another's name). An empty file is one
 * empty last segment.
 */
import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { CodedError } from './coded-error';

export const E2E_MAGIC = Buffer.from('sft-e2e\x01', 'latin1');
export const E2E_SECRET_SIZE = 32;
/** Plaintext bytes per segment. */
export const E2E_SEGMENT_SIZE = 64 * 1024;
const SALT_SIZE = 32;
const NONCE_PREFIX_SIZE = 7;
const TAG_SIZE = 16;
export const E2E_HEADER_SIZE = E2E_MAGIC.length + SALT_SIZE + NONCE_PREFIX_SIZE;
const KEY_INFO = 'sft-e2e v1\0';
const PRIVATE_FILE = 0o600;

export type E2eErrorCode =
  /** Not a file of this format, or cut to a size no encrypted file has. */
  | 'E2E_FORMAT'
  /** A segment failed its tag: altered, truncated, reordered, another key or another name. */
  | 'E2E_AUTH';

export class E2eError extends CodedError<E2eErrorCode> {
  override readonly name = 'E2eError';
}

/** Segments of a file of `plainSize` bytes (at least one). */
function segmentsFor(plainSize: number): number {
  return Math.max(1, Math.ceil(plainSize / E2E_SEGMENT_SIZE));
}

export function ciphertextSize(plainSize: number): number {
  return E2E_HEADER_SIZE + plainSize + TAG_SIZE * segmentsFor(plainSize);
}

/** The plaintext size of an encrypted file of `cipherSize` bytes, or undefined if none has it. */
export function plaintextSize(cipherSize: number): number | undefined {
  const body = cipherSize - E2E_HEADER_SIZE;
  if (body < TAG_SIZE) return undefined;
  const segments = Math.ceil(body / (E2E_SEGMENT_SIZE + TAG_SIZE));
  const plain = body - TAG_SIZE * segments;
  return ciphertextSize(plain) === cipherSize ? plain : undefined;
}

function deriveKey(secret: Buffer, salt: Buffer, fileName: string): Buffer {
  if (secret.length !== E2E_SECRET_SIZE) throw new RangeError('the secret must be 32 bytes');
  const info = Buffer.concat([Buffer.from(KEY_INFO, 'latin1'), Buffer.from(fileName, 'utf8')]);
  return Buffer.from(hkdfSync('sha256', secret, salt, info, 32));
}

function nonce(prefix: Buffer, index: number, last: boolean): Buffer {
  const out = Buffer.alloc(12);
  prefix.copy(out, 0);
  out.writeUInt32BE(index, NONCE_PREFIX_SIZE);
  out[11] = last ? 1 : 0;
  return out;
}

async function readFully(handle: FileHandle, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return buf.subarray(0, done);
}

/** Writes `to` (created exclusively, 0600) through `write`; removes it if anything fails. */
async function produce(to: string, write: (out: FileHandle) => Promise<void>): Promise<void> {
  const out = await open(to, 'wx', PRIVATE_FILE);
  try {
    await write(out);
    await out.sync();
  } catch (err) {
    await out.close().catch(() => undefined);
    await unlink(to).catch(() => undefined);
    throw err;
  }
  await out.close();
}

/** Encrypts file `from` into a new file `to` for the stored name `fileName`. */
export async function encryptFile(
  from: string,
  to: string,
  secret: Buffer,
  fileName: string,
  random: (size: number) => Buffer,
): Promise<void> {
  const input = await open(from, 'r');
  try {
    const size = (await input.stat()).size;
    const salt = random(SALT_SIZE);
    const prefix = random(NONCE_PREFIX_SIZE);
    const key = deriveKey(secret, salt, fileName);
    await produce(to, async (out) => {
      await out.write(Buffer.concat([E2E_MAGIC, salt, prefix]));
      const segments = segmentsFor(size);
      for (let i = 0; i < segments; i++) {
        const plain = await readFully(input, E2E_SEGMENT_SIZE, i * E2E_SEGMENT_SIZE);
        const last = i === segments - 1;
        if (plain.length !== (last ? size - i * E2E_SEGMENT_SIZE : E2E_SEGMENT_SIZE)) {
          throw new E2eError('E2E_FORMAT', `${from} changed while it was encrypted`);
        }
        const cipher = createCipheriv('aes-256-gcm', key, nonce(prefix, i, last));
        await out.write(Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]));
      }
    });
  } finally {
    await input.close();
  }
}

/**
 * Decrypts file `from` into a new file `to`, checking every segment. On any failure `to` is
 * removed and an E2eError says why: no unauthenticated byte is left behind.
 */
export async function decryptFile(
  from: string,
  to: string,
  secret: Buffer,
  fileName: string,
): Promise<void> {
  const input = await open(from, 'r');
  try {
    const size = (await input.stat()).size;
    const plainSize = plaintextSize(size);
    const header = await readFully(input, E2E_HEADER_SIZE, 0);
    if (plainSize === undefined || !header.subarray(0, E2E_MAGIC.length).equals(E2E_MAGIC)) {
      throw new E2eError('E2E_FORMAT', 'not an end-to-end encrypted file of this format');
    }
    const salt = header.subarray(E2E_MAGIC.length, E2E_MAGIC.length + SALT_SIZE);
    const prefix = header.subarray(E2E_MAGIC.length + SALT_SIZE);
    const key = deriveKey(secret, salt, fileName);
    await produce(to, async (out) => {
      const segments = segmentsFor(plainSize);
      for (let i = 0; i < segments; i++) {
        const last = i === segments - 1;
        const plainLength = last ? plainSize - i * E2E_SEGMENT_SIZE : E2E_SEGMENT_SIZE;
        const at = E2E_HEADER_SIZE + i * (E2E_SEGMENT_SIZE + TAG_SIZE);
        const sealed = await readFully(input, plainLength + TAG_SIZE, at);
        const decipher = createDecipheriv('aes-256-gcm', key, nonce(prefix, i, last));
        decipher.setAuthTag(sealed.subarray(plainLength));
        let plain: Buffer;
        try {
          plain = Buffer.concat([
            decipher.update(sealed.subarray(0, plainLength)),
            decipher.final(),
          ]);
        } catch {
          throw new E2eError(
            'E2E_AUTH',
            `segment ${i} does not authenticate: the file was altered, or it was encrypted ` +
              'with another key or under another name',
          );
        }
        await out.write(plain);
      }
    });
  } finally {
    await input.close();
  }
}
