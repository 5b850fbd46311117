/**
 * The schema of `defensive.db` (docs/protocol.md §7) and its migrations, versioned with
 * `PRAGMA user_version`. The §7 tables and column names are kept as other implementations of
 * the protocol use them; our extra columns only add to them.
 *
 * Version 0 → 1 either creates the schema in an empty file, or adopts the tables of another §7
 * server (clients and files with the §7 columns and no version) by adding the missing columns.
 * Version 1 → 2 adds `file_versions`: earlier contents of a file name kept when an upload or a
 * restore replaced a verified file (§9: an upload never destroys a verified file).
 * Version 2 → 3 adds `Sha256` and `Flags` to `files`: what a v4 upload verified, committed with
 * its row (docs/protocol-v4.md §7).
 * A later version appends a step to MIGRATIONS; a database newer than this code is refused.
 */
import type { AsyncDatabase } from './async';
import { StorageError, StorageErrorCode } from '../types';

export const SCHEMA_VERSION = 3;

const CREATE_CLIENTS = `
CREATE TABLE IF NOT EXISTS clients (
  ID BLOB PRIMARY KEY NOT NULL CHECK (typeof(ID) = 'blob' AND length(ID) = 16),
  Name TEXT NOT NULL UNIQUE,
  PublicKey BLOB,
  LastSeen INTEGER NOT NULL,
  AESKey BLOB
)`;

const CREATE_FILES = `
CREATE TABLE IF NOT EXISTS files (
  ID BLOB NOT NULL REFERENCES clients (ID) ON DELETE CASCADE,
  FileName TEXT NOT NULL,
  PathName TEXT NOT NULL,
  Verified INTEGER NOT NULL DEFAULT 0 CHECK (Verified IN (0, 1)),
  Status TEXT NOT NULL DEFAULT 'received' CHECK (Status IN ('received', 'verified', 'failed')),
  Size INTEGER NOT NULL DEFAULT 0,
  Cksum INTEGER NOT NULL DEFAULT 0,
  UpdatedAt INTEGER NOT NULL DEFAULT 0,
  Sha256 BLOB CHECK (Sha256 IS NULL OR length(Sha256) = 32),
  Flags INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (ID, FileName)
)`;

const CREATE_AUTH_LOG = `
CREATE TABLE IF NOT EXISTS auth_log (
  LogID INTEGER PRIMARY KEY AUTOINCREMENT,
  Time INTEGER NOT NULL,
  RemoteAddress TEXT NOT NULL,
  ClientID BLOB,
  Name TEXT,
  RequestCode INTEGER NOT NULL,
  Outcome TEXT NOT NULL,
  Detail TEXT
)`;

const CREATE_FILE_VERSIONS = `
CREATE TABLE IF NOT EXISTS file_versions (
  ID BLOB NOT NULL REFERENCES clients (ID) ON DELETE CASCADE,
  FileName TEXT NOT NULL,
  Version INTEGER NOT NULL CHECK (Version >= 1),
  ObjectKey TEXT NOT NULL,
  Status TEXT NOT NULL CHECK (Status IN ('received', 'verified', 'failed')),
  Size INTEGER NOT NULL,
  Cksum INTEGER NOT NULL,
  UpdatedAt INTEGER NOT NULL,
  ArchivedAt INTEGER NOT NULL,
  PRIMARY KEY (ID, FileName, Version)
)`;

const CREATE_INDICES = [
  'CREATE INDEX IF NOT EXISTS auth_log_time ON auth_log (Time)',
  // Adopted tables may lack the primary key; this keeps (ID, FileName) unique (§7) either way.
  'CREATE UNIQUE INDEX IF NOT EXISTS files_owner_name ON files (ID, FileName)',
];

/** Columns we add to a files table created by another §7 server (name → definition). */
const FILES_EXTRA_COLUMNS: ReadonlyArray<readonly [string, string]> = [
  ['Status', "Status TEXT NOT NULL DEFAULT 'received'"],
  ['Size', 'Size INTEGER NOT NULL DEFAULT 0'],
  ['Cksum', 'Cksum INTEGER NOT NULL DEFAULT 0'],
  ['UpdatedAt', 'UpdatedAt INTEGER NOT NULL DEFAULT 0'],
];
/** Columns of version 3: what a v4 upload verified (a NULL Sha256 for every older row). */
const FILES_V4_COLUMNS: ReadonlyArray<readonly [string, string]> = [
  ['Sha256', 'Sha256 BLOB CHECK (Sha256 IS NULL OR length(Sha256) = 32)'],
  ['Flags', 'Flags INTEGER NOT NULL DEFAULT 0'],
];
const CLIENTS_REQUIRED = ['ID', 'Name', 'PublicKey', 'LastSeen', 'AESKey'];
const FILES_REQUIRED = ['ID', 'FileName', 'PathName', 'Verified'];

