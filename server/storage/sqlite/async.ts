/**
 * A small promise wrapper over the callback API of the `sqlite3` package. Every failure becomes
 * a StorageError(DATABASE) whose message names the operation; SQLite's messages never contain
 * bound parameters, so no key material can reach an error text.
 */
import sqlite3 from 'sqlite3';
import { StorageError, StorageErrorCode } from '../types';

export type SqlValue = string | number | bigint | Buffer | null;
export type SqlParams = readonly SqlValue[];
export type Row = Record<string, unknown>;

export interface RunResult {
  readonly changes: number;
  readonly lastID: number;
}

export function databaseError(what: string, cause: unknown): StorageError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  const code =
    sqliteCode(cause) === 'SQLITE_FULL' ? StorageErrorCode.DISK_FULL : StorageErrorCode.DATABASE;
  return new StorageError(code, `${what}: ${detail}`, { cause });
}

/** The SQLite result code name of a driver error (`SQLITE_BUSY`, …), if it carries one. */
export function sqliteCode(err: unknown): string | undefined {
  if (err instanceof StorageError) return sqliteCode(err.cause);
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export class AsyncStatement {
  constructor(
    private readonly statement: sqlite3.Statement,
    private readonly what: string,
  ) {}

  run(params: SqlParams): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const what = this.what;
      this.statement.run(params, function (this: sqlite3.RunResult, err: Error | null) {
        if (err) reject(databaseError(what, err));
        else resolve({ changes: this.changes, lastID: this.lastID });
      });
    });
  }

  /**
   * The row of a statement that has at most one (a lookup by key, an aggregate). Run to its end
   * in one step: a statement left at a row would hold its read transaction open until a reset
   * (a second trip to the thread pool), and while it is open a write on this connection meeting
   * another process's lock gets SQLITE_BUSY at once (SQLite will not wait where it could
   * deadlock), so the busy timeout would never apply. Finished, it holds nothing.
   */
  get<T extends Row>(params: SqlParams): Promise<T | undefined> {
    return this.all<T>(params).then((rows) => rows[0]);
  }

  all<T extends Row>(params: SqlParams): Promise<T[]> {
    return new Promise((resolve, reject) => {
      this.statement.all<T>(params, (err: Error | null, rows: T[]) => {
        if (err) reject(databaseError(this.what, err));
        else resolve(rows);
      });
    });
  }

  finalize(): Promise<void> {
    return new Promise((resolve) => {
      // finalize reports errors of the statement's last step, already reported to its caller.
      this.statement.finalize(() => resolve());
    });
  }
}

export class AsyncDatabase {
  private constructor(private readonly db: sqlite3.Database) {}

  static open(path: string, mode: number): Promise<AsyncDatabase> {
    return new Promise((resolve, reject) => {
      const db: sqlite3.Database = new sqlite3.Database(path, mode, (err: Error | null) => {
        if (err) reject(databaseError(`cannot open database ${path}`, err));
        else resolve(new AsyncDatabase(db));
      });
    });
  }

  configureBusyTimeout(ms: number): void {
    this.db.configure('busyTimeout', ms);
  }

  run(sql: string, params: SqlParams = [], what = 'SQL statement failed'): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      this.db.run(sql, params, function (this: sqlite3.RunResult, err: Error | null) {
        if (err) reject(databaseError(what, err));
        else resolve({ changes: this.changes, lastID: this.lastID });
      });
    });
  }

  get<T extends Row>(sql: string, params: SqlParams = [], what = 'SQL query failed') {
    return new Promise<T | undefined>((resolve, reject) => {
      this.db.get<T>(sql, params, (err: Error | null, row: T) => {
        if (err) reject(databaseError(what, err));
        else resolve(row);
      });
    });
  }

  all<T extends Row>(sql: string, params: SqlParams = [], what = 'SQL query failed') {
    return new Promise<T[]>((resolve, reject) => {
      this.db.all<T>(sql, params, (err: Error | null, rows: T[]) => {
        if (err) reject(databaseError(what, err));
        else resolve(rows);
      });
    });
  }

  /** Runs several statements without parameters (schema scripts). */
  exec(sql: string, what = 'SQL script failed'): Promise<void> {
    return new Promise((resolve, reject) => {
      this.db.exec(sql, (err: Error | null) => {
        if (err) reject(databaseError(what, err));
        else resolve();
      });
    });
  }

  prepare(sql: string, what: string): Promise<AsyncStatement> {
    return new Promise((resolve, reject) => {
      const statement: sqlite3.Statement = this.db.prepare(sql, (err: Error | null) => {
        if (err) reject(databaseError(`cannot prepare statement (${what})`, err));
        else resolve(new AsyncStatement(statement, what));
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.db.close((err: Error | null) => {
        if (err) reject(databaseError('cannot close database', err));
        else resolve();
      });
    });
  }
}

/**
 * Runs jobs one after another. The store shares one connection between all sessions, so a
 * transaction must not interleave with another session's statements: every job holds the
 * connection until it settles.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(job: () => Promise<T>): Promise<T> {
    const result = this.tail.then(job);
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** Resolves when every job queued so far has settled. */
  drain(): Promise<void> {
    return this.tail.then(() => undefined);
  }
}

export const OPEN_READONLY = sqlite3.OPEN_READONLY;
export const OPEN_READWRITE = sqlite3.OPEN_READWRITE;
export const OPEN_CREATE = sqlite3.OPEN_CREATE;
