/**
 * LastSeen written behind: sessions touch their client on every request, and a durable commit
 * per touch would dominate an upload. Touches are kept here (the latest time per client) and
 * written together at most `flushMs` after the first one, in one transaction of the backend.
 * A crash loses at most `flushMs` of LastSeen, nothing else.
 */

export interface LastSeenOptions {
  readonly flushMs: number;
  /** Writes what `take()` returns; called by the timer. */
  readonly flush: () => Promise<void>;
  /** Failures of a timer-driven flush (nobody else awaits them). */
  readonly onError: (err: unknown) => void;
}

export const DEFAULT_TOUCH_FLUSH_MS = 1000;

export class LastSeenWriteBehind {
  private readonly pending = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: LastSeenOptions) {}

  /** Records a touch of client `hex` at `time`; keeps the latest. */
  note(hex: string, time: number): void {
    const before = this.pending.get(hex);
    if (before === undefined || time > before) this.pending.set(hex, time);
    if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.options.flush().catch(this.options.onError);
      }, this.options.flushMs);
      this.timer.unref();
    }
  }

  /** A stored LastSeen with the pending touch of its client applied. */
  lastSeen(hex: string, stored: number): number {
    const pending = this.pending.get(hex);
    return pending !== undefined && pending > stored ? pending : stored;
  }

  /** Drops the pending touch of a client whose row is gone. */
  forget(hex: string): void {
    this.pending.delete(hex);
  }

  /** Takes every pending touch (client hex, time) for writing; stops the timer. */
  take(): Array<readonly [string, number]> {
    this.stop();
    const batch = [...this.pending];
    this.pending.clear();
    return batch;
  }

  stop(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }
}
