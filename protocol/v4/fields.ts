/**
 * Field readers and writers of version 4 (docs/protocol-v4.md §3.2): integers little-endian,
 * strings as a u8 byte length then UTF-8, byte strings with a u16 length. A reader walks one
 * payload and fails with a ProtocolError on anything short, long or malformed.
 */
import { ProtocolErrorCode, protocolError } from '../errors';
import { CONTROL_CHARACTERS as CONTROL } from '../../shared/validators';
import { filePathProblem } from '../../shared/validators';
import { Size } from './constants';

/** Reads fields of one payload in order; `end()` insists nothing is left over. */
export class FieldReader {
  private pos = 0;

  constructor(
    private readonly buf: Buffer,
    private readonly messageCode: number,
  ) {}

  private need(bytes: number): number {
    if (this.pos + bytes > this.buf.length) {
      throw protocolError(
        ProtocolErrorCode.BAD_SIZE,
        `payload of ${this.buf.length} bytes ends inside a field`,
        this.messageCode,
      );
    }
    const at = this.pos;
    this.pos += bytes;
    return at;
  }

  u8(): number {
    return this.buf.readUInt8(this.need(1));
  }

  u16(): number {
    return this.buf.readUInt16LE(this.need(2));
  }

  u32(): number {
    return this.buf.readUInt32LE(this.need(4));
  }

  /** A u64 that must fit a JavaScript number exactly (2^53 - 1, about 9 PB). */
  u64(): number {
    const value = this.buf.readBigUInt64LE(this.need(8));
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw protocolError(
        ProtocolErrorCode.BAD_SIZE,
        `size ${value} is over 2^53 - 1`,
        this.messageCode,
      );
    }
    return Number(value);
  }

  /** A copy: the payload is a view into a reused buffer. */
  bytes(length: number): Buffer {
    const at = this.need(length);
    return Buffer.from(this.buf.subarray(at, at + length));
  }

  /** u16 length, then that many bytes (at most `max`). */
  sizedBytes(max: number): Buffer {
    const length = this.u16();
    if (length > max) {
      throw protocolError(
        ProtocolErrorCode.BAD_SIZE,
        `field of ${length} bytes is over ${max}`,
        this.messageCode,
      );
    }
    return this.bytes(length);
  }

  /** u8 length then UTF-8 text: 1..255 bytes, valid UTF-8, no control characters. */
  text(options: { allowEmpty?: boolean; maxBytes?: number } = {}): string {
    const length = this.u8();
    const max = options.maxBytes ?? Size.MAX_NAME;
    if ((length === 0 && !options.allowEmpty) || length > max) {
      throw protocolError(
        ProtocolErrorCode.BAD_STRING,
        `text of ${length} bytes (1..${max} allowed)`,
        this.messageCode,
      );
    }
    return decodeText(this.bytes(length), this.messageCode);
  }

  /** u16 length then UTF-8 text (error messages); control characters are allowed out. */
  longText(max: number): string {
    const raw = this.sizedBytes(max);
    return decodeText(raw, this.messageCode, { allowControl: true });
  }

  end(): void {
    if (this.pos !== this.buf.length) {
      throw protocolError(
        ProtocolErrorCode.BAD_SIZE,
        `${this.buf.length - this.pos} bytes after the last field`,
        this.messageCode,
      );
    }
  }
}

function decodeText(raw: Buffer, messageCode: number, options: { allowControl?: boolean } = {}) {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    throw protocolError(ProtocolErrorCode.BAD_STRING, 'text is not valid UTF-8', messageCode);
  }
  if (!options.allowControl && CONTROL.test(text)) {
    throw protocolError(ProtocolErrorCode.BAD_STRING, 'text has control characters', messageCode);
  }
  return text;
}

/** The bytes of a u8-length text field; throws if the text is empty, too long or has controls. */
export function textField(text: string, messageCode: number, allowEmpty = false): Buffer {
  const raw = Buffer.from(text, 'utf8');
  if ((raw.length === 0 && !allowEmpty) || raw.length > Size.MAX_NAME || CONTROL.test(text)) {
    throw protocolError(
      ProtocolErrorCode.BAD_STRING,
      `text of ${raw.length} bytes cannot be sent (1..${Size.MAX_NAME}, no control characters)`,
      messageCode,
    );
  }
  const out = Buffer.allocUnsafe(1 + raw.length);
  out.writeUInt8(raw.length, 0);
  raw.copy(out, 1);
  return out;
}

/**
 * A file name field's text must be a relative path of plain base names (docs/protocol-v4.md
 * §3.2; each part as v3 §9).
 */
export function checkFileName(name: string, messageCode: number): string {
  const problem = filePathProblem(name);
  if (problem !== undefined) {
    throw protocolError(ProtocolErrorCode.BAD_FILE_NAME, problem, messageCode);
  }
  return name;
}

export function u64Bytes(value: number): Buffer {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${value} is not a size`);
  }
  const out = Buffer.allocUnsafe(8);
  out.writeBigUInt64LE(BigInt(value), 0);
  return out;
}
