/**
 * The server's request decoder: frames (protocol/frame-decoder.ts) go first to a fast path
 * that may consume them raw, then to full decoding and validation (protocol/decode.ts).
 *
 * The fast path exists for the bulk of an upload: a 1028 that continues the upload in progress
 * is recognised by comparing its fixed fields with packet 1's bytes, without decoding strings or
 * building message objects (issue 5: tens of thousands of 1 KiB packets per second).
 */
import { isProtocolError } from '../protocol/errors';
import { FrameDecoder, type FrameLayout } from '../protocol/frame-decoder';
import {
  DEFAULT_REQUEST_LIMITS,
  decodeRequest,
  requestPayloadLimit,
  type DecodedRequest,
  type RequestLimits,
} from '../protocol/decode';
import { Size } from '../protocol/constants';

/** A request header read in place: `buf` at `offset` holds the 23 header bytes (§1). */
export interface RawRequestHeader {
  readonly buf: Buffer;
  readonly offset: number;
  readonly version: number;
  readonly code: number;
  readonly payloadSize: number;
}

export interface RequestSink {
  /**
   * Offered every frame first; returns true if it consumed it. `header.buf` and `payload` are
   * views valid only during the call.
   */
  fast(header: RawRequestHeader, payload: Buffer): boolean;
  /** Every frame the fast path did not take, decoded (views valid only during the call). */
  request(decoded: DecodedRequest): void;
}

const AT = {
  VERSION: Size.CLIENT_ID,
  CODE: Size.CLIENT_ID + Size.VERSION,
  PAYLOAD_SIZE: Size.CLIENT_ID + Size.VERSION + Size.CODE,
} as const;

function readHeader(buf: Buffer, offset: number): RawRequestHeader {
  return {
    buf,
    offset,
    version: buf[offset + AT.VERSION],
    code: buf.readUInt16LE(offset + AT.CODE),
    payloadSize: buf.readUInt32LE(offset + AT.PAYLOAD_SIZE),
  };
}

function decodeFrame(h: RawRequestHeader, payload: Buffer): DecodedRequest {
  const header = {
    clientId: h.buf.subarray(h.offset, h.offset + Size.CLIENT_ID),
    version: h.version,
    code: h.code,
    payloadSize: h.payloadSize,
  };
  try {
    return { ok: true, header, request: decodeRequest({ ...header, payload }) };
  } catch (err) {
    if (!isProtocolError(err)) throw err;
    return { ok: false, header, error: err, payload };
  }
}

export class RequestReader {
  private readonly frames: FrameDecoder<RawRequestHeader>;
  private sink: RequestSink | undefined;
  private readonly onFrame = (h: RawRequestHeader, payload: Buffer): void => {
    const sink = this.sink as RequestSink;
    if (!sink.fast(h, payload)) sink.request(decodeFrame(h, payload));
  };

  constructor(limits: Partial<RequestLimits> = {}) {
    const full: RequestLimits = { ...DEFAULT_REQUEST_LIMITS, ...limits };
    const layout: FrameLayout<RawRequestHeader> = {
      headerSize: Size.REQUEST_HEADER,
      readHeader,
      payloadLimit: (code) => requestPayloadLimit(code, full),
    };
    this.frames = new FrameDecoder(layout);
  }

  get failed(): boolean {
    return this.frames.failed;
  }

  /** True while a request has started arriving but is not complete. */
  get inFrame(): boolean {
    return this.frames.inFrame;
  }

  get bufferedBytes(): number {
    return this.frames.bufferedBytes;
  }

  /** Feeds one chunk; throws a fatal ProtocolError (PAYLOAD_TOO_LARGE) on a framing error. */
  push(chunk: Buffer, sink: RequestSink): void {
    this.sink = sink;
    try {
      this.frames.push(chunk, this.onFrame);
    } finally {
      this.sink = undefined;
    }
  }
}
