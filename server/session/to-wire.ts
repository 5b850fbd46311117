/**
 * The one mapping from a typed error to what goes on the wire, what the audit trail records
 * and how loudly it is logged. Every refusal of the server passes through `toWire`.
 */
import { RequestCode, ResponseCode, Size } from '../../protocol/v3/constants';
import { ProtocolError, ProtocolErrorCode, assertNever } from '../../protocol/errors';
import type { Response } from '../../protocol/v3/messages';
import { CryptoError, CryptoErrorCode } from '../../shared/crypto';
import { SessionError, SessionErrorCode } from './session-error';
import { StorageError } from '../storage/types';
import type { AuditOutcome } from '../storage/types';

export type LogLevel = 'info' | 'warn' | 'error';

export interface WireOutcome {
  readonly response: Response;
  /** Close the connection after the response (framing errors, §9). */
  readonly close: boolean;
  /** Audit trail entry for this refusal, if the request is one that is audited. */
  readonly outcome?: AuditOutcome;
  readonly level: LogLevel;
  /** Short machine-readable reason for the log line. */
  readonly reason: string;
}

export interface RequestContext {
  /** Request code from the header (may be an unknown code). */
  readonly code: number;
  /** The header's client id (echoed by 1606, §4). */
  readonly clientId: Buffer;
}

const GENERAL_ERROR: Response = { code: ResponseCode.GENERAL_ERROR };
const REGISTRATION_FAILED: Response = { code: ResponseCode.REGISTRATION_FAILED };

/**
 * The refusal each request code has (§5): 1025/1026 → 1601, 1027 → 1606 echoing the id,
 * everything else → 1607.
 */
function refusal(ctx: RequestContext): Response {
  switch (ctx.code) {
    case RequestCode.REGISTER:
    case RequestCode.SEND_PUBLIC_KEY:
      return REGISTRATION_FAILED;
    case RequestCode.RECONNECT:
      return {
        code: ResponseCode.RECONNECT_REFUSED,
        clientId: Buffer.from(ctx.clientId.subarray(0, Size.CLIENT_ID)),
      };
    default:
      return GENERAL_ERROR;
  }
}

/** Audit outcome of a refused request of each audited code. */
function refusedOutcome(code: number): AuditOutcome | undefined {
  switch (code) {
    case RequestCode.REGISTER:
      return 'invalid_name';
    case RequestCode.SEND_PUBLIC_KEY:
      return 'key_rejected';
    case RequestCode.RECONNECT:
      return 'reconnect_refused';
    case RequestCode.SEND_FILE:
      return 'file_rejected';
    default:
      return undefined;
  }
}

function fromProtocolError(err: ProtocolError, ctx: RequestContext): WireOutcome {
  const reason = err.code;
  switch (err.code) {
    case ProtocolErrorCode.PAYLOAD_TOO_LARGE:
    case ProtocolErrorCode.DECODER_FAILED:
      return {
        response: GENERAL_ERROR,
        close: true,
        outcome: refusedOutcome(ctx.code),
        level: 'warn',
        reason,
      };
    case ProtocolErrorCode.BAD_STRING:
    case ProtocolErrorCode.BAD_FILE_NAME:
      // §5.1/§5.2/§5.3: an invalid name is refused with the code's own refusal; a bad file name
      // is a general error (§9).
      return {
        response: refusal(ctx),
        close: false,
        outcome: ctx.code === RequestCode.SEND_FILE ? 'rejected_name' : refusedOutcome(ctx.code),
        level: 'warn',
        reason,
      };
    case ProtocolErrorCode.BAD_SIZE:
    case ProtocolErrorCode.UNKNOWN_CODE:
    case ProtocolErrorCode.BAD_CONTENT_SIZE:
    case ProtocolErrorCode.BAD_PACKET_NUMBER:
      // §9: wrong fixed size, unknown code and bad 1028 fields → 1607, connection stays usable.
      return {
        response: GENERAL_ERROR,
        close: false,
        outcome: refusedOutcome(ctx.code),
        level: 'warn',
        reason,
      };
    default:
      return assertNever(err.code, 'protocol error code');
  }
}

