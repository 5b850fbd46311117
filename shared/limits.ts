/** Numbers both sides agree on, beyond the wire constants in protocol/constants.ts. */

/** Ciphertext bytes our client puts in each 1028 (§5). */
export const CLIENT_CHUNK_SIZE = 1024;
/** Re-sends after a checksum mismatch before giving up with 1031 (§5). */
export const MAX_CHECKSUM_RESENDS = 3;
/** Attempts of a request answered with 1607 or an unusable answer (§8). */
export const MAX_REQUEST_ATTEMPTS = 3;
/** Longest client name in transfer.info (§8). */
export const MAX_CLIENT_NAME_LENGTH = 100;
/** Default TCP port when neither --port nor port.info says otherwise (§7). */
export const DEFAULT_PORT = 1256;
