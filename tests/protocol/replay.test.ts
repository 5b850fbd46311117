/**
 * Replay of the captured request streams of two independent C++ clients at the decoder level:
 * every conn1.c2s, chunked every way, must decode to exactly the manifest's `requests` list,
 * including client-b's 65536-byte padded packets and client-a's empty last packet.
 */
import { RequestCode, Size, assertNever } from '../../protocol';
import { CAPTURE_NAMES, loadCapture, type ManifestRequest } from './captures';
import {
  byteByByte,
  fingerprint,
  runRequestDecoder,
  seededRandom,
  splitRandomly,
  type RequestOutcome,
} from './support';

/** A decoded request in the manifest's shape; `contentSeen` counts 1028 content per file. */
function asManifestRequest(
  o: RequestOutcome,
  index: number,
  offset: number,
  contentSeen: Map<string, number>,
): ManifestRequest {
  if (!o.ok) throw new Error(`request ${index} at ${offset} failed: ${o.code}`);
  const r = o.request;
  const base = {
    index,
    offset,
    header_client_id: o.header.clientId.toString('hex'),
    version: o.header.version,
    code: r.code,
    payload_size: o.header.payloadSize,
  };
  switch (r.code) {
    case RequestCode.REGISTER:
    case RequestCode.RECONNECT:
      return { ...base, name: r.name };
    case RequestCode.SEND_PUBLIC_KEY:
      return { ...base, name: r.name, public_key_len: r.publicKey.length };
    case RequestCode.SEND_FILE: {
      // Bytes past content size, counted over one upload attempt (packet 1 starts anew).
      const before = r.packetNumber === 1 ? 0 : (contentSeen.get(r.fileName) ?? 0);
      const seen = before + r.content.length;
      contentSeen.set(r.fileName, seen);
      const beyond = seen - r.contentSize;
      return {
        ...base,
        content_size: r.contentSize,
        orig_size: r.origSize,
        packet: r.packetNumber,
        total: r.totalPackets,
        file_name: r.fileName,
        chunk_len: r.content.length,
        chunk_offset: offset + Size.REQUEST_HEADER + Size.SEND_FILE_FIXED,
        ...(beyond > 0 ? { bytes_beyond_content_size: beyond } : {}),
      };
    }
    case RequestCode.CHECKSUM_OK:
    case RequestCode.CHECKSUM_RETRY:
    case RequestCode.CHECKSUM_ABORT:
      return { ...base, file_name: r.fileName };
    default:
      return assertNever(r, 'request');
  }
}

function toManifest(outcomes: readonly RequestOutcome[]): ManifestRequest[] {
  let offset = 0;
  const contentSeen = new Map<string, number>();
  return outcomes.map((o, index) => {
    const entry = asManifestRequest(o, index, offset, contentSeen);
    offset += Size.REQUEST_HEADER + o.header.payloadSize;
    return entry;
  });
}

describe.each(CAPTURE_NAMES)('replay of %s/conn1.c2s', (name) => {
  const capture = loadCapture(name);
  const expected = capture.connection.requests;
  const whole = runRequestDecoder([capture.c2s]);

  it('decodes in one chunk to exactly the manifest requests', () => {
    expect(whole.fatal).toBeUndefined();
    expect(toManifest(whole.outcomes)).toEqual(expected);
    expect(whole.decoder.bufferedBytes).toBe(0);
    expect(capture.c2s.length).toBe(capture.connection.c2s_size);
  });

  it('decodes the same fed one byte at a time', () => {
    const run = runRequestDecoder(byteByByte(capture.c2s));
    expect(run.fatal).toBeUndefined();
    expect(fingerprint(run.outcomes)).toBe(fingerprint(whole.outcomes));
  });

  it('decodes the same under random chunkings, from tiny pieces to 128 KiB', () => {
    const rand = seededRandom(name.length * 7919);
    const expectedPrint = fingerprint(whole.outcomes);
    for (const maxPiece of [3, 64, 700, 1400, 9000, 65536, 131072]) {
      for (let round = 0; round < 4; round++) {
        const run = runRequestDecoder(splitRandomly(capture.c2s, rand, maxPiece));
        expect(run.fatal).toBeUndefined();
        expect(fingerprint(run.outcomes)).toBe(expectedPrint);
      }
    }
  });

  it('carries the ciphertext bytes the manifest points at', () => {
    const chunks = whole.outcomes.flatMap((o) =>
      o.ok && o.request.code === RequestCode.SEND_FILE ? [o.request.content] : [],
    );
    const listed = expected.filter((r) => r.code === RequestCode.SEND_FILE);
    expect(chunks).toHaveLength(listed.length);
    chunks.forEach((content, i) => {
      const at = listed[i].chunk_offset ?? -1;
      expect(content.equals(capture.c2s.subarray(at, at + (listed[i].chunk_len ?? 0)))).toBe(true);
    });
  });
});

describe('what the captures exercise', () => {
  it("includes client-b's padded 65536-byte packets", () => {
    const b = loadCapture('client-b-register-upload').connection.requests;
    const packets = b.filter((r) => r.code === RequestCode.SEND_FILE);
    expect(packets.map((r) => r.payload_size)).toEqual([65536, 65536]);
    expect(packets[1].bytes_beyond_content_size).toBe(28122);
  });

  it("includes client-a's empty last packets", () => {
    const a = loadCapture('client-a-empty-last-packet').connection.requests;
    const empty = a.filter((r) => r.code === RequestCode.SEND_FILE && r.chunk_len === 0);
    expect(empty.map((r) => [r.packet, r.total, r.payload_size])).toEqual(
      Array.from({ length: 4 }, () => [2, 2, 267]),
    );
  });
});
