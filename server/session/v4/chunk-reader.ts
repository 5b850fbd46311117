/**
 * Reads a stream in pieces of a given size, for downloads (docs/protocol-v4.md §5.6):
 * each READ takes the next piece, so the server holds at most one stream chunk and one piece
 * per download, whatever the file's size.
 */
export class ChunkReader {
  private readonly iterator: AsyncIterator<unknown>;
  private pending: Buffer = Buffer.alloc(0);
  private ended = false;

  constructor(private readonly stream: NodeJS.ReadableStream) {
    this.iterator = stream[Symbol.asyncIterator]();
  }

  /** `max` bytes, fewer only at the end of the stream (an empty buffer after it). */
  async next(max: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let have = 0;
    while (have < max) {
      if (this.pending.length === 0) {
        if (this.ended) break;
        const step = await this.iterator.next();
        if (step.done === true) {
          this.ended = true;
          break;
        }
        this.pending = Buffer.isBuffer(step.value) ? step.value : Buffer.from(String(step.value));
        continue;
      }
      const piece = this.pending.subarray(0, max - have);
      this.pending = this.pending.subarray(piece.length);
      parts.push(piece);
      have += piece.length;
    }
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, have);
  }

  /** Skips `count` bytes; false when the stream ended first. */
  async skip(count: number): Promise<boolean> {
    let left = count;
    while (left > 0) {
      const piece = await this.next(Math.min(left, 1 << 20));
      if (piece.length === 0) return false;
      left -= piece.length;
    }
    return true;
  }

  /** Lets go of the stream (a download given up or finished). */
  async close(): Promise<void> {
    this.ended = true;
    this.pending = Buffer.alloc(0);
    await this.iterator.return?.().catch(() => undefined);
    const destroy = (this.stream as { destroy?: () => void }).destroy;
    destroy?.call(this.stream);
  }
}
