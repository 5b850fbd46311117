/**
 * Where the server gets randomness and time. Injected (never read from globals inside the
 * session), so tests can replay recorded sessions with the ids and keys the recording used.
 */
import { randomBytes } from 'node:crypto';
import { Size } from '../../protocol/v3/constants';
import { randomClientId } from '../../shared/client-id';

export interface Sources {
  /** A new 16-byte client id for a 1025 registration (§2: v4 UUID bytes). */
  clientId(): Buffer;
  /** A new 32-byte AES key for a 1602/1605 answer (§5). */
  aesKey(): Buffer;
  /** Milliseconds since the epoch. */
  now(): number;
}

export function systemSources(): Sources {
  return {
    clientId: randomClientId,
    aesKey: () => randomBytes(Size.AES_KEY),
    now: Date.now,
  };
}
