/** fast-check arbitraries for valid protocol messages (§2–§4). */
import fc from 'fast-check';
import {
  MAX_PACKETS,
  RequestCode,
  ResponseCode,
  STRING255_MAX_TEXT,
  Size,
  fileNameProblem,
  paddedLength,
  type Request,
  type Response,
} from '../../protocol';

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

export const bytes = (length: number): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ minLength: length, maxLength: length }).map((a) => Buffer.from(a));

export const clientId = bytes(Size.CLIENT_ID);

/** Text a string255 can carry: 1–254 bytes of UTF-8, no control characters. */
export const string255Text: fc.Arbitrary<string> = fc
  .oneof(
    { weight: 8, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }) },
    { weight: 2, arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 254 }) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        'a'.repeat(STRING255_MAX_TEXT),
        'é'.repeat(127),
        '\uFEFFbom',
        '.x',
      ),
    },
  )
  .filter(
    (s) =>
      !CONTROL.test(s) &&
      Buffer.byteLength(s, 'utf8') <= STRING255_MAX_TEXT &&
      Buffer.from(s, 'utf8').toString('utf8') === s,
  );

export const fileName = string255Text.filter((s) => fileNameProblem(s) === undefined);

const u32 = fc.nat({ max: 0xffffffff });

export const sendFile = (maxContent: number): fc.Arbitrary<Request> =>
  fc
    .record({
      clientId,
      // The largest orig size whose PKCS#7 length still fits a u32 (§3).
      origSize: fc.oneof(fc.nat({ max: 100_000 }), fc.nat({ max: 0xffffffef })),
      totalPackets: fc.integer({ min: 1, max: MAX_PACKETS }),
      fileName,
      content: fc.uint8Array({ maxLength: maxContent }).map((a) => Buffer.from(a)),
      packetSeed: fc.nat(),
    })
    .map(({ packetSeed, origSize, totalPackets, ...rest }) => ({
      code: RequestCode.SEND_FILE,
      contentSize: paddedLength(origSize),
      origSize,
      totalPackets,
      packetNumber: 1 + (packetSeed % totalPackets),
      ...rest,
    }));

export const request = (maxContent = 600): fc.Arbitrary<Request> =>
  fc.oneof(
    fc.record({
      code: fc.constantFrom(RequestCode.REGISTER, RequestCode.RECONNECT),
      clientId,
      name: string255Text,
    }),
    fc.record({
      code: fc.constant(RequestCode.SEND_PUBLIC_KEY),
      clientId,
      name: string255Text,
      publicKey: bytes(Size.PUBLIC_KEY),
    }),
    sendFile(maxContent),
    fc.record({
      code: fc.constantFrom(
        RequestCode.CHECKSUM_OK,
        RequestCode.CHECKSUM_RETRY,
        RequestCode.CHECKSUM_ABORT,
      ),
      clientId,
      fileName,
    }),
  );

export const response: fc.Arbitrary<Response> = fc.oneof(
  fc.record({
    code: fc.constantFrom(
      ResponseCode.REGISTERED,
      ResponseCode.ACKNOWLEDGED,
      ResponseCode.RECONNECT_REFUSED,
    ),
    clientId,
  }),
  fc.record({
    code: fc.constantFrom(ResponseCode.REGISTRATION_FAILED, ResponseCode.GENERAL_ERROR),
  }),
  fc.record({
    code: fc.constantFrom(ResponseCode.KEY_ACCEPTED, ResponseCode.RECONNECTED),
    clientId,
    wrappedKey: bytes(Size.WRAPPED_KEY),
  }),
  fc.record({
    code: fc.constant(ResponseCode.FILE_RECEIVED),
    clientId,
    contentSize: u32,
    fileName: string255Text,
    cksum: u32,
  }),
);

/** Cut points for a buffer of `length` bytes, sorted, duplicates allowed (empty chunks). */
export const cuts = (length: number): fc.Arbitrary<number[]> =>
  fc
    .array(fc.nat({ max: length }), { maxLength: Math.min(40, length + 1) })
    .map((a) => [...a].sort((x, y) => x - y));
