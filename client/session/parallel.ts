/**
 * Sending files over several connections of one client at once. The first connection
 * reconnects or registers as usual; each extra one reconnects (1027) with the identity that
 * gives, so it has its own session key (docs/protocol.md §9: sessions are per connection), and
 * takes the next file from a shared queue. Results come back in argument order.
 *
 * A server that will not take an extra connection (refused, reset, closed, 1606 or 1607 to its
 * 1027) costs nothing but that connection: the files go over the ones it took.
 */
import { ExitCode } from '../../shared/exit-codes';
import type { Identity } from '../config/identity';
import { isClientError } from '../errors';
import { Session, type SessionOptions } from './session';
import type { SessionEvents, UploadResult } from './types';
import type { UploadPlan } from './upload-plan';

export interface ParallelSendOptions {
  /** Options of the first connection; extra connections reuse them with its identity. */
  readonly session: SessionOptions;
  readonly plans: readonly UploadPlan[];
  /** Connections to use at most (1 = one connection, files one after another). */
  readonly connections: number;
  /** Once the first connection has its key. */
  readonly onOpen?: (identity: Identity, registered: boolean) => void;
  /** Each result in argument order: a file done early waits for the ones before it. */
  readonly onResult?: (result: UploadResult) => void;
  /** At the end, when the server refused extra connections. */
  readonly onDegraded?: (degraded: Degraded) => void;
}

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

export interface ParallelSendResult {
  readonly identity: Identity;
  readonly registered: boolean;
  /** In argument order. */
  readonly results: readonly UploadResult[];
  /** Connections that sent files. */
  readonly connections: number;
}

/** Errors after which an extra connection is given up instead of failing the run. */
function refusedExtra(err: unknown): err is Error {
  return (
    isClientError(err) &&
    (err.exitCode === ExitCode.CONNECTION || err.exitCode === ExitCode.REJECTED)
  );
}

/** The events of an extra connection: quiet until it has its key, then those of the run. */
function extraEvents(events: Partial<SessionEvents>, isOpen: () => boolean) {
  const quiet: Partial<SessionEvents> = {
    ...events,
    reconnected: undefined,
    serverError: (what, reason) => {
      if (isOpen()) events.serverError?.(what, reason);
    },
  };
  return quiet;
}

export async function sendInParallel(options: ParallelSendOptions): Promise<ParallelSendResult> {
  const { plans } = options;
  const results: (UploadResult | undefined)[] = plans.map(() => undefined);
  const sessions: Session[] = [];
  let nextToStart = 0;
  let nextToReport = 0;
  let failure: { readonly error: unknown } | undefined;
  const refusals: string[] = [];
  let used = 1;

  let settle: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (settle = resolve));
  const stop = (error: unknown): void => {
    if (failure) return;
    failure = { error };
    // Uploads in flight on other connections end with the connection.
    for (const session of sessions) session.close();
    settle();
  };
  const report = (): void => {
    if (failure) return;
    for (let r = results[nextToReport]; r !== undefined; r = results[nextToReport]) {
      nextToReport++;
      options.onResult?.(r);
    }
    if (nextToReport === plans.length) settle();
  };
  const work = async (session: Session): Promise<void> => {
    try {
      while (!failure && nextToStart < plans.length) {
        const index = nextToStart++;
        results[index] = await session.upload(plans[index]);
        report();
      }
    } catch (err) {
      stop(err);
    } finally {
      session.close();
    }
  };

  const first = new Session(options.session);
  sessions.push(first);
  let identity: Identity;
  try {
    identity = await first.open();
  } catch (err) {
    first.close();
    throw err;
  }
  options.onOpen?.(identity, first.registered);
  if (plans.length === 0) settle();

  const extras = Math.max(0, Math.min(options.connections, plans.length) - 1);
  void work(first);
  for (let i = 0; i < extras; i++) {
    let open = false;
    const session = new Session({
      ...options.session,
      identity,
      reconnectOnly: true,
      openAttempts: 1,
      events: extraEvents(options.session.events ?? {}, () => open),
    });
    sessions.push(session);
    void session
      .open()
      .then(
        async () => {
          open = true;
          if (failure || nextToStart >= plans.length) {
            session.close();
            return;
          }
          used++;
          await work(session);
        },
        (err: unknown) => {
          session.close();
          if (refusedExtra(err)) refusals.push(err.message);
          else stop(err);
        },
      )
      .catch(stop);
  }
  // Not all lanes are awaited: an extra connection still waiting for its TCP handshake must not
  // hold up a run whose files are all sent; it closes itself once it gets there.
  await finished;
  // Connections cut off by stop() unwind on their own; their errors are not the run's.
  if (failure) throw failure.error;
  if (refusals.length > 0) {
    options.onDegraded?.({
      asked: extras + 1,
      refused: refusals.length,
      used,
      reason: refusals[0],
    });
  }
  return {
    identity,
    registered: first.registered,
    results: results as UploadResult[],
    connections: used,
  };
}
