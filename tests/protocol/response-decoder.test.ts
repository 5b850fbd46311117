/**
 * ResponseDecoder as the client uses it, against the answers real servers sent (conn1.s2c of
 * each capture), including their §9 quirks: a 1600 declaring payload 0, junk after a 1604.
 */
import { ResponseCode, ResponseDecoder, assertNever, type Response } from '../../protocol';
import { CAPTURE_NAMES, loadCapture, type PeerResponse } from './captures';
import {
  byteByByte,
  fingerprint,
  rawResponse,
  runResponseDecoder,
  seededRandom,
  splitAt,
  splitRandomly,
  type ResponseOutcome,
} from './support';

const hex = (b: Buffer): string => b.toString('hex');

/** What a client does after a 1604 from a junk-sending server: skip the echoed name field. */
const skipAfter1604 =
  (junk: Buffer) =>
  (response: Response, decoder: ResponseDecoder): void => {
    if (response.code === ResponseCode.ACKNOWLEDGED) decoder.skipIfNext(junk);
  };

/** The manifest's view of a decoded response. */
function asPeerResponse(o: ResponseOutcome, offset: number): PeerResponse {
  if (!o.ok) throw new Error(`response at ${offset} failed: ${o.code}`);
  const r = o.response;
  const base = {
    offset,
    version: o.header.version,
    code: r.code,
    payload_size: o.header.payloadSize,
  };
  switch (r.code) {
    case ResponseCode.REGISTERED:
    case ResponseCode.ACKNOWLEDGED:
    case ResponseCode.RECONNECT_REFUSED:
      return { ...base, client_id: hex(r.clientId) };
    case ResponseCode.KEY_ACCEPTED:
    case ResponseCode.RECONNECTED:
      return { ...base, client_id: hex(r.clientId), wrapped_key_len: r.wrappedKey.length };
    case ResponseCode.FILE_RECEIVED:
      return {
        ...base,
        client_id: hex(r.clientId),
        content_size: r.contentSize,
        file_name: r.fileName,
        cksum: r.cksum,
      };
    case ResponseCode.REGISTRATION_FAILED:
    case ResponseCode.GENERAL_ERROR:
      return base;
    default:
      return assertNever(r, 'response');
  }
}

/** Manifest entries without the notes about undeclared bytes, which a decoder does not report. */
function comparable(p: PeerResponse): PeerResponse {
  const copy: Record<string, unknown> = { ...p };
  delete copy.undeclared_payload_len;
  delete copy.undeclared_bytes_after;
  delete copy.undeclared_bytes_hex_prefix;
  return copy as unknown as PeerResponse;
}

describe.each(CAPTURE_NAMES)('real server answers of %s', (name) => {
  const capture = loadCapture(name);
  const peer = capture.connection.peer_server_responses;
  // The file-name field of the last 1029 in the request stream: what junk-sending peers echo.
  const last1029 = [...capture.connection.requests].reverse().find((r) => r.code === 1029);
  const junk = last1029
    ? capture.c2s.subarray(last1029.offset + 23, last1029.offset + 23 + 255)
    : Buffer.alloc(0);
  const onResponse = skipAfter1604(junk);

  /** Offsets of the responses on the wire: declared size, plus the quirks' undeclared bytes. */
  const offsets = (outcomes: readonly ResponseOutcome[]): number[] => {
    let at = 0;
    return outcomes.map((o) => {
      const offset = at;
      const p = peer.find((x) => x.offset === offset);
      at += 7 + o.header.payloadSize + (p?.undeclared_payload_len ?? 0);
      at += p?.undeclared_bytes_after ?? 0;
      return offset;
    });
  };

  const whole = runResponseDecoder([capture.s2c], onResponse);

  it('decodes to the manifest peer_server_responses', () => {
    expect(whole.fatal).toBeUndefined();
    const offs = offsets(whole.outcomes);
    expect(whole.outcomes.map((o, i) => asPeerResponse(o, offs[i]))).toEqual(peer.map(comparable));
    expect(whole.decoder.inFrame).toBe(false);
  });

  it('decodes the same byte at a time and at every two-chunk split', () => {
    const expected = fingerprint(whole.outcomes);
    expect(fingerprint(runResponseDecoder(byteByByte(capture.s2c), onResponse).outcomes)).toBe(
      expected,
    );
    for (let cut = 0; cut <= capture.s2c.length; cut++) {
      const run = runResponseDecoder(splitAt(capture.s2c, [cut]), onResponse);
      expect(run.fatal).toBeUndefined();
      expect(fingerprint(run.outcomes)).toBe(expected);
    }
  });
});

