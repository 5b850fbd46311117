/**
 * The server with its real storage: opens `defensive.db` and the file store in the data
 * directory, clears temp files a crash left, listens, and shuts down in order (listener,
 * connections, database). main.ts wraps this in a CLI; tests start it in-process.
 */
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { ServerLimits } from './transport/limits';
import { createServer, type SftServer } from './transport/listener';
import type { Sources } from './session/sources';
import { createFileStore } from './storage/file-store';
import { DATABASE_FILE_NAME, openSqliteStore, type SqliteStore } from './storage/sqlite-store';

export interface DaemonOptions {
  readonly dataDir: string;
  /** 0 = an ephemeral port. */
  readonly port: number;
  /** Undefined = all interfaces. */
  readonly host?: string;
  readonly logger: Logger;
  readonly limits?: Partial<ServerLimits>;
  readonly masterKey?: Buffer;
  readonly sources?: Sources;
}

export interface Daemon {
  readonly port: number;
  readonly host: string;
  readonly server: SftServer;
  readonly store: SqliteStore;
  readonly dataDir: string;
  /** Graceful stop: no new connections, uploads in flight get the grace period, DB closed. */
  close(graceMs?: number): Promise<void>;
}

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const { logger } = options;
  const dataDir = resolve(options.dataDir);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const store = await openSqliteStore({
    path: join(dataDir, DATABASE_FILE_NAME),
    masterKey: options.masterKey,
    logger,
  });
  let server: SftServer | undefined;
  try {
    const files = createFileStore(dataDir);
    const removed = await files.sweepTemp();
    if (removed > 0) logger.info({ removed }, 'removed temp files of interrupted uploads');
    server = createServer({
      store,
      files,
      sources: options.sources,
      logger,
      limits: options.limits,
    });
    const address = await server.listen(options.port, options.host);
    // The contract with scripts and tests: this line, with a numeric `port` (docs/protocol.md §7).
    logger.info({ port: address.port, host: address.address, dataDir }, 'listening');
    let closing: Promise<void> | undefined;
    const running = server;
    return {
      port: address.port,
      host: address.address,
      server: running,
      store,
      dataDir,
      close(graceMs?: number) {
        closing ??= (async () => {
          await running.close(graceMs);
          await store.close();
          logger.info('stopped');
        })();
        return closing;
      },
    };
  } catch (err) {
    await server?.close(0).catch(() => undefined);
    await store.close().catch(() => undefined);
    throw err;
  }
}
