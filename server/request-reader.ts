/**
 * The server's request framing (§1): frames go first to a fast path that may consume them raw,
 * then to full decoding and validation (protocol/decode.ts).
 *
 * Unlike the generic FrameDecoder it walks each socket chunk with plain offsets and hands the
 * fast path (buffer, offset) pairs, so the bulk of an upload (tens of thousands of 1 KiB 1028s
 * per second, issue 5) allocates no header object or view per packet. It can also be told to
 * `hold`: while the connection serves a request asynchronously, the unread rest of the chunk
 * (and any later chunk) is kept as it is instead of being decoded and copied into a queue; the
 * walk goes on from the same byte on `release`. Limits are checked the moment a header is
 * complete, before any of its payload is buffered (§9), as FrameDecoder does.
 */
import { ProtocolErrorCode, protocolError, type ProtocolError } from '../protocol/errors';
import {
  DEFAULT_REQUEST_LIMITS,
  decodeRequestFrame,
  requestPayloadLimit,
  type DecodedRequest,
  type RequestLimits,
} from '../protocol/v3/decode';
import { RequestCode, Size } from '../protocol/v3/constants';

export interface RequestSink {
  /**
   * Offered every frame first; returns true if it consumed it. The frame's header starts at
   * `offset` of `buf` and its payload follows it; `buf` may be reused after the call.
   */
  fast(buf: Buffer, offset: number, code: number, payloadSize: number): boolean;
  /** Every frame the fast path did not take, decoded (views valid only during the call). */
  request(decoded: DecodedRequest): void;
}

/** Offsets in the request header (§1). */
const HEADER_AT = {
  VERSION: Size.CLIENT_ID,
  CODE: Size.CLIENT_ID + Size.VERSION,
  PAYLOAD_SIZE: Size.CLIENT_ID + Size.VERSION + Size.CODE,
} as const;
const HEADER_SIZE = Size.REQUEST_HEADER;
const EMPTY = Buffer.alloc(0);

function decodeFrame(
  buf: Buffer,
  offset: number,
  code: number,
  payloadSize: number,
): DecodedRequest {
  const header = {
    clientId: buf.subarray(offset, offset + Size.CLIENT_ID),
    version: buf[offset + HEADER_AT.VERSION],
    code,
    payloadSize,
  };
  const start = offset + HEADER_SIZE;
  return decodeRequestFrame(header, buf.subarray(start, start + payloadSize));
}

export class RequestReader {
  private readonly limits: RequestLimits;
  /** The limit of the code that makes up the bulk of the traffic, looked up once. */
  private readonly sendFileLimit: number;
  private failure: ProtocolError | undefined;
  /** Assembly of a frame split across chunks; grows up to the largest frame seen. */
  private partial: Buffer = EMPTY;
  private partialLength = 0;
  /** Total size of the frame being assembled, once its header is complete; else -1. */
  private partialFrameSize = -1;
  /** Set by `hold`: frames are not delivered until `release`. */
  private holding = false;
  /** Chunks not walked yet (the first one from `heldOffset`), kept while holding. */
  private readonly held: Buffer[] = [];
  private heldOffset = 0;

  constructor(limits: Partial<RequestLimits> = {}) {
    this.limits = { ...DEFAULT_REQUEST_LIMITS, ...limits };
    this.sendFileLimit = requestPayloadLimit(RequestCode.SEND_FILE, this.limits);
  }

  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** True while a request has started arriving but is not complete. */
  get inFrame(): boolean {
    return this.partialLength > 0;
  }

  /** Bytes of the incomplete request being assembled. */
  get bufferedBytes(): number {
    return this.partialLength;
  }

  /** True when received bytes wait for `release`. */
  get pending(): boolean {
    return this.held.length > 0;
  }

  /** Stops delivering frames after the current one; later bytes are kept for `release`. */
  hold(): void {
    this.holding = true;
  }

  /**
   * Feeds one chunk: delivers its frames in order unless holding. Throws a fatal ProtocolError
   * (PAYLOAD_TOO_LARGE) on a framing error, after delivering the frames before it.
   */
  push(chunk: Buffer, sink: RequestSink): void {
    this.checkNotFailed();
    if (this.holding || this.held.length > 0) {
      this.held.push(chunk);
      return;
    }
    this.walk(chunk, 0, sink);
  }

