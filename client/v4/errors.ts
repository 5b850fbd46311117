/** ERROR messages of a v4 server as client errors with their exit codes (docs/protocol-v4.md §6). */
import { assertNever } from '../../protocol/errors';
import {
  ResponseCode,
  WireErrorCode,
  wireErrorName,
  type ErrorMessage,
  type Response,
} from '../../protocol/v4';
import { ClientErrorCode, clientError, type ClientError } from '../errors';

function codeFor(error: WireErrorCode): ClientErrorCode {
  switch (error) {
    case WireErrorCode.NAME_TAKEN:
    case WireErrorCode.INVALID_NAME:
    case WireErrorCode.RATE_LIMITED:
    case WireErrorCode.MIGRATION_REFUSED:
    case WireErrorCode.ALREADY_REGISTERED:
    case WireErrorCode.NOT_AUTHENTICATED:
    case WireErrorCode.BAD_FILE_NAME:
    case WireErrorCode.FILE_TOO_LARGE:
    case WireErrorCode.QUOTA_EXCEEDED:
    case WireErrorCode.BUSY:
      return ClientErrorCode.REJECTED;
    case WireErrorCode.DIGEST_MISMATCH:
      return ClientErrorCode.CHECKSUM_FAILED;
    case WireErrorCode.NOT_FOUND:
      return ClientErrorCode.NOT_FOUND;
    case WireErrorCode.STORAGE:
      return ClientErrorCode.SERVER_ERROR;
    case WireErrorCode.BAD_MESSAGE:
    case WireErrorCode.UNEXPECTED:
    case WireErrorCode.SIZE_MISMATCH:
    case WireErrorCode.UNSUPPORTED_VERSION:
    case WireErrorCode.FRAMING:
      return ClientErrorCode.PROTOCOL_VIOLATION;
    default:
      return assertNever(error, 'v4 error code');
  }
}

export function serverRefusal(remote: string, what: string, message: ErrorMessage): ClientError {
  return clientError(
    codeFor(message.error),
    `${remote} refused ${what}: ${wireErrorName(message.error)}: ${message.text}`,
  );
}

/** The response if it is the one expected, else the matching ClientError. */
export function expect<C extends Response['code']>(
  remote: string,
  what: string,
  response: Response,
  code: C,
): Extract<Response, { code: C }> {
  if (response.code === code) return response as Extract<Response, { code: C }>;
  throw expectFailure(remote, what, response);
}

/** The error for a response that is not `REGISTERED` etc.: the server's refusal or a violation. */
export function expectFailure(remote: string, what: string, response: Response): Error {
  if (response.code === ResponseCode.ERROR) return serverRefusal(remote, what, response);
  return clientError(
    ClientErrorCode.PROTOCOL_VIOLATION,
    `${remote} answered ${what} with message 0x${response.code.toString(16)}`,
  );
}
