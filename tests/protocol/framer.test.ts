/**
 * The framer as the server drives it (RequestDecoder with a RequestSink): the fast path offered
 * every frame first, `hold`/`release` keeping unread bytes as they arrived, limits checked the
 * moment a header completes, and the failed state after a framing error.
 */
import {
  Framer,
  ProtocolErrorCode,
  RequestCode,
  RequestDecoder,
  SendFileView,
  Size,
  encodeRequest,
  encodeRequestHeader,
  isProtocolError,
  requestFrameLayout,
  type DecodedRequest,
  type RequestSink,
} from '../../protocol';
import { loadCapture } from './captures';
import { byteByByte, catchProtocolError, splitAt } from './support';

const ID = Buffer.alloc(Size.CLIENT_ID, 0xab);

const register = (name: string): Buffer =>
  encodeRequest({ code: RequestCode.REGISTER, clientId: ID, name });
const checksumOk = (fileName: string): Buffer =>
  encodeRequest({ code: RequestCode.CHECKSUM_OK, clientId: ID, fileName });

/** What a request looks like in the event log of a recorder. */
function describeDecoded(decoded: DecodedRequest): string {
  const r = decoded.ok ? decoded.request : undefined;
  if (r && 'name' in r) return `${r.code} ${r.name}`;
  if (r && 'fileName' in r) return `${r.code} ${r.fileName}`;
  return `bad ${decoded.header.code}`;
}

interface Recorder {
  readonly sink: RequestSink;
  readonly seen: string[];
  /** Called after each decoded request was recorded (a consumer that holds sets it). */
  onRequest?: () => void;
}

/** Records what reaches the sink; frames whose code is in `fastCodes` are taken raw. */
function recorder(fastCodes: readonly number[] = []): Recorder {
  const seen: string[] = [];
  const view = new SendFileView();
  const rec: Recorder = {
    seen,
    sink: {
      fast(buf, offset, code, payloadSize) {
        if (!fastCodes.includes(code)) return false;
        // The frame must be whole at `offset`: header, then the declared payload. (A plain
        // check: an expect per frame would dominate the every-split-point runs.)
        if (buf.length - offset < Size.REQUEST_HEADER + payloadSize) {
          seen.push(`frame at ${offset} not whole`);
        } else if (code === RequestCode.SEND_FILE && view.wrap(buf, offset, payloadSize)) {
          seen.push(`fast 1028 #${view.packetNumber} ${view.content().toString('hex')}`);
        } else {
          seen.push(`fast ${code} +${payloadSize}`);
        }
        return true;
      },
      request(decoded) {
        seen.push(describeDecoded(decoded));
        rec.onRequest?.();
      },
    },
  };
  return rec;
}

/** Pushes `chunks` through a fresh decoder into `rec`, releasing at once after every hold. */
function feed(chunks: readonly Buffer[], rec: Recorder, decoder = new RequestDecoder()): void {
  for (const chunk of chunks) {
    decoder.push(chunk, rec.sink);
    while (decoder.pending) decoder.release(rec.sink);
  }
}

describe('RequestDecoder with a RequestSink', () => {
  const stream = Buffer.concat([register('alice'), checksumOk('a.bin'), register('bob')]);

  it('delivers the same requests in order however the stream is split', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const decoder = new RequestDecoder();
      const { sink, seen } = recorder();
      decoder.push(stream.subarray(0, cut), sink);
      decoder.push(stream.subarray(cut), sink);
      expect(seen).toEqual(['1025 alice', '1029 a.bin', '1025 bob']);
      expect(decoder.inFrame).toBe(false);
    }
  });

  it('offers every frame to the fast path first, also one assembled across chunks', () => {
    const decoder = new RequestDecoder();
    const { sink, seen } = recorder([RequestCode.CHECKSUM_OK]);
    const split = register('alice').length + 10;
    decoder.push(stream.subarray(0, split), sink);
    expect(decoder.inFrame).toBe(true);
    expect(decoder.bufferedBytes).toBe(10);
    decoder.push(stream.subarray(split), sink);
    expect(seen).toEqual(['1025 alice', `fast ${RequestCode.CHECKSUM_OK} +255`, '1025 bob']);
  });

  it('hands the fast path the chunk itself at the frame offset when the frame is whole', () => {
    const chunk = Buffer.alloc(stream.length);
    stream.copy(chunk);
    const offered: [boolean, number, number][] = [];
    new RequestDecoder().push(chunk, {
      fast(buf, offset, code) {
        offered.push([buf === chunk, offset, code]);
        return true;
      },
      request: () => {
        throw new Error('every frame was taken by the fast path');
      },
    });
    const first = register('alice').length;
    expect(offered).toEqual([
      [true, 0, 1025],
      [true, first, 1029],
      [true, first + checksumOk('a.bin').length, 1025],
    ]);
  });
});