describe('the 1600 with payload size 0 (server-b, §9)', () => {
  const capture = loadCapture('client-b-register-upload');
  const quirk = capture.s2c.subarray(0, 23);
  const id = capture.connection.client_id;

  it('is in the capture as the manifest says', () => {
    expect(quirk.readUInt16LE(1)).toBe(1600);
    expect(quirk.readUInt32LE(3)).toBe(0);
    expect(capture.connection.peer_server_responses[0].undeclared_payload_len).toBe(16);
  });

  it('still yields the client id, split anywhere, and the next response follows', () => {
    const stream = Buffer.concat([quirk, rawResponse(1607, Buffer.alloc(0))]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const run = runResponseDecoder(splitAt(stream, [cut]));
      expect(run.fatal).toBeUndefined();
      expect(run.outcomes.map((o) => (o.ok ? o.response : o.code))).toEqual([
        { code: 1600, clientId: Buffer.from(id, 'hex') },
        { code: 1607 },
      ]);
      expect(run.outcomes[0].header.payloadSize).toBe(0);
    }
  });

  it('waits for the 16 undeclared bytes rather than handing out a short 1600', () => {
    const decoder = new ResponseDecoder();
    const got: Response[] = [];
    decoder.push(quirk.subarray(0, 22), (r) => r.ok && got.push(r.response));
    expect(got).toEqual([]);
    expect(decoder.inFrame).toBe(true);
    decoder.push(quirk.subarray(22), (r) => r.ok && got.push(r.response));
    expect(got.map((r) => r.code)).toEqual([1600]);
  });
});

describe('junk after the final 1604 (server-a, §9)', () => {
  const capture = loadCapture('client-a-register-upload');
  const s2c = capture.s2c;
  const peer1604 = capture.connection.peer_server_responses.find((p) => p.code === 1604);
  const last1029 = capture.connection.requests[capture.connection.requests.length - 1];
  const nameField = capture.c2s.subarray(last1029.offset + 23, last1029.offset + 23 + 255);
  const junkStart = (peer1604?.offset ?? 0) + 23;
  /** The peer's stream plus a following real response, which must not be eaten. */
  const next = rawResponse(ResponseCode.ACKNOWLEDGED, Buffer.alloc(16, 0x42));
  const stream = Buffer.concat([s2c, next]);
  const expectedCodes = [1600, 1602, 1603, 1604, 1604];

  it('sits at s2c offset 483..738 and echoes the 1029 file-name field', () => {
    expect(last1029.code).toBe(1029);
    expect(junkStart).toBe(483);
    expect(peer1604?.undeclared_bytes_after).toBe(255);
    expect(s2c.length).toBe(738);
    expect(hex(s2c.subarray(483, 738))).toBe(hex(nameField));
    expect(hex(s2c.subarray(483, 483 + 32))).toBe(peer1604?.undeclared_bytes_hex_prefix);
  });

  it('breaks a decoder that is not told about it', () => {
    const run = runResponseDecoder([s2c]);
    expect(run.outcomes.map((o) => o.ok && o.response.code)).toEqual([1600, 1602, 1603, 1604]);
    expect(run.fatal).toBeDefined();
  });

  it('is skipped after skipIfNext from the 1604 callback, split at every point', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const run = runResponseDecoder(splitAt(stream, [cut]), skipAfter1604(nameField));
      expect(run.fatal).toBeUndefined();
      expect(run.outcomes.map((o) => o.ok && o.response.code)).toEqual(expectedCodes);
    }
  });

  it('is skipped whatever the chunking: three-way splits, random pieces, byte at a time', () => {
    const rand = seededRandom(1604);
    const chunkings: Buffer[][] = [byteByByte(stream)];
    for (let i = 0; i < 300; i++) {
      const a = Math.floor(rand() * stream.length);
      const b = a + Math.floor(rand() * (stream.length - a));
      chunkings.push(splitAt(stream, [a, b]));
      chunkings.push(splitRandomly(stream, rand, 1 + Math.floor(rand() * 300)));
    }
    for (const chunks of chunkings) {
      const run = runResponseDecoder(chunks, skipAfter1604(nameField));
      expect(run.fatal).toBeUndefined();
      expect(run.outcomes.map((o) => o.ok && o.response.code)).toEqual(expectedCodes);
      expect(run.decoder.inFrame).toBe(false);
    }
  });

  it('never eats a real response when the server sends no junk', () => {
    const clean = Buffer.concat([s2c.subarray(0, junkStart), next]);
    for (let cut = 0; cut <= clean.length; cut++) {
      const run = runResponseDecoder(splitAt(clean, [cut]), skipAfter1604(nameField));
      expect(run.outcomes.map((o) => o.ok && o.response.code)).toEqual(expectedCodes);
    }
  });

  it('stops skipping at the first byte that differs from the expected junk', () => {
    // Only part of the name field arrives, then a real response.
    const partial = Buffer.concat([s2c.subarray(0, junkStart + 20), next]);
    const run = runResponseDecoder([partial], skipAfter1604(nameField));
    expect(run.outcomes.map((o) => o.ok && o.response.code)).toEqual(expectedCodes);
  });
});
