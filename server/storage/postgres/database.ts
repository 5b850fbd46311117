/**
 * The PostgreSQL connection layer: a pool with the value parsers this backend needs, and the
 * one mapping of driver failures to StorageErrors (DATABASE, with the SQLSTATE in the message;
 * never the connection URL, which may hold a password).
 */
import { Pool, types, type PoolClient, type QueryResultRow } from 'pg';
import { StorageError, StorageErrorCode } from '../types';

/** int8 (`bigint`): our times and sizes are below 2^53, so numbers, not strings. */
const INT8_OID = 20;
/** SQLSTATE of a unique or primary-key violation. */
export const UNIQUE_VIOLATION = '23505';
/** SQLSTATE class of integrity constraint violations (23xxx): they undo one statement only. */
const CONSTRAINT_CLASS = '23';

export interface PoolSettings {
  readonly url: string;
  /** Connections at most in this pool. */
  readonly max: number;
  /** How long to wait for a connection before the request fails (ms). */
  readonly connectTimeoutMs: number;
  /** Longest a statement may run before PostgreSQL cancels it (ms). */
  readonly statementTimeoutMs: number;
  /** Failures of idle connections (the server went away): logged, never thrown. */
  readonly onIdleError: (err: Error) => void;
}

export function createPool(settings: PoolSettings): Pool {
  const pool = new Pool({
    connectionString: settings.url,
    max: settings.max,
    connectionTimeoutMillis: settings.connectTimeoutMs,
    statement_timeout: settings.statementTimeoutMs,
    application_name: 'sft-server',
    // Per pool, not process-wide: no global type parser is changed.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID && format !== 'binary'
          ? (value: string) => Number(value)
          : types.getTypeParser(oid, format)) as typeof types.getTypeParser,
    },
  });
  pool.on('error', settings.onIdleError);
  return pool;
}

/** The SQLSTATE of a PostgreSQL error, undefined for anything else. */
export function sqlState(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** A violated constraint: PostgreSQL undid the statement; a savepoint keeps the rest. */
export function isConstraintViolation(err: unknown): boolean {
  return sqlState(err)?.startsWith(CONSTRAINT_CLASS) ?? false;
}

/** Any failure as a StorageError: ours pass through, the driver's become DATABASE. */
export function databaseError(what: string, err: unknown): StorageError {
  if (err instanceof StorageError) return err;
  const state = sqlState(err);
  const errno = (err as { code?: unknown } | null)?.code;
  const detail =
    state ?? (typeof errno === 'string' ? errno : err instanceof Error ? err.message : String(err));
  return new StorageError(StorageErrorCode.DATABASE, `${what} (${detail})`, { cause: err });
}

export type Queryable = Pick<PoolClient, 'query'>;

/** Runs one statement; failures become StorageErrors naming `what`. */
export async function run<R extends QueryResultRow = QueryResultRow>(
  db: Queryable,
  what: string,
  sql: string,
  params: readonly unknown[] = [],
): Promise<{ rows: R[]; rowCount: number }> {
  try {
    const result = await db.query<R>(sql, params as unknown[]);
    return { rows: result.rows, rowCount: result.rowCount ?? 0 };
  } catch (err) {
    throw databaseError(what, err);
  }
}

/** A connection taken from the pool, to be given back with `release`. */
export interface Checkout {
  readonly client: PoolClient;
  /** Gives the connection back; a connection that failed is closed instead of reused. */
  release(err?: Error): void;
}

/**
 * Takes a connection for a run of statements. While it is checked out the pool does not watch
 * it: a server that goes away between two statements makes the connection emit 'error', which
 * would crash the process without a listener. The listener here marks it broken instead (the
 * next statement fails with the reason, and `release` closes it).
 */
export async function checkout(pool: Pool, what: string): Promise<Checkout> {
  let client: PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw databaseError(what, err);
  }
  let failure: Error | undefined;
  const onError = (err: Error): void => {
    failure ??= err;
  };
  client.on('error', onError);
  return {
    client,
    release(err?: Error) {
      client.off('error', onError);
      client.release(err ?? failure);
    },
  };
}

/**
 * Runs `body` in one transaction on a connection of its own: commit if it resolves, roll back
 * if it rejects. A connection whose rollback failed is discarded, never reused.
 */
export async function inTransaction<T>(
  pool: Pool,
  body: (client: PoolClient) => Promise<T>,
): Promise<T> {
  const taken = await checkout(pool, 'cannot connect to PostgreSQL');
  const { client } = taken;
  let broken: Error | undefined;
  try {
    await run(client, 'cannot begin transaction', 'BEGIN');
    const result = await body(client);
    await run(client, 'cannot commit transaction', 'COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch((rollbackErr: Error) => {
      broken = rollbackErr;
    });
    throw databaseError('transaction failed', err);
  } finally {
    taken.release(broken);
  }
}
