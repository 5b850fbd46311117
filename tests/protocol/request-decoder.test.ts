/**
 * RequestDecoder as the server uses it: TCP chunks of any shape in, requests out in order, views
 * where a frame lies whole in a chunk, limits enforced the moment a header is complete (§9).
 */
import {
  DEFAULT_MAX_CHUNK,
  DEFAULT_UNKNOWN_PAYLOAD_LIMIT,
  Framer,
  ProtocolErrorCode,
  RequestCode,
  RequestDecoder,
  Size,
  type Request,
} from '../../protocol';
import { loadHexFixture } from '../helpers/hex-fixture';
import {
  IGNORE_REQUESTS,
  requests,
  byteByByte,
  catchProtocolError,
  fingerprint,
  rawRequest,
  rawSendFilePayload,
  rawString255,
  runRequestDecoder,
  seededRandom,
  splitAt,
  splitRandomly,
  type RequestOutcome,
} from './support';

const FIXTURES = [
  'request-1025-client-a',
  'request-1026-client-a',
  'request-1028-with-content',
  'request-1028-client-a-empty-last-packet',
  'request-1027-client-a',
  'request-1028-client-a-last-packet',
  'request-1029-client-a',
  'request-1030',
  'request-1031',
];

/** A short request of a fixed-size code: well framed, wrong size → BAD_SIZE, non-fatal. */
const shortRegister = rawRequest(RequestCode.REGISTER, rawString255('x').subarray(0, 200));
/** An unknown code with a small payload → UNKNOWN_CODE, non-fatal. */
const unknown = rawRequest(4242, Buffer.from('not a request'));

/** Valid frames with two bad-but-well-framed ones in the middle, and a 0-payload frame. */
const frames: Buffer[] = [
  ...FIXTURES.slice(0, 3).map(loadHexFixture),
  shortRegister,
  rawRequest(1111, Buffer.alloc(0)),
  unknown,
  ...FIXTURES.slice(3).map(loadHexFixture),
];
const stream = Buffer.concat(frames);

const codesOf = (outcomes: readonly RequestOutcome[]): (number | string)[] =>
  outcomes.map((o) => (o.ok ? o.request.code : o.code));

describe('RequestDecoder on a multi-frame stream', () => {
  const whole = runRequestDecoder([stream]);

  it('decodes all frames from one chunk, bad ones as non-fatal errors in their place', () => {
    expect(whole.fatal).toBeUndefined();
    expect(codesOf(whole.outcomes)).toEqual([
      1025,
      1026,
      1028,
      ProtocolErrorCode.BAD_SIZE,
      ProtocolErrorCode.UNKNOWN_CODE,
      ProtocolErrorCode.UNKNOWN_CODE,
      1028,
      1027,
      1028,
      1029,
      1030,
      1031,
    ]);
    expect(whole.outcomes.every((o) => o.ok || !o.fatal)).toBe(true);
    expect(whole.decoder.bufferedBytes).toBe(0);
    expect(whole.decoder.inFrame).toBe(false);
  });

  it('gives the same results split in two at every byte offset', () => {
    const expected = fingerprint(whole.outcomes);
    for (let cut = 0; cut <= stream.length; cut++) {
      const run = runRequestDecoder(splitAt(stream, [cut]));
      expect(run.fatal).toBeUndefined();
      // Compared as strings: thousands of deep equalities would dominate the test's time.
      if (fingerprint(run.outcomes) !== expected) expect(run.outcomes).toEqual(whole.outcomes);
    }
  });

  it('gives the same results fed one byte at a time', () => {
    const run = runRequestDecoder(byteByByte(stream));
    expect(run.outcomes).toEqual(whole.outcomes);
    expect(run.decoder.bufferedBytes).toBe(0);
  });

  it('gives the same results for random chunkings, empty chunks included', () => {
    const rand = seededRandom(20240601);
    const expected = fingerprint(whole.outcomes);
    for (let round = 0; round < 200; round++) {
      const run = runRequestDecoder(splitRandomly(stream, rand, 1 + (round % 64) * 20));
      expect(fingerprint(run.outcomes)).toBe(expected);
    }
  });

  it('reports the header of every frame, valid or not', () => {
    const sizes = whole.outcomes.map((o) => o.header.payloadSize);
    expect(sizes).toEqual(frames.map((f) => f.length - Size.REQUEST_HEADER));
  });

  it('holds an incomplete frame until the rest arrives, reporting inFrame', () => {
    const decoder = new RequestDecoder();
    const got: number[] = [];
    decoder.push(
      stream.subarray(0, 30),
      requests((r) => got.push(r.header.code)),
    );
    expect(got).toEqual([]);
    expect(decoder.inFrame).toBe(true);
    expect(decoder.bufferedBytes).toBe(30);
    decoder.push(
      stream.subarray(30, frames[0].length),
      requests((r) => got.push(r.header.code)),
    );
    expect(got).toEqual([1025]);
    expect(decoder.inFrame).toBe(false);
    expect(decoder.bufferedBytes).toBe(0);
  });
});

