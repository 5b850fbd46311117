/**
 * Incremental frame decoder shared by the request and response decoders.
 *
 * One input chunk is walked with an offset; a frame that lies whole in the chunk is handed out
 * as a view (no copy). Only a frame split across chunks is assembled in a reusable buffer, and
 * only up to its own end: the rest of the chunk is again walked without copying. The declared
 * payload size is checked against the limit the moment the header is complete, before any of
 * the payload is buffered (PROTOCOL.md §9); a framing error leaves the decoder failed.
 */
import { ProtocolError, ProtocolErrorCode, protocolError } from './errors';

export interface FrameLayout<H> {
  readonly headerSize: number;
  /** Reads the header at `offset`; views into `buf` are fine, they are used synchronously. */
  readHeader(
    buf: Buffer,
    offset: number,
  ): H & { readonly code: number; readonly payloadSize: number };
  /** Largest payload accepted for `code`. */
  payloadLimit(code: number): number;
  /**
   * Bytes actually following the header on the wire. Normally the declared size; the response
   * side uses this for the 1600-with-size-0 quirk (§9).
   */
  wirePayloadSize?(header: H & { readonly code: number; readonly payloadSize: number }): number;
  /**
   * Called at every frame boundary (before a new header starts, also right after a frame was
   * handed out in the same chunk) with the unread bytes at `offset`; returns the offset to go on
   * from. The response side uses this to drop undeclared bytes after a 1604 (§9).
   */
  skipBetweenFrames?(buf: Buffer, offset: number): number;
}

export type FrameCallback<H> = (header: H, payload: Buffer) => void;

const EMPTY = Buffer.alloc(0);

export class FrameDecoder<H> {
  private failure: ProtocolError | undefined;
  /** Assembly buffer for a frame split across chunks; grows up to the largest frame seen. */
  private pending: Buffer = EMPTY;
  private pendingLength = 0;
  /** Total size of the frame being assembled, known once its header is complete. */
  private pendingFrameSize = -1;

  constructor(private readonly layout: FrameLayout<H>) {}

  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** Bytes held for an incomplete frame. */
  get bufferedBytes(): number {
    return this.pendingLength;
  }

  /** True when a frame has started but is not complete yet. */
  get inFrame(): boolean {
    return this.pendingLength > 0;
  }

  /**
   * Feeds one chunk. Calls `onFrame` for every complete frame, in order; the header and payload
   * are views valid only until `onFrame` returns. Throws a fatal ProtocolError on a framing
   * error, after handing out the frames before it.
   */
  push(chunk: Buffer, onFrame: FrameCallback<H>): void {
    if (this.failure) {
      throw protocolError(
        ProtocolErrorCode.DECODER_FAILED,
        'decoder failed earlier: ' + this.failure.message,
      );
    }
    let pos = 0;
    if (this.pendingLength > 0) {
      pos = this.continuePending(chunk, onFrame);
      if (pos < 0) return;
    }
    const { headerSize } = this.layout;
    while (true) {
      if (this.layout.skipBetweenFrames) pos = this.layout.skipBetweenFrames(chunk, pos);
      if (chunk.length - pos < headerSize) break;
      const header = this.layout.readHeader(chunk, pos);
      const frameSize = headerSize + this.checkedPayloadSize(header);
      if (chunk.length - pos < frameSize) break;
      onFrame(header, chunk.subarray(pos + headerSize, pos + frameSize));
      pos += frameSize;
    }
    if (pos < chunk.length) this.startPending(chunk.subarray(pos));
  }

  /** Returns the wire payload size of `header`, failing the decoder if it is over the limit. */
  private checkedPayloadSize(
    header: H & { readonly code: number; readonly payloadSize: number },
  ): number {
    const limit = this.layout.payloadLimit(header.code);
    if (header.payloadSize > limit) {
      this.failure = protocolError(
        ProtocolErrorCode.PAYLOAD_TOO_LARGE,
        `payload size ${header.payloadSize} over the limit ${limit} for code ${header.code}`,
        header.code,
      );
      this.pending = EMPTY;
      this.pendingLength = 0;
      throw this.failure;
    }
    return this.layout.wirePayloadSize ? this.layout.wirePayloadSize(header) : header.payloadSize;
  }

  private ensureCapacity(size: number): void {
    if (this.pending.length >= size) return;
    const next = Buffer.allocUnsafe(
      Math.max(size, this.pending.length * 2, this.layout.headerSize),
    );
    this.pending.copy(next, 0, 0, this.pendingLength);
    this.pending = next;
  }

  private startPending(rest: Buffer): void {
    this.pendingFrameSize = -1;
    this.pendingLength = 0;
    this.append(rest, 0);
  }

  /** Appends bytes of `chunk` from `from` to the pending frame; returns where it stopped. */
  private append(chunk: Buffer, from: number): number {
    const { headerSize } = this.layout;
    let pos = from;
    if (this.pendingFrameSize < 0) {
      const want = Math.min(headerSize - this.pendingLength, chunk.length - pos);
      this.ensureCapacity(headerSize);
      chunk.copy(this.pending, this.pendingLength, pos, pos + want);
      this.pendingLength += want;
      pos += want;
      if (this.pendingLength < headerSize) return pos;
      const header = this.layout.readHeader(this.pending, 0);
      this.pendingFrameSize = headerSize + this.checkedPayloadSize(header);
      this.ensureCapacity(this.pendingFrameSize);
    }
    const want = Math.min(this.pendingFrameSize - this.pendingLength, chunk.length - pos);
    chunk.copy(this.pending, this.pendingLength, pos, pos + want);
    this.pendingLength += want;
    return pos + want;
  }

  /** Completes the pending frame from `chunk`; returns the chunk offset after it, or -1. */
  private continuePending(chunk: Buffer, onFrame: FrameCallback<H>): number {
    const pos = this.append(chunk, 0);
    if (this.pendingFrameSize < 0 || this.pendingLength < this.pendingFrameSize) return -1;
    const { headerSize } = this.layout;
    const frame = this.pending;
    const size = this.pendingFrameSize;
    this.pendingLength = 0;
    this.pendingFrameSize = -1;
    onFrame(this.layout.readHeader(frame, 0), frame.subarray(headerSize, size));
    return pos;
  }
}
