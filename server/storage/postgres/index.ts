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
import { SharedQuotaLedger } from './quota-ledger';
import { createSharedPartialStore } from './v4-partials';
import type { PartialStore } from '../../session/v4/context';

export type { PostgresStore } from './catalog';
export { AdvisoryFileLocks } from './file-locks';

/** Connections of the catalog's pool per instance unless configured. */
export const DEFAULT_POOL_SIZE = 10;
/** Connections for file locks: one per file name being committed at once on this instance. */
export const DEFAULT_LOCK_POOL_SIZE = 20;
/** Partial uploads write a row per segment (8 MiB): a few connections suffice. */
const PARTIALS_POOL_SIZE = 5;
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
    quotaLedger: new SharedQuotaLedger(pool, {
      now: options.now,
      ...(options.logger === undefined ? {} : { logger: options.logger }),
    }),
    ...(options.masterKey === undefined ? {} : { masterKey: options.masterKey }),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    ...(options.touchFlushMs === undefined ? {} : { touchFlushMs: options.touchFlushMs }),
    ...(options.onBatch === undefined ? {} : { onBatch: options.onBatch }),
  });
}

export { openPostgresV4Store } from './v4-store';
export { isPostgresUrl } from './url';

/**
 * Resumable v4 uploads shared by instances: records in PostgreSQL (schema migrated here too),
 * segments in the bucket of `storage` (`s3://bucket/prefix`).
 */
export async function openSharedPartials(options: {
  readonly url: string;
  readonly storage: string;
  readonly s3Endpoint?: string;
  readonly now: () => number;
  readonly logger?: Logger;
}): Promise<{ readonly partials: PartialStore; close(): Promise<void> }> {
  const { createS3Client, createS3SegmentStore, parseS3Url } = await import('../s3');
  const location = parseS3Url(options.storage);
  const pool = createPool({
    url: options.url,
    max: PARTIALS_POOL_SIZE,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
    statementTimeoutMs: STATEMENT_TIMEOUT_MS,
    onIdleError: (err) =>
      options.logger?.warn({ err }, 'a PostgreSQL connection failed while idle'),
  });
  try {
    await migrate(pool, options.now());
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }
  const client = createS3Client(
    options.s3Endpoint === undefined ? {} : { endpoint: options.s3Endpoint },
  );
  return {
    partials: createSharedPartialStore(pool, createS3SegmentStore(client, location), options.now),
    async close() {
      client.destroy();
      await pool.end();
    },
  };
}
