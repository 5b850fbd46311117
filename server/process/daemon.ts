/**
 * The server with its storage: opens the backends (open-backends.ts: `defensive.db` and the
 * files in the data directory by default), clears writes a crash left unfinished, listens, and
 * shuts down in order (listener, connections, database). main.ts wraps this in a CLI; tests
 * start it in-process.
 */
import { constants as fsConstants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { ServerLimits } from '../transport/limits';
import type { MemoryNudge } from '../transport/gc-nudge';
import { createServer, type SftServer } from '../transport/listener';
import type { Sources } from '../session/sources';
import { DEFAULT_KEEP_VERSIONS, type FileVault } from '../storage/file-vault';
import { openBackends } from '../storage/open-backends';
import { SpaceReserve } from '../storage/space-reserve';
import { errnoCode } from '../../shared/errno';
import { lockDataDir, type DirLock } from '../storage/sqlite/dir-lock';
import { StorageError, StorageErrorCode, type Catalog } from '../storage/types';
import { openV4, type V4Setup } from '../transport/tls-setup';
import { createOperations, type MetricsSettings } from '../metrics/operations';

export interface DaemonOptions {
  readonly dataDir: string;
  /** 0 = an ephemeral port. */
  readonly port: number;
  /** Undefined = all interfaces. */
  readonly host?: string;
  readonly logger: Logger;
  readonly limits?: Partial<ServerLimits>;
  /** `--gc-nudge`: collects young garbage during transfers (needs node --expose-gc). */
  readonly memory?: MemoryNudge;
  readonly masterKey?: Buffer;
  readonly sources?: Sources;
  /** Verified versions kept per file name when uploads replace it (`--keep-versions`). */
  readonly keepVersions?: number;
  /** Database backend: `sqlite` (default) or `memory` (open-backends.ts). */
  readonly database?: string;
  /** Byte backend: `disk` (default) or `memory`. */
  readonly storage?: string;
  /** Endpoint of an S3-compatible store for `s3://` storage (`--s3-endpoint`). */
  readonly s3Endpoint?: string;
  /**
   * `--disk-reserve`: bytes kept free in the data folder so a full disk can still delete
   * (space-reserve.ts); absent or 0: none.
   */
  readonly diskReserveBytes?: number;
  /** `/metrics`, `/healthz`, `/readyz` on this port (`--metrics-port`); absent: none. */
  readonly metrics?: MetricsSettings;
  /** Protocol version 4 on the same port (docs/protocol-v4.md); absent: v3 only. */
  readonly v4?: {
    /** Age after which partial uploads are removed (`--partial-ttl`). */
    readonly partialTtlMs?: number;
    /** False refuses v3 connections (`--v3 off`). */
    readonly v3?: boolean;
    readonly checkpointIntervalMs?: number;
  };
}

export interface Daemon {
  readonly port: number;
  readonly host: string;
  readonly server: SftServer;
  readonly store: Catalog;
  /** The files of clients, with their kept versions. */
  readonly files: FileVault;
  readonly dataDir: string;
  /** Where the metrics endpoint listens, when it is on. */
  readonly metrics: { readonly port: number; readonly host: string } | undefined;
  /** Graceful stop: no new connections, uploads in flight get the grace period, DB closed. */
  close(graceMs?: number): Promise<void>;
}

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const dataDir = resolve(options.dataDir);
  await prepareDataDir(dataDir);
  // Before anything else touches the folder: a second daemon on it must change nothing.
  const dirLock = await lockDataDir(dataDir, process.pid);
  try {
    return await startLocked(options, dataDir, dirLock);
  } catch (err) {
    await dirLock.release().catch(() => undefined);
    throw err;
  }
}

/** Creates the data folder if missing; says plainly why it cannot be one. */
async function prepareDataDir(dataDir: string): Promise<void> {
  try {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    await access(dataDir, fsConstants.W_OK);
  } catch (err) {
    const code = errnoCode(err);
    const why =
      code === 'EEXIST'
        ? 'it is not a folder'
        : code === 'ENOTDIR'
          ? 'a part of its path is not a folder'
          : code === 'EROFS'
            ? 'its file system is read-only'
            : code === 'EACCES' || code === 'EPERM'
              ? 'this user may not write there'
              : (code ?? String(err));
    throw new StorageError(StorageErrorCode.FILESYSTEM, `--data-dir ${dataDir}: ${why}`, {
      cause: err,
    });
  }
}

