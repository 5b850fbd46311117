/**
 * Bounds the garbage an upload leaves between garbage collections.
 *
 * Every socket read (64 KiB) and every decipher update allocates a fresh buffer whose memory
 * lives outside the JS heap; V8 frees it only when a collection finds its small JS wrapper dead.
 * The upload fast path allocates almost nothing on the JS heap, so young-generation collections
 * come rarely and tens of MiB of dead buffers pile up during a large upload (measured: server
 * peak RSS ~96 MB for one 64 MB upload). A minor collection every few MiB of data frees them
 * while they are few; it costs well under a millisecond because almost nothing is alive in the
 * young generation (issue 5: server peak RSS for that upload ~76 MB with it, same throughput).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Data processed between two nudges. */
export const GC_NUDGE_EVERY_BYTES = 4 * 1024 * 1024;

export interface MemoryNudge {
  /** Reports `bytes` of data processed; collects young garbage every so often. */
  note(bytes: number): void;
}

export class GcNudge implements MemoryNudge {
  private sinceLast = 0;

  constructor(
    private readonly collect: () => void,
    private readonly everyBytes = GC_NUDGE_EVERY_BYTES,
  ) {}

  note(bytes: number): void {
    this.sinceLast += bytes;
    if (this.sinceLast < this.everyBytes) return;
    this.sinceLast = 0;
    this.collect();
  }
}

/** Does nothing: for tests and when no collector is available. */
export const noNudge: MemoryNudge = { note: () => undefined };

/**
 * A minor (young-generation) collection, through the `gc` function that `--expose-gc` gives new
 * contexts (the pattern Node's documentation of `v8.setFlagsFromString` shows). Undefined if
 * this V8 does not provide it, in which case the server simply runs without nudges.
 */
export function minorCollector(): (() => void) | undefined {
  setFlagsFromString('--expose-gc');
  const gc: unknown = runInNewContext('typeof gc === "function" ? gc : undefined');
  if (typeof gc !== 'function') return undefined;
  const collect = gc as (options: { type: 'minor' | 'major' }) => void;
  return () => collect({ type: 'minor' });
}

/** The nudge a server uses: a real one when a collector is available, else none. */
export function createGcNudge(): MemoryNudge {
  const collect = minorCollector();
  return collect === undefined ? noNudge : new GcNudge(collect);
}
