/**
 * Opening `defensive.db` (docs/protocol.md §7): the data directory and file (owner-only), the
 * pragmas, a quick check, and the schema (migrated, or for a read-only open checked current).
 *
 * WAL journal: readers (the admin command) never block the server, and a crash leaves a
 * database that opens. synchronous = FULL, not NORMAL: in WAL mode NORMAL may lose the last
 * commits on power loss, yet the server answers 1602/1603/1604/1605 only after the commit and
 * the client then relies on it. FULL costs one WAL fsync per commit; group-commit.ts and
 * last-seen.ts keep that off the per-packet path.
 */
import { constants as fsConstants, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { errnoCode } from '../../../shared/errno';
import { StorageError, StorageErrorCode } from '../types';
import { AsyncDatabase, databaseError, OPEN_CREATE, OPEN_READWRITE, sqliteCode } from './async';
import { checkNotNewer, migrate, readSchemaVersion, SCHEMA_VERSION } from './schema';

/** The database file name inside the data directory (§7). */
export const DATABASE_FILE_NAME = 'defensive.db';

const DEFAULT_BUSY_TIMEOUT_MS = 5000;
/** The database holds keys: owner-only, like the private key files of the client (§8). */
const DATABASE_FILE_MODE = 0o600;
const DATA_DIR_MODE = 0o700;
const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

export interface ConnectionOptions {
  /** Path of the database file, normally `<data-dir>/defensive.db`. */
  readonly path: string;
  /**
   * Open without writing anything (the admin listings): no file or folder is created and the
   * schema must already be current.
   */
  readonly readOnly?: boolean;
  /** How long a statement waits for a lock held by another connection. Default 5000 ms. */
  readonly busyTimeoutMs?: number;
  /** Run `PRAGMA quick_check` at open. Default true. */
  readonly quickCheck?: boolean;
}

async function prepareDirectory(file: string): Promise<void> {
  const dir = path.dirname(file);
  try {
    await fsp.mkdir(dir, { recursive: true, mode: DATA_DIR_MODE });
    await fsp.access(dir, fsConstants.W_OK);
  } catch (err) {
    const reason = errnoCode(err) ?? String(err);
    throw new StorageError(
      StorageErrorCode.DATABASE,
      `data directory ${dir} is not writable (${reason}); the database cannot be opened`,
      { cause: err },
    );
  }
  try {
    // Create the file ourselves so it (and the -wal/-shm files SQLite derives from it) is 0600.
    const handle = await fsp.open(
      file,
      fsConstants.O_WRONLY | fsConstants.O_CREAT,
      DATABASE_FILE_MODE,
    );
    await handle.close();
  } catch (err) {
    throw databaseError(`cannot create database file ${file}`, err);
  }
}

async function requireExisting(file: string): Promise<void> {
  try {
    const stats = await fsp.stat(file);
    if (!stats.isFile()) throw new Error('not a regular file');
  } catch (err) {
    throw new StorageError(
      StorageErrorCode.DATABASE,
      `no database at ${file} (${errnoCode(err) ?? String(err)}); ` +
        'is --data-dir the folder the server uses?',
      { cause: err },
    );
  }
}

function describeOpenFailure(file: string, err: unknown): StorageError {
  const code = sqliteCode(err);
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
    return new StorageError(
      StorageErrorCode.DATABASE,
      `${file} is not a SQLite database or is corrupt (${code}); move it aside and restore a ` +
        'backup, or start with an empty data directory',
      { cause: err },
    );
  }
  if (code === 'SQLITE_READONLY' || code === 'SQLITE_CANTOPEN' || code === 'SQLITE_PERM') {
    return new StorageError(
      StorageErrorCode.DATABASE,
      `cannot open ${file} for writing (${code}); check the permissions of the file and its folder`,
      { cause: err },
    );
  }
  if (err instanceof StorageError) return err;
  return databaseError(`cannot open ${file}`, err);
}

async function configure(db: AsyncDatabase, file: string, readOnly: boolean): Promise<void> {
  // The first read of the file: fails with SQLITE_NOTADB for a file that is no database.
  await db.get('SELECT count(*) AS n FROM sqlite_master');
  if (readOnly) return;
  const mode = await db.get<{ journal_mode: string }>('PRAGMA journal_mode = WAL');
  if (mode?.journal_mode !== 'wal') {
    throw new StorageError(
      StorageErrorCode.DATABASE,
      `${file}: WAL journal mode is not available (got ${mode?.journal_mode})`,
    );
  }
  await db.run('PRAGMA synchronous = FULL');
  await db.run('PRAGMA foreign_keys = ON');
  // Keys at rest: a replaced or re-sealed AES key is overwritten, not left in a free page.
  await db.run('PRAGMA secure_delete = ON');
  // The WAL is reused after each checkpoint; this caps what it keeps on disk afterwards.
  await db.run(`PRAGMA journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
}

async function quickCheck(db: AsyncDatabase, file: string): Promise<void> {
  const rows = await db.all<{ quick_check: string }>('PRAGMA quick_check');
  const problems = rows.map((row) => row.quick_check).filter((text) => text !== 'ok');
  if (problems.length > 0) {
    throw new StorageError(
      StorageErrorCode.DATABASE,
      `${file} is corrupt (quick_check: ${problems.slice(0, 3).join('; ')}); restore a backup`,
    );
  }
}

async function requireCurrentSchema(db: AsyncDatabase, file: string): Promise<void> {
  const version = await readSchemaVersion(db);
  checkNotNewer(version, file);
  if (version < SCHEMA_VERSION) {
    throw new StorageError(
      StorageErrorCode.DATABASE,
      `${file} has schema version ${version}, not ${SCHEMA_VERSION}: it is not a database ` +
        'of this server, or the server has not upgraded it yet (start the server once)',
    );
  }
}

/**
 * Opens the database with its pragmas and a current schema. `prepare` runs on the open
 * connection (statements to prepare); any failure closes it and is reported as a StorageError.
 */
export async function openConnection<T>(
  options: ConnectionOptions,
  prepare: (db: AsyncDatabase, file: string) => Promise<T>,
): Promise<T> {
  const file = path.resolve(options.path);
  const readOnly = options.readOnly ?? false;
  if (readOnly) await requireExisting(file);
  else await prepareDirectory(file);
  let db: AsyncDatabase;
  try {
    // Read-only opens still open read-write (without CREATE) when they may: issuing no writes,
    // they can then remove the -wal/-shm files at close like any last connection. SQLite falls
    // back to read-only by itself when the file is not writable.
    db = await AsyncDatabase.open(file, readOnly ? OPEN_READWRITE : OPEN_READWRITE | OPEN_CREATE);
  } catch (err) {
    throw describeOpenFailure(file, err);
  }
  try {
    db.configureBusyTimeout(options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS);
    await configure(db, file, readOnly);
    if (options.quickCheck ?? true) await quickCheck(db, file);
    if (readOnly) await requireCurrentSchema(db, file);
    else await migrate(db, file);
    return await prepare(db, file);
  } catch (err) {
    await db.close().catch(() => undefined);
    throw describeOpenFailure(file, err);
  }
}
