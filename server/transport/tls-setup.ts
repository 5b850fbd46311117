/**
 * Start-up of the version-4 stack for a data directory (docs/protocol-v4.md §2, §5.5): the
 * server identity in `<data-dir>/identity/` (made on first start, 0600), the fingerprint
 * bindings beside the catalog, the partial uploads and their age sweep (`--partial-ttl`).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { loadOrCreateIdentity, type Identity } from '../../shared/identity';
import type { V4Store } from '../session/v4/context';
import { createDiskV4Store } from '../storage/disk/v4-identities';
import { createDiskPartialStore } from '../storage/disk/v4-partials';
import { createDiskFileMetaStore } from '../storage/disk/v4-file-meta';
import { createMemoryFileMetaStore } from '../storage/memory/v4-file-meta';
import { createMemoryV4Store } from '../storage/memory/v4-store';
import { isPostgresUrl } from '../storage/postgres/url';
import type { V4Options } from './tls-v4';
import { ServerKeys } from './server-keys';

export const IDENTITY_DIR = 'identity';
export const DEFAULT_PARTIAL_TTL_MS = 24 * 3600 * 1000;
/** How often a running server looks for a rotated or promoted key (docs/protocol-v4.md §2.5). */
const KEY_CHECK_INTERVAL_MS = 1000;
/** The sweep runs this often at most, and at least four times per TTL. */
const MAX_SWEEP_INTERVAL_MS = 3600 * 1000;

export function identityPaths(dataDir: string): { key: string; cert: string } {
  return {
    key: join(dataDir, IDENTITY_DIR, 'identity.key'),
    cert: join(dataDir, IDENTITY_DIR, 'identity.crt'),
  };
}

/** The server's identity, made and saved if the data directory has none yet. */
export async function serverIdentity(
  dataDir: string,
  now: () => number = Date.now,
): Promise<Identity & { readonly created: boolean }> {
  return loadOrCreateIdentity(identityPaths(dataDir), 'sft-server', { now, random: randomBytes });
}

export interface V4SetupOptions {
  readonly logger: Logger;
  /** The catalog's backend: `memory` keeps bindings in memory too, anything else on disk. */
  readonly database?: string;
  /** The byte backend: with PostgreSQL and `s3://`, partial uploads are shared by instances. */
  readonly storage?: string;
  readonly s3Endpoint?: string;
  readonly partialTtlMs?: number;
  readonly checkpointIntervalMs?: number;
  readonly now?: () => number;
}

export interface V4Setup {
  readonly options: V4Options;
  readonly fingerprint: string;
  close(): Promise<void>;
}

export async function openV4(dataDir: string, setup: V4SetupOptions): Promise<V4Setup> {
  const now = setup.now ?? Date.now;
  const log = setup.logger;
  const identity = await serverIdentity(dataDir, now);
  log.info(
    { fingerprint: identity.fingerprint, created: identity.created },
    identity.created ? 'v4 identity created' : 'v4 identity loaded',
  );
  const keys = await ServerKeys.open(
    { dir: join(dataDir, IDENTITY_DIR), ...identityPaths(dataDir) },
    now,
    log,
  );
  const keyTimer = setInterval(() => void keys.check(), KEY_CHECK_INTERVAL_MS);
  keyTimer.unref();
  // A memory catalog forgets its clients on restart; its bindings go with it.
  const identities: V4Store =
    setup.database === 'memory'
      ? createMemoryV4Store()
      : isPostgresUrl(setup.database)
        ? // Shared by every instance of the database, like the clients themselves.
          // Loaded only then: the driver costs memory and start-up time in every server.
          await (
            await import('../storage/postgres')
          ).openPostgresV4Store({ url: setup.database, now, logger: log })
        : createDiskV4Store(join(dataDir, IDENTITY_DIR));
  // Shared by every instance of one database and bucket: an upload resumes on any of them.
  const shared =
    isPostgresUrl(setup.database) && setup.storage?.startsWith('s3://') === true
      ? await (
          await import('../storage/postgres')
        ).openSharedPartials({
          url: setup.database,
          storage: setup.storage,
          now,
          logger: log,
          ...(setup.s3Endpoint === undefined ? {} : { s3Endpoint: setup.s3Endpoint }),
        })
      : undefined;
  const partials = shared?.partials ?? createDiskPartialStore(dataDir, now);
  const ttl = setup.partialTtlMs ?? DEFAULT_PARTIAL_TTL_MS;
  const sweep = async (): Promise<void> => {
    try {
      const removed = await partials.sweep(now() - ttl);
      if (removed > 0)
        log.info({ removed, ttlMs: ttl }, 'removed partial uploads past --partial-ttl');
    } catch (err) {
      log.error({ err }, 'could not sweep partial uploads');
    }
  };
  await sweep();
  const timer = setInterval(
    () => void sweep(),
    Math.min(MAX_SWEEP_INTERVAL_MS, Math.max(1000, ttl / 4)),
  );
  timer.unref();
  return {
    fingerprint: keys.fingerprint,
    options: {
      identity,
      keys,
      identities,
      partials,
      // Beside the data directory even with a shared database: a record another instance
      // lacks is only computed again (docs/protocol-v4.md §7).
      fileMeta:
        setup.database === 'memory'
          ? createMemoryFileMetaStore()
          : createDiskFileMetaStore(dataDir),
      ...(setup.checkpointIntervalMs === undefined
        ? {}
        : { checkpointIntervalMs: setup.checkpointIntervalMs }),
    },
    async close() {
      clearInterval(timer);
      clearInterval(keyTimer);
      await identities.close();
      await shared?.close();
    },
  };
}

/**
 * Client id (hex) → v4 fingerprint, for `sft-server admin clients`. Reads only: a data directory
 * without v4 bindings gives an empty map.
 */
export async function readV4Fingerprints(
  dataDir: string,
  database?: string,
): Promise<Map<string, string>> {
  const store = isPostgresUrl(database)
    ? await (
        await import('../storage/postgres')
      ).openPostgresV4Store({ url: database, now: Date.now })
    : createDiskV4Store(join(dataDir, IDENTITY_DIR));
  try {
    const identities = await store.listIdentities();
    return new Map(identities.map((i) => [i.clientId.toString('hex'), i.fingerprint]));
  } finally {
    await store.close();
  }
}