describe('zero-copy views', () => {
  /** A non-pooled chunk, so sharing an ArrayBuffer proves a view and not a pooled copy. */
  const chunk = Buffer.alloc(stream.length);
  stream.copy(chunk);

  it('hands out 1028 content and client id as views into the chunk when the frame is whole', () => {
    const seen: { content: Buffer; clientId: Buffer }[] = [];
    new RequestDecoder().push(
      chunk,
      requests((r) => {
        if (r.ok && r.request.code === RequestCode.SEND_FILE) {
          seen.push({ content: r.request.content, clientId: r.request.clientId });
        }
      }),
    );
    expect(seen).toHaveLength(3);
    let frameStart = 0;
    const sendFileStarts: number[] = [];
    for (const f of frames) {
      if (f.readUInt16LE(17) === RequestCode.SEND_FILE) sendFileStarts.push(frameStart);
      frameStart += f.length;
    }
    seen.forEach(({ content, clientId }, i) => {
      expect(content.buffer).toBe(chunk.buffer);
      expect(content.byteOffset).toBe(chunk.byteOffset + sendFileStarts[i] + 290);
      expect(clientId.buffer).toBe(chunk.buffer);
      expect(clientId.byteOffset).toBe(chunk.byteOffset + sendFileStarts[i]);
    });
  });

  it('gives the other requests their own copies, which outlive the chunk', () => {
    const kept: Request[] = [];
    const own = Buffer.alloc(frames[0].length + frames[1].length);
    Buffer.concat(frames.slice(0, 2)).copy(own);
    new RequestDecoder().push(
      own,
      requests((r) => {
        if (r.ok) kept.push(r.request);
      }),
    );
    own.fill(0);
    expect(kept.map((r) => r.clientId.toString('hex'))).toEqual([
      '30303030303030303030303030303030',
      '2c2203c9500fb60642aa2188cffd55b0',
    ]);
    const key = kept[1].code === RequestCode.SEND_PUBLIC_KEY ? kept[1].publicKey : undefined;
    expect(key?.subarray(0, 3).toString('hex')).toBe('30819d');
  });

  it('the framer hands out a whole frame as (chunk, offset), with no copy', () => {
    // A toy layout (1-byte code, 1-byte size) to look at the framing layer alone.
    const framer = new Framer({
      headerSize: 2,
      readCode: (buf, at) => buf[at],
      readPayloadSize: (buf, at) => buf[at + 1],
      payloadLimit: () => 10,
    });
    const toy = Buffer.alloc(9);
    Buffer.from([1, 3, 0xa, 0xb, 0xc, 2, 2, 0xd, 0xe]).copy(toy);
    const got: [boolean, number, number, number][] = [];
    framer.push(toy, {
      frame: (buf, offset, code, payloadSize) => got.push([buf === toy, offset, code, payloadSize]),
    });
    expect(got).toEqual([
      [true, 0, 1, 3],
      [true, 5, 2, 2],
    ]);
  });
});

