/**
 * What the flows (key exchange, upload) need from their session, and the §8 bookkeeping of a
 * request's outcome: usable, or a reason to say `server responded with an error` and repeat it.
 */
import { ResponseCode, type DecodedResponse } from '../../protocol';
import type { Identity } from '../config/identity';
import type { Transport } from '../transport/connection';
import type { ClientLog, SessionEvents } from './types';

export type Outcome<T> =
  | { readonly ok: true; readonly value: T }
  | {
      readonly ok: false;
      readonly reason: string;
      /** Only a new connection is in step with the server again. */
      readonly resync: boolean;
    };

export const ok = <T>(value: T): Outcome<T> => ({ ok: true, value });

/** A response we cannot use: why, in a few words. */
export function describe(r: DecodedResponse): string {
  if (!r.ok) return `malformed ${r.header.code} response: ${r.error.message}`;
  return r.response.code === ResponseCode.GENERAL_ERROR
    ? 'general error 1607'
    : `unexpected response ${r.response.code}`;
}

export function unusable<T>(r: DecodedResponse): Outcome<T> {
  return { ok: false, reason: describe(r), resync: false };
}

export const KEY_DOES_NOT_DECRYPT: Outcome<never> = {
  ok: false,
  reason: 'the AES key does not decrypt with our key',
  resync: false,
};

/** The session as the flows see it. */
export interface FlowContext {
  /** The open connection; throws when the session is not open. */
  readonly conn: Transport;
  readonly events: Partial<SessionEvents>;
  readonly log: ClientLog;
  /** The identity in use and its session key; throws before a key exchange succeeded. */
  keys(): { readonly identity: Identity; readonly aesKey: Buffer };
  /** Sends `request` and returns the next response. */
  exchange(request: Buffer, what: string): Promise<DecodedResponse>;
  /** Runs `attempt` until it succeeds, up to the attempt limit, reporting each failure (§8). */
  attempts<T>(what: string, attempt: () => Promise<Outcome<T>>): Promise<T>;
}