function schemaError(message: string): StorageError {
  return new StorageError(StorageErrorCode.DATABASE, message);
}

async function columnsOf(db: AsyncDatabase, table: string): Promise<Set<string>> {
  // Table names here are constants of this module, never input.
  const rows = await db.all<{ name: string }>(`PRAGMA table_info(${table})`);
  return new Set(rows.map((row) => row.name));
}

async function tableExists(db: AsyncDatabase, table: string): Promise<boolean> {
  const row = await db.get(
    "SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = ?",
    [table],
  );
  return row !== undefined;
}

async function migrateTo1(db: AsyncDatabase, path: string): Promise<void> {
  if (await tableExists(db, 'clients')) {
    const have = await columnsOf(db, 'clients');
    const missing = CLIENTS_REQUIRED.filter((column) => !have.has(column));
    if (missing.length > 0) {
      throw schemaError(
        `${path} has a clients table without the columns ${missing.join(', ')} (PROTOCOL.md §7); ` +
          'refusing to modify a database of another program',
      );
    }
  }
  await db.run(CREATE_CLIENTS);
  if (await tableExists(db, 'files')) {
    const have = await columnsOf(db, 'files');
    const missing = FILES_REQUIRED.filter((column) => !have.has(column));
    if (missing.length > 0) {
      throw schemaError(`${path} has a files table without the columns ${missing.join(', ')}`);
    }
    await addMissingColumns(db, FILES_EXTRA_COLUMNS);
    // Rows of another server carry only Verified; derive the status from it.
    await db.run("UPDATE files SET Status = 'verified' WHERE Verified = 1");
  }
  await db.run(CREATE_FILES);
  await db.run(CREATE_AUTH_LOG);
  for (const sql of CREATE_INDICES) await db.run(sql);
}

async function migrateTo2(db: AsyncDatabase): Promise<void> {
  await db.run(CREATE_FILE_VERSIONS);
}

async function addMissingColumns(
  db: AsyncDatabase,
  columns: ReadonlyArray<readonly [string, string]>,
): Promise<void> {
  const have = await columnsOf(db, 'files');
  for (const [name, definition] of columns) {
    if (!have.has(name)) await db.run(`ALTER TABLE files ADD COLUMN ${definition}`);
  }
}

/** A files table made by step 1 of this version has the columns already; an older one gets them. */
async function migrateTo3(db: AsyncDatabase): Promise<void> {
  await addMissingColumns(db, FILES_V4_COLUMNS);
}

const MIGRATIONS: ReadonlyArray<(db: AsyncDatabase, path: string) => Promise<void>> = [
  migrateTo1,
  migrateTo2,
  migrateTo3,
];

export async function readSchemaVersion(db: AsyncDatabase): Promise<number> {
  const row = await db.get<{ user_version: number }>('PRAGMA user_version');
  return row?.user_version ?? 0;
}

export function checkNotNewer(version: number, path: string): void {
  if (version > SCHEMA_VERSION) {
    throw schemaError(
      `${path} has schema version ${version}, newer than this program understands ` +
        `(${SCHEMA_VERSION}); use a newer sft-server`,
    );
  }
}

/** Brings the schema to SCHEMA_VERSION, each step in its own transaction. */
export async function migrate(db: AsyncDatabase, path: string): Promise<void> {
  let version = await readSchemaVersion(db);
  checkNotNewer(version, path);
  while (version < SCHEMA_VERSION) {
    const step = MIGRATIONS[version];
    if (!step) throw schemaError(`no migration from schema version ${version}`);
    await db.run('BEGIN IMMEDIATE');
    try {
      await step(db, path);
      // PRAGMA takes no bound parameters; `version + 1` is a number computed here.
      await db.run(`PRAGMA user_version = ${version + 1}`);
      await db.run('COMMIT');
    } catch (err) {
      await db.run('ROLLBACK').catch(() => undefined);
      throw err;
    }
    version += 1;
  }
}
