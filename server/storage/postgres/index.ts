/**
 * The PostgreSQL database backend: `--database postgres://user@host:port/db`. Opening creates
 * or migrates the schema (schema.ts), then returns the Catalog (catalog.ts) and the per-file
 * locks shared by every instance (file-locks.ts). The URL follows libpq's form; a password in
 * it, or PGPASSWORD and the other PG* variables, are read by the `pg` driver.
 */
import type { Logger } from '../../../shared/logger';
import { StorageError, StorageErrorCode } from '../types';
import { PostgresCatalog, type PostgresStore } from './catalog';
import { createPool } from './database';
import { AdvisoryFileLocks } from './file-locks';
import { migrate } from './schema';

export type { PostgresStore } from './catalog';
export { AdvisoryFileLocks } from './file-locks';

/** Connections of the catalog's pool per instance unless configured. */
export const DEFAULT_POOL_SIZE = 10;
/** Connections for file locks: one per file name being committed at once on this instance. */
export const DEFAULT_LOCK_POOL_SIZE = 20;
const CONNECT_TIMEOUT_MS = 5_000;
const STATEMENT_TIMEOUT_MS = 30_000;

export interface PostgresOptions {
  readonly url: string;
  readonly masterKey?: Buffer;
  readonly logger?: Logger;
  readonly readOnly?: boolean;
  readonly touchFlushMs?: number;
  readonly poolSize?: number;
  /** Milliseconds since the epoch (injected): stamps schema migrations. */
  readonly now: () => number;
  readonly onBatch?: (size: number) => void;
}

/** The catalog with the file locks of every instance sharing it; `close` closes both. */
export interface PostgresBackend extends PostgresStore {
  readonly fileLocks: AdvisoryFileLocks;
}

export async function openPostgres(options: PostgresOptions): Promise<PostgresBackend> {
  if (options.masterKey && options.masterKey.length !== 32) {
    throw new StorageError(StorageErrorCode.MASTER_KEY, 'master key must be 32 bytes');
  }
  const onIdleError = (err: Error): void =>
    options.logger?.warn({ err }, 'a PostgreSQL connection failed while idle');
  const settings = {
    url: options.url,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
    statementTimeoutMs: STATEMENT_TIMEOUT_MS,
    onIdleError,
  };
  const pool = createPool({ ...settings, max: options.poolSize ?? DEFAULT_POOL_SIZE });
  try {
    if (options.readOnly !== true) await migrate(pool, options.now());
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }
  const fileLocks = new AdvisoryFileLocks(createPool({ ...settings, max: DEFAULT_LOCK_POOL_SIZE }));
  return new PostgresCatalog(pool, {
    readOnly: options.readOnly ?? false,
    fileLocks,
    ...(options.masterKey === undefined ? {} : { masterKey: options.masterKey }),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    ...(options.touchFlushMs === undefined ? {} : { touchFlushMs: options.touchFlushMs }),
    ...(options.onBatch === undefined ? {} : { onBatch: options.onBatch }),
  });
}

export { openPostgresV4Store } from './v4-store';
export { isPostgresUrl } from './url';
