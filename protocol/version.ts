/**
 * Which protocol a connection speaks, decided from its first bytes, before any framing.
 *
 * Version 4 runs inside TLS (docs/protocol-v4.md): its connections open with a TLS record, whose
 * first byte is the content type 0x16 (handshake) and whose second is the major version 0x03.
 * Version 3 connections open with a request header (§1), whose first byte is the first byte of
 * the client id. So the two can share a port as long as no client id the server issues starts
 * with 0x16; the 1025 id field carries no id (senders put zeros or '0'×16 there, §1).
 */
import { assertNever } from './errors';
import { Size } from './v3/constants';

/** TLS record content type of a handshake (RFC 8446 §5.1). */
export const TLS_HANDSHAKE_RECORD = 0x16;
/** Major byte of the legacy record version of every TLS record (0x0301..0x0303). */
export const TLS_MAJOR_VERSION = 0x03;

export const ProtocolVersion = {
  V3: 3,
  V4: 4,
} as const;
export type ProtocolVersion = (typeof ProtocolVersion)[keyof typeof ProtocolVersion];

/** 'tls': a TLS record (version 4); 'v3': a version-3 request; 'need-more': wait for bytes. */
export type SniffResult = 'tls' | 'v3' | 'need-more';

/**
 * Looks at the first bytes of a connection. 0x16 0x03 is a TLS handshake record; 0x16 followed
 * by anything else is not TLS, so it is a version-3 header after all; any other first byte is
 * version 3 at once. With 0x16 alone there is no telling yet.
 */
export function sniffProtocol(firstBytes: Buffer): SniffResult {
  if (firstBytes.length === 0) return 'need-more';
  if (firstBytes[0] !== TLS_HANDSHAKE_RECORD) return 'v3';
  if (firstBytes.length < 2) return 'need-more';
  return firstBytes[1] === TLS_MAJOR_VERSION ? 'tls' : 'v3';
}

/** The protocol version a decided sniff result stands for. */
export function protocolVersionOf(result: Exclude<SniffResult, 'need-more'>): ProtocolVersion {
  switch (result) {
    case 'v3':
      return ProtocolVersion.V3;
    case 'tls':
      return ProtocolVersion.V4;
    default:
      return assertNever(result, 'sniff result');
  }
}

/**
 * True when `id` may be issued as a version-3 client id: 16 bytes, and not starting with the TLS
 * handshake byte, so that no request carrying it can be taken for a TLS record by
 * `sniffProtocol`. Issuers draw again until this holds.
 */
export function isIssuableV3ClientId(id: Buffer): boolean {
  return id.length === Size.CLIENT_ID && id[0] !== TLS_HANDSHAKE_RECORD;
}