async function startLocked(
  options: DaemonOptions,
  dataDir: string,
  dirLock: DirLock,
): Promise<Daemon> {
  const { logger } = options;
  const ops = await createOperations(options.metrics, {
    logger,
    clockMs: options.sources?.now ?? Date.now,
  });
  const backends = await openBackends({
    dataDir,
    keepVersions: options.keepVersions ?? DEFAULT_KEEP_VERSIONS,
    now: options.sources?.now ?? Date.now,
    logger,
    ...(options.database === undefined ? {} : { database: options.database }),
    ...(options.storage === undefined ? {} : { storage: options.storage }),
    ...(options.masterKey === undefined ? {} : { masterKey: options.masterKey }),
    ...(options.s3Endpoint === undefined ? {} : { s3Endpoint: options.s3Endpoint }),
    ...(ops.onBatch === undefined ? {} : { onBatch: ops.onBatch }),
  });
  const { catalog: store, files } = backends;
  let server: SftServer | undefined;
  let v4: V4Setup | undefined;
  try {
    if (options.v4) {
      v4 = await openV4(dataDir, {
        logger,
        now: options.sources?.now ?? Date.now,
        ...(options.database === undefined ? {} : { database: options.database }),
        ...(options.storage === undefined ? {} : { storage: options.storage }),
        ...(options.s3Endpoint === undefined ? {} : { s3Endpoint: options.s3Endpoint }),
        ...(options.v4.partialTtlMs === undefined ? {} : { partialTtlMs: options.v4.partialTtlMs }),
        ...(options.v4.checkpointIntervalMs === undefined
          ? {}
          : { checkpointIntervalMs: options.v4.checkpointIntervalMs }),
      });
    }
    const removed = await backends.bytes.sweepIncomplete();
    if (removed > 0) logger.info({ removed }, 'removed temp files of interrupted uploads');
    const reserveBytes = options.diskReserveBytes ?? 0;
    const space =
      reserveBytes > 0
        ? await SpaceReserve.open({
            dir: dataDir,
            bytes: reserveBytes,
            log: logger,
          })
        : undefined;
    const metered = ops.wrap(store, files);
    server = createServer({
      store: metered.catalog,
      files: metered.files,
      ...(store.fileLocks === undefined ? {} : { fileLocks: store.fileLocks }),
      ...(store.quotaLedger === undefined ? {} : { quotaLedger: store.quotaLedger }),
      sources: options.sources,
      logger,
      limits: options.limits,
      ...(options.memory === undefined ? {} : { memory: options.memory }),
      ...(space === undefined ? {} : { space }),
      ...(v4 ? { v4: { ...v4.options, bytes: backends.bytes }, v3: options.v4?.v3 ?? true } : {}),
    });
    const address = await server.listen(options.port, options.host);
    await ops.start(server, store, backends.bytes);
    // The contract with scripts and tests: this line, with a numeric `port` (docs/protocol.md §7).
    // `gcNudge` says whether `--gc-nudge` (auto by default) found a collector in this process.
    logger.info(
      { port: address.port, host: address.address, dataDir, gcNudge: options.memory !== undefined },
      'listening',
    );
    let closing: Promise<void> | undefined;
    const running = server;
    const v4Stack = v4;
    return {
      port: address.port,
      host: address.address,
      server: running,
      store,
      files,
      dataDir,
      metrics: ops.address,
      close(graceMs?: number) {
        closing ??= (async () => {
          await running.close(graceMs);
          await ops.close();
          await v4Stack?.close();
          await backends.close();
          await dirLock.release();
          logger.info('stopped');
        })();
        return closing;
      },
    };
  } catch (err) {
    await server?.close(0).catch(() => undefined);
    await ops.close().catch(() => undefined);
    await v4?.close().catch(() => undefined);
    await backends.close().catch(() => undefined);
    throw err;
  }
}
