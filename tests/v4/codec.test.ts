import { Framer } from '../../protocol/framer';
import { ProtocolErrorCode, type ProtocolError } from '../../protocol/errors';
import {
  decodeRequest,
  decodeResponse,
  encodeDataHeader,
  framePayload,
  encodeRequest,
  encodeResponse,
  IdentityStatus,
  RequestCode,
  requestFrameLayout,
  ResponseCode,
  responseFrameLayout,
  WireErrorCode,
  type Request,
  type Response,
} from '../../protocol/v4';

function decodeAllRequests(bytes: Buffer, chunk = 1 << 20, split = bytes.length): Request[] {
  const framer = new Framer(requestFrameLayout(() => chunk));
  const out: Request[] = [];
  const sink = {
    frame(buf: Buffer, offset: number, code: number, size: number) {
      const m = decodeRequest(code, framePayload(buf, offset, size));
      out.push(m.code === RequestCode.UPLOAD_DATA ? { ...m, data: Buffer.from(m.data) } : m);
    },
  };
  for (let at = 0; at < bytes.length; at += split)
    framer.push(bytes.subarray(at, at + split), sink);
  return out;
}

function decodeAllResponses(bytes: Buffer): Response[] {
  const framer = new Framer(responseFrameLayout());
  const out: Response[] = [];
  framer.push(bytes, {
    frame: (buf, offset, code, size) =>
      out.push(decodeResponse(code, framePayload(buf, offset, size))),
  });
  return out;
}

const NO_SINK = { frame: () => undefined };

function protocolErrorOf(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (err) {
    return err as ProtocolError;
  }
  throw new Error('expected a ProtocolError');
}

const requests: Request[] = [
  { code: RequestCode.HELLO, version: 4, maxChunk: 1 << 20 },
  { code: RequestCode.REGISTER, name: 'Ünïcode client' },
  {
    code: RequestCode.MIGRATE,
    clientId: Buffer.alloc(16, 7),
    name: 'old',
    signature: Buffer.alloc(128, 9),
  },
  {
    code: RequestCode.UPLOAD_BEGIN,
    fileName: 'big.bin',
    size: 5 * 1024 ** 3,
    check: Buffer.alloc(32, 3),
  },
  { code: RequestCode.UPLOAD_DATA, data: Buffer.from('abc') },
  { code: RequestCode.UPLOAD_END, sha256: Buffer.alloc(32, 1) },
];

const responses: Response[] = [
  {
    code: ResponseCode.WELCOME,
    version: 4,
    chunkSize: 65536,
    challenge: Buffer.alloc(32, 5),
    status: IdentityStatus.KNOWN,
    clientId: Buffer.alloc(16, 2),
    name: 'me',
  },
  { code: ResponseCode.REGISTERED, clientId: Buffer.alloc(16, 4) },
  { code: ResponseCode.UPLOAD_OFFSET, offset: 2 ** 40 },
  { code: ResponseCode.STORED, size: 2 ** 33, sha256: Buffer.alloc(32, 8), cksum: 0xffffffff },
  { code: ResponseCode.ERROR, error: WireErrorCode.QUOTA_EXCEEDED, fatal: true, text: 'full' },
];

