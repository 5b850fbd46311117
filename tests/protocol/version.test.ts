/**
 * First-byte dispatch between version 3 (plain request headers, §1) and version 4 (TLS records,
 * docs/protocol-v4.md). Byte tables are annotated field by field, as in the hex fixtures.
 */
import {
  ProtocolVersion,
  TLS_HANDSHAKE_RECORD,
  TLS_MAJOR_VERSION,
  isIssuableV3ClientId,
  protocolVersionOf,
  sniffProtocol,
  type SniffResult,
} from '../../protocol';
import { loadHexFixture } from '../helpers/hex-fixture';

const bytes = (...b: number[]): Buffer => Buffer.from(b);

describe('sniffProtocol', () => {
  it.each<[string, Buffer, SniffResult]>([
    ['nothing yet', bytes(), 'need-more'],
    // content type 0x16 (handshake), and the version byte not here yet
    ['0x16 alone', bytes(0x16), 'need-more'],
    // 16 = handshake | 03 01 = legacy record version TLS 1.0 | 00 f4 = length | 01 = ClientHello
    ['TLS 1.0 record of a ClientHello', bytes(0x16, 0x03, 0x01, 0x00, 0xf4, 0x01), 'tls'],
    // 16 = handshake | 03 03 = TLS 1.2 record version (what TLS 1.3 stacks send on a retry)
    ['TLS 1.2 record header', bytes(0x16, 0x03, 0x03), 'tls'],
    // 16 03: enough to decide, the rest of the record header may come later
    ['0x16 0x03 only', bytes(0x16, 0x03), 'tls'],
    // a 1025 whose meaningless id field starts 16 41: not a TLS record version
    ['0x16 then not 0x03', bytes(0x16, 0x41, 0x41), 'v3'],
    // client id '0'×16 (client-a's 1025): first byte 0x30
    ['ASCII zero id', bytes(0x30), 'v3'],
    // client id of zeros (client-b's 1025)
    ['zero id', bytes(0x00, 0x00), 'v3'],
    // 17 = TLS application data, never the first record of a connection
    ['0x17 (not a handshake)', bytes(0x17, 0x03, 0x03), 'v3'],
  ])('%s', (_what, first, expected) => {
    expect(sniffProtocol(first)).toBe(expected);
  });

  it('takes the real 1025 fixtures of both C++ clients for version 3', () => {
    for (const name of ['request-1025-client-a', 'request-1025-client-b']) {
      const frame = loadHexFixture(name);
      for (let n = 1; n <= frame.length; n++)
        expect(sniffProtocol(frame.subarray(0, n))).toBe('v3');
    }
  });

  it('decides every first byte at once except the handshake byte', () => {
    for (let b = 0; b < 256; b++) {
      const result = sniffProtocol(bytes(b));
      expect(result).toBe(b === TLS_HANDSHAKE_RECORD ? 'need-more' : 'v3');
    }
    expect(sniffProtocol(bytes(TLS_HANDSHAKE_RECORD, TLS_MAJOR_VERSION))).toBe('tls');
  });
});

describe('protocolVersionOf', () => {
  it('maps a decided sniff to its version', () => {
    expect(protocolVersionOf('v3')).toBe(ProtocolVersion.V3);
    expect(protocolVersionOf('tls')).toBe(ProtocolVersion.V4);
  });
});

describe('isIssuableV3ClientId', () => {
  it.each<[string, Buffer, boolean]>([
    // 91efb762...: the id client-a got from a real server
    ['a real issued id', Buffer.from('91efb762e12c86316aedc59a713a91e4', 'hex'), true],
    // 16 then 15 bytes: a v3 request with it would open like a TLS handshake record
    ['an id starting with 0x16', Buffer.concat([bytes(0x16), Buffer.alloc(15, 0x03)]), false],
    ['0x16 later in the id is fine', Buffer.concat([bytes(0x00, 0x16), Buffer.alloc(14)]), true],
    ['15 bytes', Buffer.alloc(15, 1), false],
    ['17 bytes', Buffer.alloc(17, 1), false],
  ])('%s', (_what, id, expected) => {
    expect(isIssuableV3ClientId(id)).toBe(expected);
  });

  it('keeps every issuable id out of the TLS branch of the sniff', () => {
    for (let b = 0; b < 256; b++) {
      const id = Buffer.concat([bytes(b, TLS_MAJOR_VERSION), Buffer.alloc(14)]);
      if (isIssuableV3ClientId(id)) expect(sniffProtocol(id)).toBe('v3');
    }
  });
});
