/**
 * New client ids, for version 3 (1025) and version 4 (register) alike. An issued id never
 * starts like a TLS record, so the first bytes of a connection tell the versions apart on one
 * port (docs/protocol.md §9, protocol/version.ts).
 */
import { isIssuableV3ClientId } from '../../protocol/version';
import type { Sources } from './sources';

/** Draws before a source that keeps returning unusable ids is considered broken. */
const MAX_ID_DRAWS = 8;

export function issueClientId(sources: Sources): Buffer {
  for (let i = 0; i < MAX_ID_DRAWS; i++) {
    const id = sources.clientId();
    if (isIssuableV3ClientId(id)) return id;
  }
  throw new Error(`the client-id source returned ${MAX_ID_DRAWS} ids that cannot be issued`);
}
