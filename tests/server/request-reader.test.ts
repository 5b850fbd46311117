/**
 * The server's request framing (server/request-reader.ts): raw fast path first, decoded
 * requests otherwise, `hold` keeping unread bytes as they are, limits checked at the header.
 */
import { RequestCode, Size } from '../../protocol/v3/constants';
import type { DecodedRequest } from '../../protocol/v3/decode';
import { encodeRequest, encodeRequestHeader } from '../../protocol/v3/encode';
import { isProtocolError, ProtocolErrorCode } from '../../protocol/errors';
import { RequestReader, type RequestSink } from '../../server/request-reader';

const ID = Buffer.alloc(Size.CLIENT_ID, 0xab);
const CODE_AT = Size.CLIENT_ID + 1;

const register = (name: string): Buffer =>
  encodeRequest({ code: RequestCode.REGISTER, clientId: ID, name });
const checksumOk = (fileName: string): Buffer =>
  encodeRequest({ code: RequestCode.CHECKSUM_OK, clientId: ID, fileName });

/** Records what reaches the sink; `fastCodes` are taken by the fast path. */
function recorder(fastCodes: number[] = []): {
  sink: RequestSink;
  seen: string[];
  onRequest?: () => void;
} {
  const seen: string[] = [];
  const rec: { sink: RequestSink; seen: string[]; onRequest?: () => void } = {
    seen,
    sink: {
      fast(buf, offset, code, payloadSize) {
        if (!fastCodes.includes(code)) return false;
        // The frame must be whole at `offset`: header, then the declared payload.
        expect(buf.readUInt16LE(offset + CODE_AT)).toBe(code);
        expect(buf.length - offset).toBeGreaterThanOrEqual(Size.REQUEST_HEADER + payloadSize);
        seen.push(`fast ${code}`);
        return true;
      },
      request(decoded: DecodedRequest) {
        const r = decoded.ok ? decoded.request : undefined;
        seen.push(
          r && 'name' in r
            ? `${r.code} ${r.name}`
            : r && 'fileName' in r
              ? `${r.code} ${r.fileName}`
              : `bad ${decoded.header.code}`,
        );
        rec.onRequest?.();
      },
    },
  };
  return rec;
}

describe('RequestReader', () => {
  const stream = Buffer.concat([register('alice'), checksumOk('a.bin'), register('bob')]);

  it('delivers the same requests in order however the stream is split', () => {
    for (let cut = 1; cut < stream.length; cut += 7) {
      const reader = new RequestReader();
      const { sink, seen } = recorder();
      reader.push(stream.subarray(0, cut), sink);
      reader.push(stream.subarray(cut), sink);
      expect(seen).toEqual(['1025 alice', '1029 a.bin', '1025 bob']);
      expect(reader.inFrame).toBe(false);
    }
  });

  it('offers every frame to the fast path first, also one assembled across chunks', () => {
    const reader = new RequestReader();
    const { sink, seen } = recorder([RequestCode.CHECKSUM_OK]);
    const split = register('alice').length + 10;
    reader.push(stream.subarray(0, split), sink);
    expect(reader.inFrame).toBe(true);
    expect(reader.bufferedBytes).toBe(10);
    reader.push(stream.subarray(split), sink);
    expect(seen).toEqual(['1025 alice', `fast ${RequestCode.CHECKSUM_OK}`, '1025 bob']);
  });

  it('hold keeps the unread rest, and later chunks, until release', () => {
    const reader = new RequestReader();
    const rec = recorder();
    rec.onRequest = () => reader.hold();
    const half = stream.length - 100;
    reader.push(stream.subarray(0, half), rec.sink);
    expect(rec.seen).toEqual(['1025 alice']);
    expect(reader.pending).toBe(true);
    reader.push(stream.subarray(half), rec.sink);
    expect(rec.seen).toEqual(['1025 alice']);

    reader.release(rec.sink);
    expect(rec.seen).toEqual(['1025 alice', '1029 a.bin']);
    reader.release(rec.sink);
    expect(rec.seen).toEqual(['1025 alice', '1029 a.bin', '1025 bob']);
    expect(reader.pending).toBe(false);
    reader.release(rec.sink);
    expect(rec.seen).toHaveLength(3);
  });

  it('fails at a header over the limit, after the frames before it, and stays failed', () => {
    const reader = new RequestReader({ maxChunk: 1024 });
    const { sink, seen } = recorder();
    const tooBig = encodeRequestHeader(ID, RequestCode.SEND_FILE, Size.SEND_FILE_FIXED + 1025);
    let caught: unknown;
    try {
      reader.push(Buffer.concat([register('alice'), tooBig]), sink);
    } catch (err) {
      caught = err;
    }
    expect(seen).toEqual(['1025 alice']);
    expect(isProtocolError(caught) && caught.code).toBe(ProtocolErrorCode.PAYLOAD_TOO_LARGE);
    expect(isProtocolError(caught) && caught.fatal).toBe(true);
    expect(reader.failed).toBe(true);
    expect(() => reader.push(register('bob'), sink)).toThrow(
      expect.objectContaining({ code: ProtocolErrorCode.DECODER_FAILED }),
    );
  });

  it('checks the limit as soon as a split header is complete, before any payload', () => {
    const reader = new RequestReader({ maxChunk: 1024 });
    const { sink } = recorder();
    const tooBig = encodeRequestHeader(ID, RequestCode.SEND_FILE, Size.SEND_FILE_FIXED + 4096);
    reader.push(tooBig.subarray(0, 10), sink);
    expect(() => reader.push(tooBig.subarray(10), sink)).toThrow(
      expect.objectContaining({ code: ProtocolErrorCode.PAYLOAD_TOO_LARGE }),
    );
  });
});
