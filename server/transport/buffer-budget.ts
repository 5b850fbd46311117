/**
 * A server-wide budget for upload plaintext held in memory (docs/protocol.md §9): gathered for a
 * write group or handed to the disk and not yet written. Without it, memory grows with the
 * number of open uploads (every one may gather a whole write group). Above a quarter of the
 * limit, uploads write in small groups and after every socket read, so a stalled upload keeps
 * nothing; above the limit, connections with writes outstanding stop reading (TCP
 * backpressure) until the disk gives room back. What stays per connection is fixed: one
 * request frame and one decipher batch.
 */
export class BufferBudget {
  private usedBytes = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(readonly limit: number) {
    if (!(limit > 0)) throw new RangeError(`buffer budget must be positive, got ${limit}`);
  }

  get used(): number {
    return this.usedBytes;
  }

  /** Past the budget: connections holding upload data must stop reading. */
  get over(): boolean {
    return this.usedBytes >= this.limit;
  }

  /** Many uploads hold data: they should hand it to the disk in small groups. */
  get underPressure(): boolean {
    return this.usedBytes >= this.limit / 4;
  }

  add(bytes: number): void {
    this.usedBytes += bytes;
  }

  remove(bytes: number): void {
    this.usedBytes = Math.max(0, this.usedBytes - bytes);
    if (this.usedBytes < this.limit && this.waiters.length > 0) {
      for (const wake of this.waiters.splice(0)) wake();
    }
  }

  /** Resolves once usage is under the limit (at once if it is). */
  whenBelow(): Promise<void> {
    if (!this.over) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}
