/**
 * An in-process server with the v4 stack over memory backends (or backends the test owns), on
 * an ephemeral loopback port: the setup the v4 server tests share. `files: true` adds
 * list/download/delete (file metadata and the byte store); everything else in `options` goes to
 * createServer as it is.
 */
import { createDiskPartialStore } from '../../server/storage/disk/v4-partials';
import type { V4FileMetaStore } from '../../server/session/v4/file-meta';
import { createMemoryFileMetaStore } from '../../server/storage/memory/v4-file-meta';
import { createMemoryV4Store } from '../../server/storage/memory/v4-store';
import { openBackends, type Backends } from '../../server/storage/open-backends';
import type { Catalog } from '../../server/storage/types';
import { createServer, type ServerOptions, type SftServer } from '../../server/transport/listener';
import type { V4Options } from '../../server/transport/tls-v4';
import { serverIdentity } from '../../server/transport/tls-setup';
import type { Identity } from '../../shared/identity';
import { silentLogger } from '../../shared/logger';

export interface MemoryServerOptions {
  readonly server?: Omit<ServerOptions, 'store' | 'files' | 'v4'>;
  readonly v4?: Partial<Pick<V4Options, 'handshakeTimeoutMs' | 'random'>>;
  /** Adds list, download and delete. */
  readonly files?: boolean;
  /** Backends the test opened and closes itself, instead of fresh memory ones. */
  readonly backends?: Backends;
  /** The catalog sessions use, in place of the backends' (a wrapped or failing one). */
  readonly store?: Catalog;
  /** With `files`: the file records, in place of memory ones. */
  readonly fileMeta?: V4FileMetaStore;
}

export interface MemoryServer {
  readonly server: SftServer;
  readonly backends: Backends;
  readonly identity: Identity;
  readonly port: number;
  close(): Promise<void>;
}

/** SQLite and disk backends in `dataDir`, as `sft-server` opens them by default (one kept version). */
export function openSqliteDisk(dataDir: string): Promise<Backends> {
  return openBackends({
    dataDir,
    database: 'sqlite',
    storage: 'disk',
    keepVersions: 1,
    now: Date.now,
  });
}

export async function startMemoryServer(
  dir: string,
  options: MemoryServerOptions = {},
): Promise<MemoryServer> {
  const owned = options.backends === undefined;
  const backends =
    options.backends ??
    (await openBackends({
      dataDir: dir,
      database: 'memory',
      storage: 'memory',
      keepVersions: 1,
      now: Date.now,
    }));
  const identity = await serverIdentity(dir);
  const server = createServer({
    logger: silentLogger(),
    ...options.server,
    store: options.store ?? backends.catalog,
    files: backends.files,
    v4: {
      identity,
      identities: createMemoryV4Store(),
      partials: createDiskPartialStore(dir, Date.now),
      ...options.v4,
      ...(options.files === true
        ? { fileMeta: options.fileMeta ?? createMemoryFileMetaStore(), bytes: backends.bytes }
        : {}),
    },
  });
  const { port } = await server.listen(0, '127.0.0.1');
  return {
    server,
    backends,
    identity,
    port,
    async close() {
      await server.close(0);
      if (owned) await backends.close();
    },
  };
}
