/**
 * The one incremental framer: socket chunks in, whole frames out, for the server's requests,
 * the client's responses and the tests alike (docs/protocol.md §1, §9).
 *
 * - Each chunk is walked with an offset; a frame lying whole inside it is handed out as
 *   (buffer, offset), with no copy and no per-frame object. Only a frame split across chunks is
 *   assembled, in one reusable buffer, and only up to its own end.
 * - The declared payload size is checked against the limit of its code the moment the header is
 *   complete, before any payload is buffered; a framing error fails the framer for good
 *   (PAYLOAD_TOO_LARGE, then DECODER_FAILED on every later push).
 * - `hold()`: while the consumer serves a frame asynchronously, the unread rest of the chunk and
 *   every later chunk are kept as they arrived; `release()` walks them from the same byte.
 * - Every frame is offered to the sink's `fast` hook first, so the bulk of an upload can be
 *   consumed raw without allocating anything per packet.
 *
 * What a header looks like is the layout's business (protocol/v3/frame-layouts.ts), so this file
 * holds no byte offset of any protocol version.
 */
import { ProtocolErrorCode, protocolError, type ProtocolError } from './errors';

export interface FrameLayout {
  readonly headerSize: number;
  /** The message code of the complete header at `offset`. */
  readCode(buf: Buffer, offset: number): number;
  /** The declared payload size of the complete header at `offset`. */
  readPayloadSize(buf: Buffer, offset: number): number;
  /** Largest declared payload accepted for `code`; past it the stream is broken (§9). */
  payloadLimit(code: number): number;
  /**
   * Bytes that really follow the header on the wire, when a quirk makes them differ from the
   * declared size (the response side's 1600 with size 0, §9). Absent: the declared size.
   */
  wirePayloadSize?(code: number, payloadSize: number): number;
  /**
   * Called at every frame boundary with the unread bytes at `offset`; returns the offset to go
   * on from. The response side drops undeclared bytes after a 1604 with it (§9).
   */
  skipBetweenFrames?(buf: Buffer, offset: number): number;
}

/**
 * Receives frames. The frame's header starts at `offset` of `buf` and `payloadSize` bytes of
 * payload follow it (the wire size, see `FrameLayout.wirePayloadSize`). `buf` is the caller's
 * chunk or the framer's assembly buffer: views into it are valid only during the call.
 */
export interface FrameSink {
  /** Offered every frame first; returns true when it consumed the frame. */
  fast?(buf: Buffer, offset: number, code: number, payloadSize: number): boolean;
  /** Every frame `fast` did not take. */
  frame(buf: Buffer, offset: number, code: number, payloadSize: number): void;
}

const EMPTY = Buffer.alloc(0);

export class Framer {
  private readonly headerSize: number;
  private failure: ProtocolError | undefined;
  /** Assembly of a frame split across chunks; grows up to the largest such frame. */
  private partial: Buffer = EMPTY;
  private partialLength = 0;
  /** Total size of the frame being assembled, once its header is complete; else -1. */
  private partialFrameSize = -1;
  /** Set by `hold`: no frame is delivered until `release`. */
  private holding = false;
  /** Chunks not walked yet (the first one from `heldOffset`). */
  private readonly held: Buffer[] = [];
  private heldOffset = 0;

  constructor(private readonly layout: FrameLayout) {
    this.headerSize = layout.headerSize;
  }

  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** True while a frame has started arriving but is not complete. */
  get inFrame(): boolean {
    return this.partialLength > 0;
  }

  /** Bytes of the incomplete frame being assembled (held chunks are not counted). */
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
   * (PAYLOAD_TOO_LARGE) on a framing error, after delivering the frames before it, and
   * DECODER_FAILED on any push after that.
   */
  push(chunk: Buffer, sink: FrameSink): void {
    this.checkNotFailed();
    if (this.holding || this.held.length > 0) {
      if (chunk.length > 0) this.held.push(chunk);
      return;
    }
    this.walk(chunk, 0, sink);
  }