describe('the fast path over a real upload', () => {
  // A whole session of a real client: 1025, 1026, 1028 packets (one empty), 1029.
  const { c2s } = loadCapture('client-a-empty-last-packet');
  const whole = recorder([RequestCode.SEND_FILE]);
  feed([c2s], whole);

  it('takes every 1028 raw, the empty last packets too, and decodes the rest', () => {
    expect(whole.seen.slice(0, 2)).toEqual(['1025 Fixture Client A', '1026 Fixture Client A']);
    const packets = whole.seen.slice(2);
    expect(packets).toHaveLength(8);
    expect(packets.every((s) => s.startsWith('fast 1028 #'))).toBe(true);
    // Packet 2/2 carries no content: the view gives an empty content slice.
    expect(packets.filter((s) => s === 'fast 1028 #2 ')).toHaveLength(4);
  });

  it('sees the same frames fed one byte at a time', () => {
    const rec = recorder([RequestCode.SEND_FILE]);
    feed(byteByByte(c2s), rec);
    expect(rec.seen).toEqual(whole.seen);
  });

  it('sees the same frames split in two at every byte offset', () => {
    for (let cut = 0; cut <= c2s.length; cut++) {
      const rec = recorder([RequestCode.SEND_FILE]);
      feed(splitAt(c2s, [cut]), rec);
      if (rec.seen.join('\n') !== whole.seen.join('\n')) expect(rec.seen).toEqual(whole.seen);
    }
  });
});

describe('hold and release', () => {
  const stream = Buffer.concat([register('alice'), checksumOk('a.bin'), register('bob')]);

  it('keeps the unread rest, and later chunks, until release', () => {
    const decoder = new RequestDecoder();
    const rec = recorder();
    rec.onRequest = () => decoder.hold();
    const half = stream.length - 100;
    decoder.push(stream.subarray(0, half), rec.sink);
    expect(rec.seen).toEqual(['1025 alice']);
    expect(decoder.pending).toBe(true);
    decoder.push(stream.subarray(half), rec.sink);
    expect(rec.seen).toEqual(['1025 alice']);

    decoder.release(rec.sink);
    expect(rec.seen).toEqual(['1025 alice', '1029 a.bin']);
    decoder.release(rec.sink);
    expect(rec.seen).toEqual(['1025 alice', '1029 a.bin', '1025 bob']);
    expect(decoder.pending).toBe(false);
    decoder.release(rec.sink);
    expect(rec.seen).toHaveLength(3);
  });

  it('delivers one request per release at every split point, byte at a time too', () => {
    const chunkings = [byteByByte(stream)];
    for (let cut = 0; cut <= stream.length; cut++) chunkings.push(splitAt(stream, [cut]));
    for (const chunks of chunkings) {
      const decoder = new RequestDecoder();
      const rec = recorder();
      rec.onRequest = () => decoder.hold();
      const perRelease: number[] = [];
      for (const chunk of chunks) decoder.push(chunk, rec.sink);
      perRelease.push(rec.seen.length);
      while (decoder.pending) {
        decoder.release(rec.sink);
        perRelease.push(rec.seen.length);
      }
      expect(rec.seen).toEqual(['1025 alice', '1029 a.bin', '1025 bob']);
      // Each step (the pushes, then each release) delivers at most one request.
      perRelease.forEach((n, i) => expect(n - (perRelease[i - 1] ?? 0)).toBeLessThanOrEqual(1));
      expect(decoder.inFrame).toBe(false);
    }
  });

  it('keeps bytes of an incomplete frame that arrive while holding as they came', () => {
    const decoder = new RequestDecoder();
    const rec = recorder();
    rec.onRequest = () => decoder.hold();
    const first = register('alice').length;
    decoder.push(stream.subarray(0, first + 5), rec.sink);
    // The 5 bytes after the held frame are not assembled yet: they wait as received.
    expect(decoder.pending).toBe(true);
    expect(decoder.inFrame).toBe(false);
    expect(decoder.bufferedBytes).toBe(0);
    decoder.release(rec.sink);
    expect(decoder.pending).toBe(false);
    expect(decoder.inFrame).toBe(true);
    expect(decoder.bufferedBytes).toBe(5);
  });

  it('does not count an empty chunk as pending input', () => {
    const decoder = new RequestDecoder();
    decoder.hold();
    decoder.push(Buffer.alloc(0), recorder().sink);
    expect(decoder.pending).toBe(false);
  });

  it('reports a header over the limit in held bytes on release, after the frames before it', () => {
    const decoder = new RequestDecoder({ maxChunk: 1024 });
    const rec = recorder();
    rec.onRequest = () => decoder.hold();
    const tooBig = encodeRequestHeader(ID, RequestCode.SEND_FILE, Size.SEND_FILE_FIXED + 1025);
    decoder.push(Buffer.concat([register('alice'), register('bob'), tooBig]), rec.sink);
    expect(rec.seen).toEqual(['1025 alice']);
    decoder.release(rec.sink);
    expect(rec.seen).toEqual(['1025 alice', '1025 bob']);
    const err = catchProtocolError(() => decoder.release(rec.sink));
    expect(err.code).toBe(ProtocolErrorCode.PAYLOAD_TOO_LARGE);
    expect(decoder.pending).toBe(false);
  });
});

