/**
 * Typed refusals of the session state machine. Like ProtocolError, callers branch on `code`;
 * to-wire.ts is the one place that turns them into responses.
 */
import { CodedError } from '../../shared/coded-error';

export const SessionErrorCode = {
  /** Registrations from this address came faster than --register-rate. */
  RATE_LIMITED: 'RATE_LIMITED',
  /** 1025 for a name whose record has a public key (§5.1). */
  NAME_TAKEN: 'NAME_TAKEN',
  /** The header's client id is not on record (§9). */
  UNKNOWN_CLIENT: 'UNKNOWN_CLIENT',
  /** The name in the request is not the name of that client id (§5.2, §5.3). */
  NAME_MISMATCH: 'NAME_MISMATCH',
  /** 1026 for a client that already has a key: keys are set once (§5.2). */
  KEY_ALREADY_SET: 'KEY_ALREADY_SET',
  /** The client never sent a public key, so it has no AES key (§5.3, §5.4). */
  NO_KEY: 'NO_KEY',
  /** A packet other than the next one of the upload in progress (§9). */
  OUT_OF_ORDER: 'OUT_OF_ORDER',
  /** A packet whose repeated fields differ from packet 1's (§5.4, §9). */
  FIELDS_CHANGED: 'FIELDS_CHANGED',
  /** Packet k > 1 with no upload in progress (§9). */
  NO_UPLOAD: 'NO_UPLOAD',
  /** At packet N the ciphertext or plaintext length is not what the header said (§9). */
  SIZE_MISMATCH: 'SIZE_MISMATCH',
  /** orig size over --max-file-size . */
  FILE_TOO_LARGE: 'FILE_TOO_LARGE',
  /** The upload would take the client over --quota . */
  QUOTA_EXCEEDED: 'QUOTA_EXCEEDED',
  /** 1029/1031 for a file the client has not uploaded. */
  UNKNOWN_FILE: 'UNKNOWN_FILE',
  /** 1028-1031 on a connection that no 1026/1027 bound to a client (§9). */
  NOT_BOUND: 'NOT_BOUND',
  /** A request for another client than the one this connection is bound to (§9). */
  WRONG_CLIENT: 'WRONG_CLIENT',
  /** 1029-1031 for a file this connection did not just store with a 1603 (§9). */
  NOT_THIS_UPLOAD: 'NOT_THIS_UPLOAD',
  /** Too many decrypt failures for this id from this address: refused for a while (§9). */
  LOCKED_OUT: 'LOCKED_OUT',
} as const;
export type SessionErrorCode = (typeof SessionErrorCode)[keyof typeof SessionErrorCode];

export class SessionError extends CodedError<SessionErrorCode> {
  override readonly name = 'SessionError';
}

export function sessionError(code: SessionErrorCode, message: string): SessionError {
  return new SessionError(code, message);
}
