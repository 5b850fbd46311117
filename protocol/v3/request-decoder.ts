/**
 * The server's request decoder: the framer (protocol/framer.ts) under the request layout, with
 * the fast path first and validated requests otherwise (§1, §3, §9).
 */
import { Framer, type FrameSink } from '../framer';
import { Size } from './constants';
import { decodeRequestFrame, type DecodedRequest } from './decode';
import {
  DEFAULT_REQUEST_LIMITS,
  readRequestHeader,
  requestFrameLayout,
  type RequestLimits,
} from './frame-layouts';

export interface RequestSink {
  /**
   * Offered every frame first; returns true if it consumed it. The frame's header starts at
   * `offset` of `buf` and its payload follows it; `buf` may be reused after the call. Read it
   * through protocol/v3/send-file-view.ts, not by offset.
   */
  fast?(buf: Buffer, offset: number, code: number, payloadSize: number): boolean;
  /** Every frame the fast path did not take, decoded (views valid only during the call). */
  request(decoded: DecodedRequest): void;
}

/** The sink before the first push; frames reach a sink only inside push and release. */
const NO_SINK: RequestSink = { request: () => undefined };

/** TCP chunks in, requests out in order; see Framer for views, limits and hold/release. */
export class RequestDecoder {
  private readonly framer: Framer;
  /** The sink of the push or release running now. */
  private sink: RequestSink = NO_SINK;
  /** Adapts frames to the current sink; one object for the decoder's life, nothing per frame. */
  private readonly frames: FrameSink = {
    fast: (buf, offset, code, payloadSize) =>
      this.sink.fast !== undefined && this.sink.fast(buf, offset, code, payloadSize),
    frame: (buf, offset, _code, payloadSize) => {
      const start = offset + Size.REQUEST_HEADER;
      const payload = buf.subarray(start, start + payloadSize);
      this.sink.request(decodeRequestFrame(readRequestHeader(buf, offset), payload));
    },
  };

  constructor(limits: Partial<RequestLimits> = {}) {
    this.framer = new Framer(requestFrameLayout({ ...DEFAULT_REQUEST_LIMITS, ...limits }));
  }

  get failed(): boolean {
    return this.framer.failed;
  }

  /** True while a request has started arriving but is not complete. */
  get inFrame(): boolean {
    return this.framer.inFrame;
  }

  /** Bytes of the incomplete request being assembled. */
  get bufferedBytes(): number {
    return this.framer.bufferedBytes;
  }

  /** True when received bytes wait for `release`. */
  get pending(): boolean {
    return this.framer.pending;
  }

  /** Stops delivering requests after the current one; later bytes are kept for `release`. */
  hold(): void {
    this.framer.hold();
  }

  /**
   * Feeds one chunk: delivers its requests in order, valid or not, unless holding. Throws a
   * fatal ProtocolError (PAYLOAD_TOO_LARGE, DECODER_FAILED) on a framing error.
   */
  push(chunk: Buffer, sink: RequestSink): void {
    this.sink = sink;
    this.framer.push(chunk, this.frames);
  }

  /** Ends `hold` and delivers what was kept, until done or held again; throws like `push`. */
  release(sink: RequestSink): void {
    this.sink = sink;
    this.framer.release(this.frames);
  }
}