describe('limits are checked the moment the header completes', () => {
  it('fails at a header over the limit, after the frames before it, and stays failed', () => {
    const decoder = new RequestDecoder({ maxChunk: 1024 });
    const { sink, seen } = recorder();
    const tooBig = encodeRequestHeader(ID, RequestCode.SEND_FILE, Size.SEND_FILE_FIXED + 1025);
    let caught: unknown;
    try {
      decoder.push(Buffer.concat([register('alice'), tooBig]), sink);
    } catch (err) {
      caught = err;
    }
    expect(seen).toEqual(['1025 alice']);
    expect(isProtocolError(caught) && caught.code).toBe(ProtocolErrorCode.PAYLOAD_TOO_LARGE);
    expect(isProtocolError(caught) && caught.fatal).toBe(true);
    expect(decoder.failed).toBe(true);
    expect(() => decoder.push(register('bob'), sink)).toThrow(
      expect.objectContaining({ code: ProtocolErrorCode.DECODER_FAILED }),
    );
  });

  it('fails on the byte that completes a split header, before any payload byte arrives', () => {
    const tooBig = encodeRequestHeader(ID, RequestCode.SEND_FILE, Size.SEND_FILE_FIXED + 4096);
    for (let cut = 0; cut < Size.REQUEST_HEADER; cut++) {
      const decoder = new RequestDecoder({ maxChunk: 1024 });
      const { sink } = recorder();
      decoder.push(tooBig.subarray(0, cut), sink);
      expect(decoder.failed).toBe(false);
      expect(decoder.bufferedBytes).toBe(cut);
      expect(() => decoder.push(tooBig.subarray(cut), sink)).toThrow(
        expect.objectContaining({ code: ProtocolErrorCode.PAYLOAD_TOO_LARGE }),
      );
      expect(decoder.failed).toBe(true);
      // Nothing of the refused frame is kept.
      expect(decoder.bufferedBytes).toBe(0);
    }
  });

  it('fails byte at a time exactly at byte 23, never buffering the declared payload', () => {
    const framer = new Framer(requestFrameLayout());
    const header = encodeRequestHeader(ID, RequestCode.SEND_FILE, 0xffffffff);
    const sink = { frame: () => undefined };
    for (let i = 0; i < Size.REQUEST_HEADER - 1; i++) framer.push(header.subarray(i, i + 1), sink);
    expect(framer.bufferedBytes).toBe(Size.REQUEST_HEADER - 1);
    const err = catchProtocolError(() => framer.push(header.subarray(22), sink));
    expect(err.code).toBe(ProtocolErrorCode.PAYLOAD_TOO_LARGE);
    expect(err.messageCode).toBe(RequestCode.SEND_FILE);
    expect(catchProtocolError(() => framer.push(Buffer.alloc(1), sink)).code).toBe(
      ProtocolErrorCode.DECODER_FAILED,
    );
  });
});