  /** Ends `hold` and walks what was kept, until done or held again; throws like `push`. */
  release(sink: RequestSink): void {
    this.holding = false;
    while (!this.holding && this.held.length > 0) {
      this.checkNotFailed();
      const chunk = this.held.shift() as Buffer;
      const from = this.heldOffset;
      this.heldOffset = 0;
      this.walk(chunk, from, sink);
    }
  }

  /** Delivers the frames of `chunk` from `pos`; keeps the rest if the sink holds meanwhile. */
  private walk(chunk: Buffer, from: number, sink: RequestSink): void {
    let pos = from;
    const end = chunk.length;
    if (this.partialLength > 0) {
      pos = this.appendPartial(chunk, pos);
      if (this.partialLength < this.partialFrameSize || this.partialFrameSize < 0) return;
      const size = this.partialFrameSize;
      this.partialLength = 0;
      this.partialFrameSize = -1;
      this.deliver(this.partial, 0, size - HEADER_SIZE, sink);
    }
    while (end - pos >= HEADER_SIZE) {
      if (this.holding) {
        this.keep(chunk, pos);
        return;
      }
      const code = chunk.readUInt16LE(pos + HEADER_AT.CODE);
      const payloadSize = chunk.readUInt32LE(pos + HEADER_AT.PAYLOAD_SIZE);
      this.checkLimit(code, payloadSize);
      if (end - pos - HEADER_SIZE < payloadSize) break;
      this.deliver(chunk, pos, payloadSize, sink, code);
      pos += HEADER_SIZE + payloadSize;
    }
    if (pos === end) return;
    if (this.holding) this.keep(chunk, pos);
    else this.appendPartial(chunk, pos);
  }

  private deliver(
    buf: Buffer,
    offset: number,
    payloadSize: number,
    sink: RequestSink,
    code = buf.readUInt16LE(offset + HEADER_AT.CODE),
  ): void {
    if (!sink.fast(buf, offset, code, payloadSize)) {
      sink.request(decodeFrame(buf, offset, code, payloadSize));
    }
  }

  private keep(chunk: Buffer, pos: number): void {
    this.held.unshift(chunk);
    this.heldOffset = pos;
  }

  private checkNotFailed(): void {
    if (this.failure) {
      throw protocolError(
        ProtocolErrorCode.DECODER_FAILED,
        'decoder failed earlier: ' + this.failure.message,
      );
    }
  }

  /** Fails the reader if `payloadSize` is over the limit of `code` (§9). */
  private checkLimit(code: number, payloadSize: number): void {
    const limit =
      code === RequestCode.SEND_FILE ? this.sendFileLimit : requestPayloadLimit(code, this.limits);
    if (payloadSize <= limit) return;
    this.failure = protocolError(
      ProtocolErrorCode.PAYLOAD_TOO_LARGE,
      `payload size ${payloadSize} over the limit ${limit} for code ${code}`,
      code,
    );
    this.partial = EMPTY;
    this.partialLength = 0;
    this.held.length = 0;
    throw this.failure;
  }

  private ensureCapacity(size: number): void {
    if (this.partial.length >= size) return;
    const next = Buffer.allocUnsafe(Math.max(size, this.partial.length * 2, HEADER_SIZE));
    this.partial.copy(next, 0, 0, this.partialLength);
    this.partial = next;
  }

  /** Appends bytes of `chunk` from `from` to the frame being assembled; returns where it stopped. */
  private appendPartial(chunk: Buffer, from: number): number {
    let pos = from;
    if (this.partialFrameSize < 0) {
      const want = Math.min(HEADER_SIZE - this.partialLength, chunk.length - pos);
      this.ensureCapacity(HEADER_SIZE);
      chunk.copy(this.partial, this.partialLength, pos, pos + want);
      this.partialLength += want;
      pos += want;
      if (this.partialLength < HEADER_SIZE) return pos;
      const code = this.partial.readUInt16LE(HEADER_AT.CODE);
      const payloadSize = this.partial.readUInt32LE(HEADER_AT.PAYLOAD_SIZE);
      this.checkLimit(code, payloadSize);
      this.partialFrameSize = HEADER_SIZE + payloadSize;
      this.ensureCapacity(this.partialFrameSize);
    }
    const want = Math.min(this.partialFrameSize - this.partialLength, chunk.length - pos);
    chunk.copy(this.partial, this.partialLength, pos, pos + want);
    this.partialLength += want;
    return pos + want;
  }
}
