/**
 * Client errors: one class, one table from error code to process exit code. Callers and tests
 * branch on `code`; the message is for people and says what failed and what to do.
 */
import { CodedError } from '../shared/coded-error';
import { ExitCode } from '../shared/exit-codes';

export { ExitCode } from '../shared/exit-codes';

export const ClientErrorCode = {
  USAGE: 'USAGE',
  CONFIG_MISSING: 'CONFIG_MISSING',
  CONFIG_UNREADABLE: 'CONFIG_UNREADABLE',
  CONFIG_WRITE_FAILED: 'CONFIG_WRITE_FAILED',
  BAD_SERVER_ADDRESS: 'BAD_SERVER_ADDRESS',
  BAD_CLIENT_NAME: 'BAD_CLIENT_NAME',
  BAD_CLIENT_ID: 'BAD_CLIENT_ID',
  BAD_PRIVATE_KEY: 'BAD_PRIVATE_KEY',
  MISSING_FILE_PATH: 'MISSING_FILE_PATH',
  FILE_UNREADABLE: 'FILE_UNREADABLE',
  FILE_CHANGED: 'FILE_CHANGED',
  FILE_TOO_LARGE: 'FILE_TOO_LARGE',
  BAD_FILE_NAME: 'BAD_FILE_NAME',
  DUPLICATE_FILE_NAME: 'DUPLICATE_FILE_NAME',
  CONNECT_REFUSED: 'CONNECT_REFUSED',
  CONNECT_TIMEOUT: 'CONNECT_TIMEOUT',
  CONNECT_FAILED: 'CONNECT_FAILED',
  HOST_NOT_FOUND: 'HOST_NOT_FOUND',
  CONNECTION_LOST: 'CONNECTION_LOST',
  RESPONSE_TIMEOUT: 'RESPONSE_TIMEOUT',
  /** The server's byte stream cannot be framed any more (§9 framing error). */
  PROTOCOL_VIOLATION: 'PROTOCOL_VIOLATION',
  REJECTED: 'REJECTED',
  SERVER_ERROR: 'SERVER_ERROR',
  CHECKSUM_FAILED: 'CHECKSUM_FAILED',
  /** Version 4: the server's fingerprint is not the one pinned for it (docs/protocol-v4.md §2). */
  IDENTITY_MISMATCH: 'IDENTITY_MISMATCH',
  /** Version 4: a server known or required to speak v4 answered as v3 only. */
  DOWNGRADE_REFUSED: 'DOWNGRADE_REFUSED',
  /** Version 4: the server has no file of that name for this client. */
  NOT_FOUND: 'NOT_FOUND',
  /** Version 4: the server's signed key set is forged, malformed or names its key expired. */
  KEY_SET_INVALID: 'KEY_SET_INVALID',
  /** `get` would replace an existing file without --force. */
  OUTPUT_EXISTS: 'OUTPUT_EXISTS',
  /** An end-to-end encrypted file does not decrypt: altered, or another key (docs/client.md). */
  DECRYPT_FAILED: 'DECRYPT_FAILED',
  INTERNAL: 'INTERNAL',
} as const;
export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

const EXIT_CODE_OF: { readonly [C in ClientErrorCode]: ExitCode } = {
  USAGE: ExitCode.USAGE,
  CONFIG_MISSING: ExitCode.USAGE,
  CONFIG_UNREADABLE: ExitCode.USAGE,
  CONFIG_WRITE_FAILED: ExitCode.USAGE,
  BAD_SERVER_ADDRESS: ExitCode.USAGE,
  BAD_CLIENT_NAME: ExitCode.USAGE,
  BAD_CLIENT_ID: ExitCode.USAGE,
  BAD_PRIVATE_KEY: ExitCode.USAGE,
  MISSING_FILE_PATH: ExitCode.USAGE,
  FILE_UNREADABLE: ExitCode.USAGE,
  FILE_CHANGED: ExitCode.USAGE,
  FILE_TOO_LARGE: ExitCode.USAGE,
  BAD_FILE_NAME: ExitCode.USAGE,
  DUPLICATE_FILE_NAME: ExitCode.USAGE,
  CONNECT_REFUSED: ExitCode.CONNECTION,
  CONNECT_TIMEOUT: ExitCode.CONNECTION,
  CONNECT_FAILED: ExitCode.CONNECTION,
  HOST_NOT_FOUND: ExitCode.CONNECTION,
  CONNECTION_LOST: ExitCode.CONNECTION,
  RESPONSE_TIMEOUT: ExitCode.CONNECTION,
  PROTOCOL_VIOLATION: ExitCode.REJECTED,
  REJECTED: ExitCode.REJECTED,
  SERVER_ERROR: ExitCode.REJECTED,
  CHECKSUM_FAILED: ExitCode.CHECKSUM,
  IDENTITY_MISMATCH: ExitCode.IDENTITY_MISMATCH,
  DOWNGRADE_REFUSED: ExitCode.IDENTITY_MISMATCH,
  NOT_FOUND: ExitCode.REJECTED,
  KEY_SET_INVALID: ExitCode.IDENTITY_MISMATCH,
  OUTPUT_EXISTS: ExitCode.USAGE,
  DECRYPT_FAILED: ExitCode.CHECKSUM,
  INTERNAL: ExitCode.FAILURE,
};

export function exitCodeOf(code: ClientErrorCode): ExitCode {
  return EXIT_CODE_OF[code];
}

/** Where in a config file a problem is (1-based line). */
export interface ConfigLocation {
  readonly file: string;
  readonly line?: number;
}

export interface ClientErrorOptions {
  /** What the user can do about it, printed after the message. */
  readonly hint?: string;
  readonly location?: ConfigLocation;
  readonly cause?: unknown;
}

export class ClientError extends CodedError<ClientErrorCode> {
  override readonly name = 'ClientError';
  readonly exitCode: ExitCode;
  readonly hint: string | undefined;
  readonly location: ConfigLocation | undefined;

  constructor(code: ClientErrorCode, message: string, options: ClientErrorOptions = {}) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause });
    this.exitCode = exitCodeOf(code);
    this.hint = options.hint;
    this.location = options.location;
  }
}

export function clientError(
  code: ClientErrorCode,
  message: string,
  options?: ClientErrorOptions,
): ClientError {
  return new ClientError(code, message, options);
}

export function isClientError(err: unknown): err is ClientError {
  return err instanceof ClientError;
}

/** A config-file error: the message is prefixed with `file:line` so people can find it. */
export function configError(
  code: ClientErrorCode,
  location: ConfigLocation,
  message: string,
  hint?: string,
): ClientError {
  const where = location.line === undefined ? location.file : `${location.file}:${location.line}`;
  return new ClientError(code, `${where}: ${message}`, { location, hint });
}

/** Any error as a ClientError; unexpected ones become INTERNAL (exit 1). */
export function toClientError(err: unknown): ClientError {
  if (isClientError(err)) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new ClientError(ClientErrorCode.INTERNAL, `unexpected error: ${message}`, {
    cause: err,
    hint: 'this is a bug in sft-client; run again with --verbose and report the output',
  });
}
