/**
 * Typed protocol errors. One class, one factory; callers branch on `code`, never on text.
 * `fatal` marks framing errors (§9): the stream cannot be resynchronised and must be closed.
 */

export const ProtocolErrorCode = {
  /** Declared payload size over the limit for its code: framing error, connection closes. */
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  /** The decoder already failed on a framing error and accepts no more input. */
  DECODER_FAILED: 'DECODER_FAILED',
  /** A fixed-size message with the wrong payload size, or a size field out of range. */
  BAD_SIZE: 'BAD_SIZE',
  /** A string255 field without NUL, empty, invalid UTF-8 or with control characters (§2). */
  BAD_STRING: 'BAD_STRING',
  /** A file name that is not a plain base name (§9). */
  BAD_FILE_NAME: 'BAD_FILE_NAME',
  /** A code that is not in §3 (requests) or §4 (responses). */
  UNKNOWN_CODE: 'UNKNOWN_CODE',
  /** content size / orig size relation of a 1028 broken (§5, §9). */
  BAD_CONTENT_SIZE: 'BAD_CONTENT_SIZE',
  /** packet number outside 1..total, or total 0 (§5). */
  BAD_PACKET_NUMBER: 'BAD_PACKET_NUMBER',
} as const;
export type ProtocolErrorCode = (typeof ProtocolErrorCode)[keyof typeof ProtocolErrorCode];

const FATAL_CODES: ReadonlySet<ProtocolErrorCode> = new Set([
  ProtocolErrorCode.PAYLOAD_TOO_LARGE,
  ProtocolErrorCode.DECODER_FAILED,
]);

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  /** True when the byte stream can no longer be trusted (framing error, §9). */
  readonly fatal: boolean;

  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
    /** The message code the error belongs to, when the header was read. */
    readonly messageCode?: number,
  ) {
    super(message);
    this.fatal = FATAL_CODES.has(code);
  }
}

export function protocolError(
  code: ProtocolErrorCode,
  message: string,
  messageCode?: number,
): ProtocolError {
  return new ProtocolError(code, message, messageCode);
}

export function isProtocolError(err: unknown): err is ProtocolError {
  return err instanceof ProtocolError;
}

export function assertNever(value: never, what = 'value'): never {
  throw new Error(`unexpected ${what}: ${JSON.stringify(value)}`);
}