function fromSessionError(err: SessionError, ctx: RequestContext): WireOutcome {
  const reason = err.code;
  const refuse = (outcome: AuditOutcome | undefined, level: LogLevel): WireOutcome => ({
    response: refusal(ctx),
    close: false,
    outcome,
    level,
    reason,
  });
  const general = (outcome: AuditOutcome | undefined, level: LogLevel): WireOutcome => ({
    response: GENERAL_ERROR,
    close: false,
    outcome,
    level,
    reason,
  });
  switch (err.code) {
    case SessionErrorCode.RATE_LIMITED:
      return { ...refuse('rate_limited', 'warn'), response: REGISTRATION_FAILED };
    case SessionErrorCode.NAME_TAKEN:
      return { ...refuse('name_taken', 'info'), response: REGISTRATION_FAILED };
    case SessionErrorCode.UNKNOWN_CLIENT:
      // 1027 from a client the server forgot is a normal flow (§5.3): the client re-registers.
      return refuse('unknown_client', ctx.code === RequestCode.RECONNECT ? 'info' : 'warn');
    case SessionErrorCode.NAME_MISMATCH:
    case SessionErrorCode.KEY_ALREADY_SET:
    case SessionErrorCode.NO_KEY:
      return refuse(refusedOutcome(ctx.code), 'warn');
    case SessionErrorCode.OUT_OF_ORDER:
    case SessionErrorCode.FIELDS_CHANGED:
    case SessionErrorCode.NO_UPLOAD:
    case SessionErrorCode.SIZE_MISMATCH:
      return general('file_rejected', 'warn');
    case SessionErrorCode.FILE_TOO_LARGE:
    case SessionErrorCode.QUOTA_EXCEEDED:
      return general('quota_exceeded', 'warn');
    case SessionErrorCode.UNKNOWN_FILE:
      return general(undefined, 'warn');
    case SessionErrorCode.NOT_BOUND:
    case SessionErrorCode.WRONG_CLIENT:
    case SessionErrorCode.NOT_THIS_UPLOAD:
      // Never the code's own refusal: a 1606 would make a real client register anew.
      return general('unbound_request', 'warn');
    case SessionErrorCode.LOCKED_OUT:
      return general('locked_out', 'warn');
    default:
      return assertNever(err.code, 'session error code');
  }
}

function fromCryptoError(err: CryptoError, ctx: RequestContext): WireOutcome {
  const reason = err.code;
  switch (err.code) {
    case CryptoErrorCode.BAD_PUBLIC_KEY:
      return {
        response: refusal(ctx),
        close: false,
        outcome: 'key_rejected',
        level: 'warn',
        reason,
      };
    case CryptoErrorCode.BAD_PADDING:
      return {
        response: GENERAL_ERROR,
        close: false,
        outcome: 'file_rejected',
        level: 'warn',
        reason,
      };
    case CryptoErrorCode.BAD_AES_KEY:
    case CryptoErrorCode.BAD_PRIVATE_KEY:
    case CryptoErrorCode.UNWRAP_FAILED:
      // Not reachable from client input: a key on record is broken.
      return {
        response: GENERAL_ERROR,
        close: false,
        outcome: refusedOutcome(ctx.code),
        level: 'error',
        reason,
      };
    default:
      return assertNever(err.code, 'crypto error code');
  }
}

/** Maps any error thrown while serving a request to its answer (§4, §9). */
export function toWire(err: unknown, ctx: RequestContext): WireOutcome {
  if (err instanceof ProtocolError) return fromProtocolError(err, ctx);
  if (err instanceof SessionError) return fromSessionError(err, ctx);
  if (err instanceof CryptoError) return fromCryptoError(err, ctx);
  if (err instanceof StorageError) {
    // Disk or database trouble: this request fails, the server keeps serving.
    return {
      response: GENERAL_ERROR,
      close: false,
      outcome: ctx.code === RequestCode.SEND_FILE ? 'file_rejected' : undefined,
      level: 'error',
      reason: `STORAGE_${err.code}`,
    };
  }
  return {
    response: GENERAL_ERROR,
    close: false,
    outcome: ctx.code === RequestCode.SEND_FILE ? 'file_rejected' : undefined,
    level: 'error',
    reason: 'INTERNAL',
  };
}
