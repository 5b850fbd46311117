/**
 * Field codecs shared by requests and responses: string255 (§2) and the base-name rule (§9).
 */
import { Size } from './constants';
import { ProtocolErrorCode, protocolError } from '../errors';
import { CONTROL_CHARACTERS as CONTROL_CHARS, fileNameProblem } from '../../shared/validators';

export { fileNameProblem };

const NUL = 0x00;
// ignoreBOM keeps a leading U+FEFF in the text: the default strips it, so the wire names
// "\uFEFFa" and "a" would decode to the same string and encode(decode(x)) would not be x.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** Longest text a string255 can hold: one byte is kept for the terminating NUL (§2). */
export const STRING255_MAX_TEXT = Size.STRING255 - 1;

// Control characters (C0, DEL, C1) may not appear in text (§2): one definition for the whole
// project, in shared/validators.

/**
 * Reads a string255 at `offset`. The text ends at the first NUL; what follows it is not read,
 * because deployed clients leave stale bytes there and §9 asks us to accept what they send.
 */
export function decodeString255(buf: Buffer, offset: number, messageCode?: number): string {
  const end = offset + Size.STRING255;
  const nul = buf.indexOf(NUL, offset);
  if (nul < 0 || nul >= end) {
    throw protocolError(ProtocolErrorCode.BAD_STRING, 'string field has no NUL', messageCode);
  }
  if (nul === offset) {
    throw protocolError(ProtocolErrorCode.BAD_STRING, 'string field is empty', messageCode);
  }
  let text: string;
  try {
    text = utf8.decode(buf.subarray(offset, nul));
  } catch {
    throw protocolError(ProtocolErrorCode.BAD_STRING, 'string field is not UTF-8', messageCode);
  }
  if (CONTROL_CHARS.test(text)) {
    throw protocolError(
      ProtocolErrorCode.BAD_STRING,
      'string field has control characters',
      messageCode,
    );
  }
  return text;
}

/** Checks that `text` can be sent as a string255; returns its UTF-8 bytes. */
export function string255Bytes(text: string, messageCode?: number): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length === 0 || bytes.length > STRING255_MAX_TEXT) {
    throw protocolError(
      ProtocolErrorCode.BAD_STRING,
      `string must be 1–${STRING255_MAX_TEXT} bytes of UTF-8, got ${bytes.length}`,
      messageCode,
    );
  }
  if (CONTROL_CHARS.test(text) || bytes.toString('utf8') !== text) {
    throw protocolError(
      ProtocolErrorCode.BAD_STRING,
      'string has control characters or is not valid Unicode',
      messageCode,
    );
  }
  return bytes;
}

/** Writes `text` as a NUL-padded string255 into `target` at `offset`. */
export function encodeString255(
  text: string,
  target: Buffer,
  offset: number,
  messageCode?: number,
): void {
  const bytes = string255Bytes(text, messageCode);
  bytes.copy(target, offset);
  target.fill(NUL, offset + bytes.length, offset + Size.STRING255);
}

export function assertBaseName(name: string, messageCode?: number): string {
  const problem = fileNameProblem(name);
  if (problem !== undefined) {
    throw protocolError(ProtocolErrorCode.BAD_FILE_NAME, problem, messageCode);
  }
  return name;
}

/** Reads a string255 that must be a base file name (§9). */
export function decodeFileName(buf: Buffer, offset: number, messageCode?: number): string {
  return assertBaseName(decodeString255(buf, offset, messageCode), messageCode);
}

/** The PKCS#7 ciphertext length of `origSize` plaintext bytes under AES (§9). */
export function paddedLength(origSize: number): number {
  return (Math.floor(origSize / Size.AES_BLOCK) + 1) * Size.AES_BLOCK;
}
