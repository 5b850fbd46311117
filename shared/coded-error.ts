/**
 * The base of the project's typed errors (StorageError, CryptoError, SessionError, ClientError):
 * a stable `code` that tests and the wire mapping switch on, never the message text.
 */
export class CodedError<C extends string> extends Error {
  constructor(
    readonly code: C,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
