/**
 * Sending files over several v4 connections of one client at once (`--parallel`): the first
 * session is opened as usual (pin check, first contact, REGISTER or MIGRATE); the extra ones are
 * pinned to its fingerprint and use its certificate (V4ClientSession.openExtra). The queue, the
 * argument order of the results and the giving up of refused connections are the v3 sender's
 * (session/worker-pool.ts); unlike v3, each connection keeps several small files in flight
 * (docs/protocol-v4.md §5.10), with one connection as with several.
 */
import { runPool, type Degraded, type Lane } from '../session/worker-pool';
import { PIPELINE_WINDOW } from './pipeline';
import type { V4Plan } from './plan';
import type { ExtraSessionOptions, V4ClientSession } from './session';
import type { V4UploadResult } from './upload';

export interface V4ParallelOptions {
  /** Open; closed at the end like the extra sessions. */
  readonly first: V4ClientSession;
  readonly plans: readonly V4Plan[];
  /** Connections to use at most, the first included. */
  readonly connections: number;
  readonly extra: Omit<ExtraSessionOptions, 'signal'>;
  /** One upload over `session` (plain or end-to-end encrypted). */
  readonly upload: (session: V4ClientSession, plan: V4Plan) => Promise<V4UploadResult>;
  /** Bytes `upload` sends of a file (its ciphertext's when encrypted); the file's size if absent. */
  readonly sizeOnWire?: (plan: V4Plan) => number;
  /** Each result in argument order. */
  readonly onResult?: (result: V4UploadResult) => void;
  /** At the end, when the server refused extra connections. */
  readonly onDegraded?: (degraded: Degraded) => void;
}

export async function uploadInParallel(
  options: V4ParallelOptions,
): Promise<readonly V4UploadResult[]> {
  // Up to PIPELINE_WINDOW files on each connection; a file the session sends alone (larger
  // than a chunk, or any once the server proved not to pipeline) goes on an idle connection,
  // so that files do not queue behind it while another connection is free.
  const laneOf = (session: V4ClientSession): Lane<V4Plan, V4UploadResult> => ({
    run: (plan) => options.upload(session, plan),
    close: () => session.close(),
    window: PIPELINE_WINDOW,
    solo: (plan) => !session.pipelines(options.sizeOnWire?.(plan) ?? plan.size),
  });
  const outcome = await runPool({
    items: options.plans,
    first: laneOf(options.first),
    lanes: options.connections,
    openExtra: async (signal) =>
      laneOf(await options.first.openExtra({ ...options.extra, signal })),
    onResult: options.onResult,
  });
  if (outcome.degraded) options.onDegraded?.(outcome.degraded);
  return outcome.results;
}