  /** Ends `hold` and walks what was kept, until done or held again; throws like `push`. */
  release(sink: FrameSink): void {
    this.holding = false;
    while (!this.holding && this.held.length > 0) {
      this.checkNotFailed();
      const chunk = this.held.shift() as Buffer;
      const from = this.heldOffset;
      this.heldOffset = 0;
      this.walk(chunk, from, sink);
    }
  }

  /** Delivers the frames of `chunk` from `from`; keeps the rest if the sink holds meanwhile. */
  private walk(chunk: Buffer, from: number, sink: FrameSink): void {
    const { headerSize, layout } = this;
    const end = chunk.length;
    let pos = from;
    if (this.partialLength > 0) {
      pos = this.appendPartial(chunk, pos);
      if (this.partialFrameSize < 0 || this.partialLength < this.partialFrameSize) return;
      const size = this.partialFrameSize;
      this.partialLength = 0;
      this.partialFrameSize = -1;
      this.deliver(this.partial, 0, layout.readCode(this.partial, 0), size - headerSize, sink);
    }
    while (true) {
      if (this.holding) {
        if (pos < end) this.keep(chunk, pos);
        return;
      }
      if (layout.skipBetweenFrames !== undefined) pos = layout.skipBetweenFrames(chunk, pos);
      if (end - pos < headerSize) break;
      const code = layout.readCode(chunk, pos);
      const payloadSize = this.checkedWireSize(code, layout.readPayloadSize(chunk, pos));
      if (end - pos - headerSize < payloadSize) break;
      this.deliver(chunk, pos, code, payloadSize, sink);
      pos += headerSize + payloadSize;
    }
    if (pos < end) this.appendPartial(chunk, pos);
  }

  private deliver(
    buf: Buffer,
    offset: number,
    code: number,
    payloadSize: number,
    sink: FrameSink,
  ): void {
    if (sink.fast === undefined || !sink.fast(buf, offset, code, payloadSize)) {
      sink.frame(buf, offset, code, payloadSize);
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

  /** The wire payload size of a header, failing the framer if it declares too much (§9). */
  private checkedWireSize(code: number, payloadSize: number): number {
    const limit = this.layout.payloadLimit(code);
    if (payloadSize > limit) {
      this.failure = protocolError(
        ProtocolErrorCode.PAYLOAD_TOO_LARGE,
        `payload size ${payloadSize} over the limit ${limit} for code ${code}`,
        code,
      );
      this.partial = EMPTY;
      this.partialLength = 0;
      this.partialFrameSize = -1;
      this.held.length = 0;
      throw this.failure;
    }
    const { layout } = this;
    return layout.wirePayloadSize === undefined
      ? payloadSize
      : layout.wirePayloadSize(code, payloadSize);
  }

  private ensureCapacity(size: number): void {
    if (this.partial.length >= size) return;
    const next = Buffer.allocUnsafe(Math.max(size, this.partial.length * 2, this.headerSize));
    this.partial.copy(next, 0, 0, this.partialLength);
    this.partial = next;
  }

  /** Appends bytes of `chunk` from `from` to the frame being assembled; returns where it stopped. */
  private appendPartial(chunk: Buffer, from: number): number {
    const { headerSize } = this;
    let pos = from;
    if (this.partialFrameSize < 0) {
      const want = Math.min(headerSize - this.partialLength, chunk.length - pos);
      this.ensureCapacity(headerSize);
      chunk.copy(this.partial, this.partialLength, pos, pos + want);
      this.partialLength += want;
      pos += want;
      if (this.partialLength < headerSize) return pos;
      const code = this.layout.readCode(this.partial, 0);
      const payloadSize = this.layout.readPayloadSize(this.partial, 0);
      this.partialFrameSize = headerSize + this.checkedWireSize(code, payloadSize);
      this.ensureCapacity(this.partialFrameSize);
    }
    const want = Math.min(this.partialFrameSize - this.partialLength, chunk.length - pos);
    chunk.copy(this.partial, this.partialLength, pos, pos + want);
    this.partialLength += want;
    return pos + want;
  }
}
