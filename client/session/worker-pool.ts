/**
 * A queue of items worked off by several lanes (connections of one client) at once, both for
 * protocol v3 (parallel.ts) and v4 (client/v4/parallel-upload.ts). The first lane is open before
 * the pool starts; the extra ones open concurrently and take items once open. A lane has up to
 * its `window` items in flight (1 unless it pipelines); the next item in order goes to the least
 * busy lane that may take it. Results are handed out in the items' order: one done early waits
 * for the ones before it.
 *
 * An extra lane that cannot open for a reason `isRefusal` accepts (refused, reset, the server's
 * limit) costs only that lane. An item that fails ends the run as it would have one item after
 * the other: items after it that are in flight are abandoned (a lane is closed once it holds
 * only such items), the ones before it are finished and handed out, then the pool rejects with
 * the failure of the first item in order that failed.
 */
import { ExitCode } from '../../shared/exit-codes';
import { isClientError } from '../errors';

export interface Lane<T, R> {
  run(item: T): Promise<R>;
  close(): void;
  /** Items it may have in flight at once (a connection that pipelines); 1 when absent. */
  readonly window?: number;
  /**
   * True for an item that needs the lane to itself: started only on an idle lane, and nothing
   * else starts on that lane until it is done.
   */
  solo?(item: T): boolean;
}

/** The items a working lane has in flight. */
interface Flight {
  readonly items: Set<number>;
  /** One of them is solo. */
  solo: boolean;
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
  /** Lanes that take items, in the order they opened, with the items each has in flight. */
  const working = new Map<Lane<T, R>, Flight>();
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
  const retire = (lane: Lane<T, R>): void => {
    working.delete(lane);
    lane.close();
  };
  /**
   * Closes the lanes with nothing left to do: idle once the items are all started or the run
   * failed, or busy only with items after the failed one (one after the other, those would not
   * have been sent). A lane still on an earlier item finishes it first.
   */
  const retireDone = (): void => {
    const failed = failure;
    if (failed === undefined && nextToStart < items.length) return;
    for (const [lane, flight] of working) {
      if ([...flight.items].every((at) => failed !== undefined && at > failed.index)) retire(lane);
    }
  };
  const fail = (index: number, error: unknown): void => {
    if (failure && failure.index <= index) return;
    failure = { index: index < 0 ? nextToReport : index, error };
    retireDone();
    report();
  };
  const start = (lane: Lane<T, R>, flight: Flight): void => {
    const index = nextToStart++;
    const item = items[index] as T;
    const solo = lane.solo?.(item) === true;
    flight.items.add(index);
    if (solo) flight.solo = true;
    let run: Promise<R>;
    try {
      run = lane.run(item);
    } catch (err) {
      run = Promise.reject(err);
    }
    run.then(
      (result) => {
        results[index] = result;
        done(flight, index, solo);
        report();
      },
      (err: unknown) => {
        // The failure first, so that freeing its place starts nothing after it.
        fail(index, err);
        done(flight, index, solo);
      },
    );
  };
  const done = (flight: Flight, index: number, solo: boolean): void => {
    flight.items.delete(index);
    if (solo) flight.solo = false;
    pump();
    retireDone();
  };
  /**
   * Starts the next items in order on lanes that may take them, the least busy first. A busy
   * lane leaves one item for each lane still opening, so that a wide window does not take a
   * short queue away from the connections asked for; an idle lane never waits for them.
   */
  const pump = (): void => {
    while (!failure && nextToStart < items.length) {
      const item = items[nextToStart] as T;
      const spare = items.length - nextToStart - opening.size;
      let best: [Lane<T, R>, Flight] | undefined;
      for (const [lane, flight] of working) {
        const busy = flight.items.size;
        if (flight.solo || busy >= Math.max(1, lane.window ?? 1)) continue;
        if (busy > 0 && (spare <= 0 || lane.solo?.(item) === true)) continue;
        if (best === undefined || busy < best[1].items.size) best = [lane, flight];
      }
      if (best === undefined) return;
      start(...best);
    }
  };
  const take = (lane: Lane<T, R>): void => {
    working.set(lane, { items: new Set(), solo: false });
    pump();
    retireDone();
  };
  const openLane = async (): Promise<void> => {
    const abort = new AbortController();
    opening.add(abort);
    let lane: Lane<T, R>;
    try {
      lane = await options.openExtra(abort.signal);
    } catch (err) {
      opening.delete(abort);
      if (ended) return;
      if (isRefusal(err)) refusals.push(err.message);
      else fail(-1, err);
      // The item it was left is for the others now.
      pump();
      return;
    }
    opening.delete(abort);
    opened.add(lane);
    if (failure || ended || nextToStart >= items.length) {
      lane.close();
      return;
    }
    used++;
    take(lane);
  };

  const extras = Math.max(0, Math.min(options.lanes, items.length) - 1);
  // The extra lanes count as opening before the first one takes its items.
  for (let i = 0; i < extras; i++) void openLane();
  take(options.first);
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
