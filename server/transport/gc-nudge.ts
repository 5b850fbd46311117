/**
 * A bound on the garbage a large transfer leaves between collections (`--gc-nudge`, on by
 * default where node gives a collector). Every socket read, TLS record and decipher update
 * allocates a fresh buffer outside the JS heap; V8 frees it only when a collection finds its
 * small wrapper dead, and the transfer path allocates so little on the JS heap that tens of MiB
 * of dead buffers pile up first. A minor collection every few MiB of data frees them while they
 * are few.
 *
 * The collector is the `gc` function node gives when started with `--expose-gc`, a choice made
 * at the process edge (the `sft-server` bin's shebang). Nothing here changes a V8 flag at run
 * time.
 */

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

type GcFunction = (options?: { type?: 'minor' | 'major' }) => void;

/**
 * A minor collection through the `gc` function the process was started with, or undefined when
 * node was started without `--expose-gc`.
 */
export function minorCollectorOf(scope: { gc?: unknown }): (() => void) | undefined {
  const gc = scope.gc;
  if (typeof gc !== 'function') return undefined;
  const collect = gc as GcFunction;
  return () => collect({ type: 'minor' });
}
