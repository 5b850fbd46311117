/**
 * A queue of items worked off by several lanes (connections of one client) at once, both for
 * protocol v3 (parallel.ts) and v4 (client/v4/parallel-upload.ts). The first lane is open before
 * the pool starts; the extra ones open concurrently and each takes the next item once open.
 * Results are handed out in the items' order: one done early waits for the ones before it.
 *
 * An extra lane that cannot open for a reason `isRefusal` accepts (refused, reset, the server's
 * limit) costs only that lane. An item that fails ends the run as it would have one item after
 * the other: items after it that are in flight are abandoned (their lanes closed), the ones
 * before it are finished and handed out, then the pool rejects with the failure of the first
 * item in order that failed.
 */
import { ExitCode } from '../../shared/exit-codes';
import { isClientError } from '../errors';

export interface Lane<T, R> {
  run(item: T): Promise<R>;
  close(): void;
}

export interface PoolOptions<T, R> {
  readonly items: readonly T[];
  /** Open already. */
  readonly first: Lane<T, R>;
  /** Lanes to use at most, the first included (never more than there are items). */
  readonly lanes: number;
  /** Opens one extra lane; `signal`, this lane's own, aborts once the pool needs it no more. */
  readonly openExtra: (signal: AbortSignal) => Promise<Lane<T, R>>;
  /** True when an extra lane's open failure costs only that lane (else it ends the run). */
  readonly isRefusal?: (err: unknown) => err is Error;
  readonly onResult?: (result: R) => void;
}

/** What the pool says when the server refused extra lanes. */
export interface Degraded {
  /** Connections asked for, the first one included. */
  readonly asked: number;
  /** Extra connections the server refused. */
  readonly refused: number;
  /** Connections that sent files. */
  readonly used: number;
  /** Why the first refused one failed. */
  readonly reason: string;
}

export interface PoolOutcome<R> {
  /** In the items' order. */
  readonly results: readonly R[];
  /** Lanes that worked off items. */
  readonly used: number;
  /** Set when extra lanes were refused. */
  readonly degraded: Degraded | undefined;
}

/** Errors after which an extra connection is given up instead of failing the run. */
export function refusedExtra(err: unknown): err is Error {
  return (
    isClientError(err) &&
    (err.exitCode === ExitCode.CONNECTION || err.exitCode === ExitCode.REJECTED)
  );
}

/** The note printed when the server refused extra connections. */
export function degradedNote({ asked, refused, used, reason }: Degraded): string {
  return (
    `the server refused ${refused} of ${asked - 1} extra connections (${reason}); ` +
    `the files went over ${used} connection${used === 1 ? '' : 's'}`
  );
}

export async function runPool<T, R>(options: PoolOptions<T, R>): Promise<PoolOutcome<R>> {
  const { items } = options;
  const isRefusal = options.isRefusal ?? refusedExtra;
  const results: (R | undefined)[] = items.map(() => undefined);
  /** The item each working lane is on. */
  const busy = new Map<Lane<T, R>, number>();
  const opened = new Set<Lane<T, R>>([options.first]);
  /**
   * One controller per extra lane still opening. A signal shared by all would carry one abort
   * listener per opening connection, and Node warns of a leak past 10 on one signal.
   */
  const opening = new Set<AbortController>();
  let ended = false;
  let nextToStart = 0;
  let nextToReport = 0;
  /**
   * The failure of the first item in order that failed; a lane's open failure that is not a
   * refusal stands at the next result to hand out (nothing more is handed out).
   */
  let failure: { readonly index: number; readonly error: unknown } | undefined;
  const refusals: string[] = [];
  let used = 1;

  let settle: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (settle = resolve));
  const report = (): void => {
    const end = failure ? failure.index : items.length;
    for (let r = results[nextToReport]; nextToReport < end && r !== undefined;) {
      options.onResult?.(r);
      r = results[++nextToReport];
    }
    if (nextToReport >= end) settle();
  };
  const fail = (index: number, error: unknown): void => {
    if (failure && failure.index <= index) return;
    failure = { index: index < 0 ? nextToReport : index, error };
    // Items after the failed one would not have been sent one after the other.
    for (const [lane, at] of busy) if (at > failure.index) lane.close();
    report();
  };
  const work = async (lane: Lane<T, R>): Promise<void> => {
    try {
      while (!failure && nextToStart < items.length) {
        const index = nextToStart++;
        busy.set(lane, index);
        try {
          results[index] = await lane.run(items[index] as T);
        } catch (err) {
          fail(index, err);
          return;
        }
        busy.delete(lane);
        report();
      }
    } finally {
      busy.delete(lane);
      lane.close();
    }
  };
  const openLane = async (): Promise<void> => {
    const abort = new AbortController();
    opening.add(abort);
    let lane: Lane<T, R>;
    try {
      lane = await options.openExtra(abort.signal);
    } catch (err) {
      if (ended) return;
      if (isRefusal(err)) refusals.push(err.message);
      else fail(-1, err);
      return;
    } finally {
      opening.delete(abort);
    }
    opened.add(lane);
    if (failure || ended || nextToStart >= items.length) {
      lane.close();
      return;
    }
    used++;
    await work(lane);
  };

  const extras = Math.max(0, Math.min(options.lanes, items.length) - 1);
  void work(options.first);
  for (let i = 0; i < extras; i++) void openLane();
  report();
  // Lanes still opening are not awaited: one waiting for its TCP handshake must not hold up a
  // run whose items are all done; the abort makes it close itself.
  await finished;
  ended = true;
  for (const abort of opening) abort.abort();
  // Every result handed out is done; lanes still busy are on abandoned items.
  for (const lane of opened) lane.close();
  if (failure) throw failure.error;
  return {
    results: results as R[],
    used,
    degraded:
      refusals.length > 0
        ? { asked: extras + 1, refused: refusals.length, used, reason: refusals[0] as string }
        : undefined,
  };
}