describe('limits are checked when the header completes, before any payload', () => {
  const huge = rawRequest(RequestCode.SEND_FILE, Buffer.alloc(0), { declaredSize: 0xffffffff });

  it('fails on a bare 23-byte 1028 header declaring a huge payload', () => {
    const decoder = new RequestDecoder();
    const err = catchProtocolError(() => decoder.push(huge, IGNORE_REQUESTS));
    expect(err.code).toBe(ProtocolErrorCode.PAYLOAD_TOO_LARGE);
    expect(err.fatal).toBe(true);
    expect(err.messageCode).toBe(RequestCode.SEND_FILE);
    expect(decoder.failed).toBe(true);
    expect(decoder.bufferedBytes).toBe(0);
    const again = catchProtocolError(() => decoder.push(Buffer.from([1]), IGNORE_REQUESTS));
    expect(again.code).toBe(ProtocolErrorCode.DECODER_FAILED);
    expect(again.fatal).toBe(true);
  });

  it('fails the moment the header completes when it arrives in pieces', () => {
    const decoder = new RequestDecoder();
    decoder.push(huge.subarray(0, 22), IGNORE_REQUESTS);
    expect(decoder.failed).toBe(false);
    const err = catchProtocolError(() => decoder.push(huge.subarray(22), IGNORE_REQUESTS));
    expect(err.code).toBe(ProtocolErrorCode.PAYLOAD_TOO_LARGE);
    expect(decoder.failed).toBe(true);
  });

  it('hands out the frames before the bad header, then fails', () => {
    const good = loadHexFixture('request-1030');
    const run = runRequestDecoder([Buffer.concat([good, good, huge])]);
    expect(codesOf(run.outcomes)).toEqual([1030, 1030]);
    expect(run.fatal?.code).toBe(ProtocolErrorCode.PAYLOAD_TOO_LARGE);
  });

  it('accepts a 1028 of exactly 267 + 65552 by default (the 4 GiB file chunk), one byte more fails', () => {
    // ceil(2^32 / 65535) rounded up to 16: the chunk of the largest legal upload (§5.4).
    expect(DEFAULT_MAX_CHUNK).toBe(Math.ceil(2 ** 32 / 65535 / 16) * 16);
    expect(DEFAULT_MAX_CHUNK).toBe(65552);
    const atLimit = rawRequest(RequestCode.SEND_FILE, Buffer.alloc(0), {
      declaredSize: 267 + 65552,
    });
    const decoder = new RequestDecoder();
    decoder.push(atLimit, IGNORE_REQUESTS);
    expect(decoder.failed).toBe(false);
    expect(decoder.bufferedBytes).toBe(Size.REQUEST_HEADER);

    const over = rawRequest(RequestCode.SEND_FILE, Buffer.alloc(0), { declaredSize: 267 + 65553 });
    const err = catchProtocolError(() => new RequestDecoder().push(over, IGNORE_REQUESTS));
    expect(err.code).toBe(ProtocolErrorCode.PAYLOAD_TOO_LARGE);
  });

  it('takes the 1028 chunk limit as an option', () => {
    const payload = rawSendFilePayload({
      contentSize: 2048,
      origSize: 2040,
      packet: 1,
      total: 2,
      content: Buffer.alloc(1025),
    });
    const frame = rawRequest(RequestCode.SEND_FILE, payload);
    expect(runRequestDecoder([frame], { maxChunk: 1025 }).outcomes).toHaveLength(1);
    const run = runRequestDecoder([frame], { maxChunk: 1024 });
    expect(run.fatal?.code).toBe(ProtocolErrorCode.PAYLOAD_TOO_LARGE);
    expect(run.outcomes).toEqual([]);
  });

  it.each([
    [RequestCode.REGISTER, 255],
    [RequestCode.SEND_PUBLIC_KEY, 415],
    [RequestCode.RECONNECT, 255],
    [RequestCode.CHECKSUM_OK, 255],
    [RequestCode.CHECKSUM_RETRY, 255],
    [RequestCode.CHECKSUM_ABORT, 255],
  ])(
    'fixed-size %i: one byte over %i is fatal, one under is BAD_SIZE and the stream goes on',
    (code, size) => {
      const header = rawRequest(code, Buffer.alloc(0), { declaredSize: size + 1 });
      const over = catchProtocolError(() => new RequestDecoder().push(header, IGNORE_REQUESTS));
      expect(over.code).toBe(ProtocolErrorCode.PAYLOAD_TOO_LARGE);
      expect(over.messageCode).toBe(code);

      const under = rawRequest(code, Buffer.alloc(size - 1));
      const next = loadHexFixture('request-1031');
      const run = runRequestDecoder([Buffer.concat([under, next])]);
      expect(run.fatal).toBeUndefined();
      expect(run.outcomes.map((o) => (o.ok ? o.request.code : [o.code, o.fatal]))).toEqual([
        [ProtocolErrorCode.BAD_SIZE, false],
        RequestCode.CHECKSUM_ABORT,
      ]);
    },
  );

  it('skips an unknown code with a small payload (UNKNOWN_CODE) and decodes what follows', () => {
    const next = loadHexFixture('request-1029-client-a');
    for (const code of [0, 1024, 1032, 1600, 0xffff]) {
      const run = runRequestDecoder([
        rawRequest(code, Buffer.alloc(DEFAULT_UNKNOWN_PAYLOAD_LIMIT, 0x41)),
        next,
      ]);
      expect(run.fatal).toBeUndefined();
      expect(codesOf(run.outcomes)).toEqual([ProtocolErrorCode.UNKNOWN_CODE, 1029]);
      const [first] = run.outcomes;
      expect(!first.ok && first.fatal).toBe(false);
      expect(first.header.code).toBe(code);
    }
  });

  it('fails on an unknown code declaring more than the unknown-code limit', () => {
    const frame = rawRequest(4242, Buffer.alloc(0), {
      declaredSize: DEFAULT_UNKNOWN_PAYLOAD_LIMIT + 1,
    });
    expect(runRequestDecoder([frame]).fatal?.code).toBe(ProtocolErrorCode.PAYLOAD_TOO_LARGE);
    expect(runRequestDecoder([frame], { unknownPayload: 2048 }).fatal).toBeUndefined();
  });
});

describe('header fields', () => {
  it('accepts any version byte and reports it (§1)', () => {
    const frame = Buffer.from(loadHexFixture('request-1030'));
    for (const version of [0, 2, 4, 255]) {
      frame[16] = version;
      const run = runRequestDecoder([frame]);
      expect(run.outcomes).toHaveLength(1);
      expect(run.outcomes[0].ok).toBe(true);
      expect(run.outcomes[0].header.version).toBe(version);
    }
  });

  it('reports the header client id of a 1025 without interpreting it', () => {
    const run = runRequestDecoder([loadHexFixture('request-1025-client-a')]);
    expect(run.outcomes[0].header.clientId.toString('latin1')).toBe('0'.repeat(16));
  });
});
