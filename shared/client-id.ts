/** Client ids: 16 raw bytes on the wire, 32 lowercase hex characters for people (§2). */
import { randomUUID } from 'node:crypto';
import { Size } from '../protocol/v3/constants';

const HEX_ID = /^[0-9a-f]{32}$/i;

export function clientIdToHex(id: Buffer): string {
  return id.toString('hex');
}

/** Parses 32 hex characters (dashes of the UUID form allowed); undefined if malformed. */
export function clientIdFromHex(text: string): Buffer | undefined {
  const compact = text.trim().replace(/-/g, '');
  if (!HEX_ID.test(compact)) return undefined;
  return Buffer.from(compact, 'hex');
}

/** A random v4 UUID as 16 raw bytes. */
export function randomClientId(): Buffer {
  const id = Buffer.from(randomUUID().replace(/-/g, ''), 'hex');
  if (id.length !== Size.CLIENT_ID) throw new Error('randomUUID returned an unexpected length');
  return id;
}
