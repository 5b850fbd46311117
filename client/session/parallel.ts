/**
 * Sending files over several connections of one client at once. The first connection
 * reconnects or registers as usual; each extra one reconnects (1027) with the identity that
 * gives, so it has its own session key (docs/protocol.md §9: sessions are per connection), and
 * takes the next file from a shared queue. Results come back in argument order.
 *
 * A server that will not take an extra connection (refused, reset, closed, 1606 or 1607 to its
 * 1027) costs nothing but that connection: the files go over the ones it took.
 */
import type { Identity } from '../config/identity';
import { Session, type SessionOptions } from './session';
import type { SessionEvents, UploadResult } from './types';
import type { UploadPlan } from './upload-plan';
import { runPool, type Degraded, type Lane } from './worker-pool';

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

export type { Degraded };

export interface ParallelSendResult {
  readonly identity: Identity;
  readonly registered: boolean;
  /** In argument order. */
  readonly results: readonly UploadResult[];
  /** Connections that sent files. */
  readonly connections: number;
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

function laneOf(session: Session): Lane<UploadPlan, UploadResult> {
  return { run: (plan) => session.upload(plan), close: () => session.close() };
}

export async function sendInParallel(options: ParallelSendOptions): Promise<ParallelSendResult> {
  const first = new Session(options.session);
  let identity: Identity;
  try {
    identity = await first.open();
  } catch (err) {
    first.close();
    throw err;
  }
  options.onOpen?.(identity, first.registered);
  const outcome = await runPool({
    items: options.plans,
    first: laneOf(first),
    lanes: options.connections,
    openExtra: async (signal) => {
      let open = false;
      const session = new Session({
        ...options.session,
        identity,
        reconnectOnly: true,
        openAttempts: 1,
        events: extraEvents(options.session.events ?? {}, () => open),
      });
      const close = (): void => session.close();
      signal.addEventListener('abort', close, { once: true });
      try {
        await session.open();
      } catch (err) {
        session.close();
        throw err;
      } finally {
        signal.removeEventListener('abort', close);
      }
      open = true;
      return laneOf(session);
    },
    onResult: options.onResult,
  });
  if (outcome.degraded) options.onDegraded?.(outcome.degraded);
  return {
    identity,
    registered: first.registered,
    results: outcome.results,
    connections: outcome.used,
  };
}
