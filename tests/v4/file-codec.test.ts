/** The file messages of version 4 (docs/protocol-v4.md §4.8–§4.13): bytes both ways, refusals. */
import { deflateRawSync } from 'node:zlib';
import {
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  FileFlag,
  UploadFlag,
  RequestCode,
  ResponseCode,
  type Request,
  type Response,
} from '../../protocol/v4';
import { isProtocolError } from '../../protocol/errors';
import { inflateChunk } from '../../server/session/v4/file-flows';

function payloadOf(frame: Buffer): { code: number; payload: Buffer } {
  return { code: frame.readUInt16LE(0), payload: frame.subarray(6, 6 + frame.readUInt32LE(2)) };
}

function roundTripRequest(message: Request): Request {
  const { code, payload } = payloadOf(encodeRequest(message));
  return decodeRequest(code, payload);
}

function roundTripResponse(message: Response): Response {
  const { code, payload } = payloadOf(encodeResponse(message));
  return decodeResponse(code, payload);
}

const SHA = Buffer.alloc(32, 0xab);

describe('v4 file messages', () => {
  it('round-trip every request', () => {
    const requests: Request[] = [
      { code: RequestCode.LIST, start: 64 },
      { code: RequestCode.GET, fileName: 'a b.txt', offset: 2 ** 40 },
      { code: RequestCode.READ },
      { code: RequestCode.DELETE, fileName: 'ü.bin' },
      { code: RequestCode.UPLOAD_DATA_DEFLATE, data: Buffer.from([1, 2, 3]) },
      {
        code: RequestCode.UPLOAD_BEGIN_FLAGS,
        fileName: 'x',
        size: 10,
        check: SHA,
        flags: FileFlag.E2E,
      },
    ];
    for (const message of requests) expect(roundTripRequest(message)).toEqual(message);
  });

  it('round-trip every response', () => {
    const responses: Response[] = [
      {
        code: ResponseCode.FILE_LIST,
        total: 3,
        files: [
          { fileName: 'a', size: 1, storedAt: 1_700_000_000_000, sha256: SHA, flags: 3 },
          { fileName: 'b', size: 0, storedAt: 5, sha256: Buffer.alloc(32), flags: 0 },
        ],
      },
      { code: ResponseCode.FILE_INFO, size: 9, sha256: SHA, storedAt: 7, flags: FileFlag.VERIFIED },
      { code: ResponseCode.FILE_DATA, data: Buffer.from('abc') },
      { code: ResponseCode.DELETED, size: 42 },
    ];
    for (const message of responses) expect(roundTripResponse(message)).toEqual(message);
  });

  it('READ is exactly 6 bytes of header; GET has its documented layout', () => {
    expect(encodeRequest({ code: RequestCode.READ }).toString('hex')).toBe('220000000000');
    expect(
      encodeRequest({ code: RequestCode.GET, fileName: 'ab', offset: 1 }).toString('hex'),
    ).toBe('21000b000000' + '026162' + '0100000000000000');
  });

  it('refuses flags a client may not set, path names and trailing bytes', () => {
    const begin = encodeRequest({
      code: RequestCode.UPLOAD_BEGIN_FLAGS,
      fileName: 'x',
      size: 1,
      check: SHA,
      flags: FileFlag.E2E,
    });
    const bad = Buffer.from(begin);
    bad[bad.length - 1] = FileFlag.VERIFIED;
    const frame = payloadOf(bad);
    expect(() => decodeRequest(frame.code, frame.payload)).toThrow();
    const get = payloadOf(encodeRequest({ code: RequestCode.GET, fileName: 'ab', offset: 1 }));
    const withSlash = Buffer.from(get.payload);
    withSlash[1] = 0x2f;
    expect(() => decodeRequest(get.code, withSlash)).toThrow();
    try {
      decodeRequest(RequestCode.READ, Buffer.from([0]));
      throw new Error('accepted a READ with a payload');
    } catch (err) {
      expect(isProtocolError(err)).toBe(true);
    }
  });

  it('UPLOAD_BEGIN_FLAGS carries PIPELINED (0x80) beside E2E; COMPRESSED and 0x40 are refused', () => {
    const message = {
      code: RequestCode.UPLOAD_BEGIN_FLAGS,
      fileName: 'a',
      size: 3,
      check: SHA,
      flags: FileFlag.E2E | UploadFlag.PIPELINED,
    } as const;
    const bytes = encodeRequest(message);
    // code 0x0014 | payload 8 + 32 + 2 + 1 = 43 | size u64 3 | check | name "a" | flags 0x82
    expect(bytes.subarray(0, 6).toString('hex')).toBe('14002b000000');
    expect(bytes.subarray(6, 14).toString('hex')).toBe('0300000000000000');
    expect(bytes.subarray(46).toString('hex')).toBe('016182');
    expect(roundTripRequest(message)).toEqual(message);
    for (const flag of [FileFlag.COMPRESSED, 0x40]) {
      const bad = Buffer.from(bytes);
      bad[bad.length - 1] = flag | UploadFlag.PIPELINED;
      const frame = payloadOf(bad);
      expect(() => decodeRequest(frame.code, frame.payload)).toThrow();
    }
  });

  it('inflates a deflated chunk, and refuses one that inflates past the chunk size', () => {
    const original = Buffer.alloc(8192, 'a');
    expect(inflateChunk(deflateRawSync(original), 8192).equals(original)).toBe(true);
    expect(() => inflateChunk(deflateRawSync(original), 4096)).toThrow(
      expect.objectContaining({ code: 'BAD_MESSAGE' }) as Error,
    );
    expect(() => inflateChunk(Buffer.from([0xff, 0xff, 0xff]), 4096)).toThrow(
      expect.objectContaining({ code: 'BAD_MESSAGE' }) as Error,
    );
  });
});
