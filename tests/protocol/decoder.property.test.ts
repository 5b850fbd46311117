/**
 * Property tests: arbitrary bytes, cut arbitrarily, give messages or a ProtocolError and never
 * anything else; memory stays bounded; valid messages survive encode → chunked decode.
 */
import fc from 'fast-check';
import {
  DEFAULT_MAX_CHUNK,
  DEFAULT_RESPONSE_PAYLOAD_LIMIT,
  ProtocolErrorCode,
  RequestCode,
  RequestDecoder,
  ResponseCode,
  ResponseDecoder,
  Size,
  encodeRequest,
  encodeResponse,
  isProtocolError,
  isRequestCode,
  isResponseCode,
  readRequestHeader,
  decodeRequestFrame,
  type DecodedRequest,
  type RequestSink,
} from '../../protocol';
import { clientId, cuts, request, response } from './arbitraries';
import {
  IGNORE_REQUESTS,
  fingerprint,
  outcomeOf,
  type RequestOutcome,
  requests,
  copyRequest,
  runRequestDecoder,
  runResponseDecoder,
  splitAt,
} from './support';

const REQUEST_BUFFER_BOUND = Size.REQUEST_HEADER + Size.SEND_FILE_FIXED + DEFAULT_MAX_CHUNK;
// The 1600 quirk reads 16 undeclared bytes, so a response frame may exceed its declared size.
const RESPONSE_BUFFER_BOUND =
  Size.RESPONSE_HEADER + Math.max(DEFAULT_RESPONSE_PAYLOAD_LIMIT, Size.CLIENT_ID);

const KNOWN_REQUEST_CODES = Object.values(RequestCode);
const KNOWN_RESPONSE_CODES = Object.values(ResponseCode);

/** A header with a plausible or wild code and size, then up to `size` random payload bytes. */
const headerFrame = (
  headerSize: number,
  write: (h: Buffer, code: number, size: number) => void,
  codes: readonly number[],
  sizeLimit: number,
): fc.Arbitrary<Buffer> =>
  fc
    .record({
      code: fc.oneof(fc.constantFrom(...codes), fc.integer({ min: 0, max: 0xffff })),
      size: fc.oneof(
        { weight: 6, arbitrary: fc.nat({ max: 600 }) },
        { weight: 2, arbitrary: fc.constantFrom(0, 16, 144, 255, 256, 267, 279, 415, 1024, 1025) },
        { weight: 1, arbitrary: fc.integer({ min: 0, max: sizeLimit + 16 }) },
        { weight: 1, arbitrary: fc.nat({ max: 0xffffffff }) },
      ),
      seed: fc.uint8Array({ maxLength: 600 }),
    })
    .map(({ code, size, seed }) => {
      const h = Buffer.alloc(headerSize);
      write(h, code, size);
      return Buffer.concat([h, Buffer.from(seed.subarray(0, size))]);
    });

/** A valid frame with one byte changed. */
const mutated = (frames: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> =>
  fc.tuple(frames, fc.nat(), fc.integer({ min: 1, max: 255 })).map(([f, at, xor]) => {
    const copy = Buffer.from(f);
    copy[at % copy.length] ^= xor;
    return copy;
  });

// Random bytes end most streams at once (a wild header is fatal), so they are the rarest part.
const requestSegment = fc.oneof(
  { weight: 4, arbitrary: request(300).map(encodeRequest) },
  { weight: 3, arbitrary: mutated(request(300).map(encodeRequest)) },
  {
    weight: 3,
    arbitrary: headerFrame(
      Size.REQUEST_HEADER,
      (h, code, size) => {
        h.writeUInt16LE(code, 17);
        h.writeUInt32LE(size, 19);
      },
      KNOWN_REQUEST_CODES,
      Size.SEND_FILE_FIXED + DEFAULT_MAX_CHUNK,
    ),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)) },
);

const responseSegment = fc.oneof(
  { weight: 4, arbitrary: response.map(encodeResponse) },
  { weight: 3, arbitrary: mutated(response.map(encodeResponse)) },
  // The 1600 that declares size 0 and sends its id anyway (§9).
  {
    weight: 1,
    arbitrary: clientId.map((id) => Buffer.concat([Buffer.from([3, 0x40, 0x06, 0, 0, 0, 0]), id])),
  },
  {
    weight: 3,
    arbitrary: headerFrame(
      Size.RESPONSE_HEADER,
      (h, code, size) => {
        h.writeUInt8(3, 0);
        h.writeUInt16LE(code, 1);
        h.writeUInt32LE(size, 3);
      },
      KNOWN_RESPONSE_CODES,
      DEFAULT_RESPONSE_PAYLOAD_LIMIT,
    ),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 32 }).map((a) => Buffer.from(a)) },
);