describe('v4 codec', () => {
  it('round-trips every request, whole and split byte by byte', () => {
    const bytes = Buffer.concat(requests.map(encodeRequest));
    expect(decodeAllRequests(bytes)).toEqual(requests);
    expect(decodeAllRequests(bytes, 1 << 20, 1)).toEqual(requests);
  });

  it('round-trips every response', () => {
    expect(decodeAllResponses(Buffer.concat(responses.map(encodeResponse)))).toEqual(responses);
  });

  it('writes the documented bytes for HELLO and UPLOAD_OFFSET', () => {
    expect(encodeRequest(requests[0]!).toString('hex')).toBe('01000600000004000000' + '1000');
    expect(encodeResponse({ code: ResponseCode.UPLOAD_OFFSET, offset: 258 }).toString('hex')).toBe(
      '1080' + '08000000' + '0201000000000000',
    );
    expect(encodeDataHeader(3).toString('hex')).toBe('110003000000');
  });

  it('refuses DATA over the negotiated chunk when its header completes', () => {
    const frame = encodeRequest({ code: RequestCode.UPLOAD_DATA, data: Buffer.alloc(5000) });
    const decoder = new Framer(requestFrameLayout(() => 4096));
    const err = protocolErrorOf(() => decoder.push(frame.subarray(0, 6), NO_SINK));
    expect(err.code).toBe(ProtocolErrorCode.PAYLOAD_TOO_LARGE);
    expect(err.fatal).toBe(true);
  });

  it('refuses an unknown code at its header', () => {
    const decoder = new Framer(requestFrameLayout(() => 4096));
    const err = protocolErrorOf(() =>
      decoder.push(Buffer.from('7700' + '00000000', 'hex'), NO_SINK),
    );
    expect(err.code).toBe(ProtocolErrorCode.UNKNOWN_CODE);
  });

  it('refuses an oversized fixed message when its header completes', () => {
    const decoder = new Framer(requestFrameLayout(() => 4096));
    const err = protocolErrorOf(() =>
      decoder.push(Buffer.from('0100' + '07000000', 'hex'), NO_SINK),
    );
    expect(err.code).toBe(ProtocolErrorCode.PAYLOAD_TOO_LARGE);
  });

  it.each([
    ['short HELLO', '0100' + '05000000' + '0400000010', ProtocolErrorCode.BAD_SIZE],
    ['empty name', '0200' + '01000000' + '00', ProtocolErrorCode.BAD_STRING],
    ['name length past payload', '0200' + '02000000' + '0561', ProtocolErrorCode.BAD_SIZE],
    ['invalid UTF-8', '0200' + '02000000' + '01ff', ProtocolErrorCode.BAD_STRING],
    ['control character', '0200' + '02000000' + '0107', ProtocolErrorCode.BAD_STRING],
    ['empty DATA', '1100' + '00000000', ProtocolErrorCode.BAD_SIZE],
    ['END with 31 bytes', '1200' + '1f000000' + '00'.repeat(31), ProtocolErrorCode.BAD_SIZE],
  ])('refuses %s with a coded error', (_what, hex, code) => {
    const err = protocolErrorOf(() => decodeAllRequests(Buffer.from(hex, 'hex')));
    expect(err.code).toBe(code);
  });

  it.each([
    '..',
    '.',
    'a\\b',
    '/a',
    'a/',
    'a//b',
    'a/../b',
    'a/./b',
    '../a',
    `${'d/'.repeat(33)}f`,
  ])('refuses the file name %j', (name) => {
    const begin = encodeRequest({
      code: RequestCode.UPLOAD_BEGIN,
      fileName: 'x',
      size: 1,
      check: Buffer.alloc(32),
    });
    const raw = Buffer.from(name);
    const patched = Buffer.concat([begin.subarray(0, 6 + 40), Buffer.from([raw.length]), raw]);
    patched.writeUInt32LE(patched.length - 6, 2);
    const err = protocolErrorOf(() => decodeAllRequests(patched));
    expect(err.code).toBe(ProtocolErrorCode.BAD_FILE_NAME);
  });

  it.each(['a/b', 'photos/2024/a.jpg', `${'d/'.repeat(32)}f`])(
    'carries the file name %j: a relative path of plain names (§3.2)',
    (fileName) => {
      const frame = encodeRequest({
        code: RequestCode.UPLOAD_BEGIN,
        fileName,
        size: 1,
        check: Buffer.alloc(32),
      });
      expect(decodeAllRequests(frame)).toEqual([
        { code: RequestCode.UPLOAD_BEGIN, fileName, size: 1, check: Buffer.alloc(32) },
      ]);
    },
  );

  it('refuses a size over 2^53 - 1', () => {
    const begin = encodeRequest({
      code: RequestCode.UPLOAD_BEGIN,
      fileName: 'x',
      size: 1,
      check: Buffer.alloc(32),
    });
    begin.writeBigUInt64LE(2n ** 60n, 6);
    expect(protocolErrorOf(() => decodeAllRequests(begin)).code).toBe(ProtocolErrorCode.BAD_SIZE);
  });

  it('will not encode a name it could not decode', () => {
    const err = protocolErrorOf(() => encodeRequest({ code: RequestCode.REGISTER, name: '' }));
    expect(err.code).toBe(ProtocolErrorCode.BAD_STRING);
  });
});