/** A stream of segments and the points where it is cut into chunks. */
const chunked = (segment: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer[]> =>
  fc
    .array(segment, { maxLength: 12 })
    .map((segments) => Buffer.concat(segments))
    .chain((stream) => cuts(stream.length).map((points) => splitAt(stream, points)));

describe('RequestDecoder on arbitrary input', () => {
  it('yields requests or ProtocolErrors, nothing else, with bounded buffering', () => {
    fc.assert(
      fc.property(chunked(requestSegment), (chunks) => {
        const decoder = new RequestDecoder();
        for (const chunk of chunks) {
          try {
            decoder.push(
              chunk,
              requests((r) => {
                if (r.ok) expect(isRequestCode(r.request.code)).toBe(true);
                else expect([isProtocolError(r.error), r.error.fatal]).toEqual([true, false]);
              }),
            );
          } catch (err) {
            if (!isProtocolError(err)) throw err;
            expect(err.fatal).toBe(true);
            expect(decoder.failed).toBe(true);
            let again: unknown;
            try {
              decoder.push(Buffer.alloc(1), IGNORE_REQUESTS);
            } catch (e) {
              again = e;
            }
            expect(isProtocolError(again) && again.code).toBe(ProtocolErrorCode.DECODER_FAILED);
            return;
          }
          expect(decoder.bufferedBytes).toBeLessThanOrEqual(REQUEST_BUFFER_BOUND);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('yields requests or ProtocolErrors from uniformly random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.nat({ max: 2000 }), (raw, cut) => {
        const stream = Buffer.from(raw);
        const run = runRequestDecoder(splitAt(stream, [Math.min(cut, stream.length)]));
        if (run.fatal) expect(run.fatal.fatal).toBe(true);
        expect(run.decoder.bufferedBytes).toBeLessThanOrEqual(REQUEST_BUFFER_BOUND);
      }),
      { numRuns: 300 },
    );
  });

  it('gives the same requests with random holds and a fast path taking random frames', () => {
    fc.assert(
      fc.property(
        chunked(requestSegment),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 16 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 16 }),
        (chunks, takes, holds) => {
          const plain = runRequestDecoder(chunks);
          const decoder = new RequestDecoder();
          const outcomes: RequestOutcome[] = [];
          const record = (r: DecodedRequest): void => {
            outcomes.push(outcomeOf(r));
            // A consumer that serves this request asynchronously holds the rest.
            if (holds[outcomes.length % holds.length]) decoder.hold();
          };
          const sink: RequestSink = {
            fast(buf, offset, _code, payloadSize) {
              if (!takes[outcomes.length % takes.length]) return false;
              // Taken raw: decoded here only to compare with the plain run.
              const start = offset + Size.REQUEST_HEADER;
              const payload = buf.subarray(start, start + payloadSize);
              record(decodeRequestFrame(readRequestHeader(buf, offset), payload));
              return true;
            },
            request: record,
          };
          let fatal: string | undefined;
          try {
            for (const chunk of chunks) {
              decoder.push(chunk, sink);
              while (decoder.pending) decoder.release(sink);
            }
          } catch (err) {
            if (!isProtocolError(err)) throw err;
            fatal = err.code;
          }
          expect(fingerprint(outcomes)).toBe(fingerprint(plain.outcomes));
          expect(fatal).toBe(plain.fatal?.code);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('round-trips valid requests through encode and any chunking', () => {
    fc.assert(
      fc.property(
        fc.array(request(), { maxLength: 10 }).chain((requests) => {
          const stream = Buffer.concat(requests.map(encodeRequest));
          return cuts(stream.length).map((points) => ({
            requests,
            chunks: splitAt(stream, points),
          }));
        }),
        ({ requests, chunks }) => {
          const run = runRequestDecoder(chunks);
          expect(run.fatal).toBeUndefined();
          expect(run.outcomes.map((o) => (o.ok ? o.request : o.code))).toEqual(
            requests.map(copyRequest),
          );
          expect(run.decoder.bufferedBytes).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('ResponseDecoder on arbitrary input', () => {
  it('yields responses or ProtocolErrors, nothing else, with bounded buffering', () => {
    fc.assert(
      fc.property(chunked(responseSegment), (chunks) => {
        const decoder = new ResponseDecoder();
        for (const chunk of chunks) {
          try {
            decoder.push(chunk, (r) => {
              if (r.ok) expect(isResponseCode(r.response.code)).toBe(true);
              else expect([isProtocolError(r.error), r.error.fatal]).toEqual([true, false]);
            });
          } catch (err) {
            if (!isProtocolError(err)) throw err;
            expect(err.fatal).toBe(true);
            expect(decoder.failed).toBe(true);
            return;
          }
          expect(decoder.bufferedBytes).toBeLessThanOrEqual(RESPONSE_BUFFER_BOUND);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('round-trips valid responses through encode and any chunking', () => {
    fc.assert(
      fc.property(
        fc.array(response, { maxLength: 12 }).chain((responses) => {
          const stream = Buffer.concat(responses.map(encodeResponse));
          return cuts(stream.length).map((points) => ({
            responses,
            chunks: splitAt(stream, points),
          }));
        }),
        ({ responses, chunks }) => {
          const run = runResponseDecoder(chunks);
          expect(run.fatal).toBeUndefined();
          expect(run.outcomes.map((o) => (o.ok ? o.response : o.code))).toEqual(responses);
          expect(run.decoder.inFrame).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });
});
