/**
 * ClientStore on SQLite (`defensive.db`, PROTOCOL.md §7) with the `sqlite3` package.
 *
 * - One connection, shared by all sessions. Every operation runs as a job of a SerialQueue, so a
 *   multi-statement transaction never interleaves with another session's statements.
 * - WAL journal: readers (the admin command) never block the server, and a crash leaves a
 *   database that opens. synchronous = FULL, not NORMAL: in WAL mode NORMAL may lose the last
 *   commits on power loss, yet the server answers 1602/1603/1604/1605 only after the commit and
 *   the client then relies on it (a client whose key row vanished must register anew). FULL
 *   costs one WAL fsync per commit; the hot paths avoid paying it per packet: LastSeen updates
 *   are written behind (coalesced, one transaction per `touchFlushMs`), and writes are
 *   group-committed: all writes (and audit entries) queued while other jobs run go into the
 *   next transaction, each in its own savepoint where it has several statements, so 200
 *   sessions at once share fsyncs instead of queueing one each (issue 5). Every write still
 *   resolves only after its commit.
 * - Client records are cached by id (the server is the only writer; every write of a client row
 *   drops its entry): each session looks its client up for every request, and with 200
 *   sessions at once those reads queued behind the writes took most of the connection's time.
 * - Ids and keys are BLOBs; every statement is parameterised; hot statements are prepared once.
 * - With a master key the AESKey column is sealed (see master-key.ts); plain rows written before
 *   are still read and re-sealed on next use.
 * - Every failure rejects with a StorageError, never a raw driver error.
 */
import { constants as fsConstants, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../../shared/logger';
import { sealAesKey, unsealStoredAesKey } from './master-key';
import { checkNotNewer, migrate, readSchemaVersion, SCHEMA_VERSION } from './schema';
import {
  AsyncDatabase,
  AsyncStatement,
  databaseError,
  OPEN_CREATE,
  OPEN_READWRITE,
  SerialQueue,
  sqliteCode,
  type SqlParams,
} from './sqlite-async';
import {
  StorageError,
  StorageErrorCode,
  type AuditEntry,
  type AuditOutcome,
  type ClientRecord,
  type ClientStore,
  type FileRecord,
  type FileStatus,
  type RegisterResult,
} from './types';

/** The database file name inside the data directory (§7). */
export const DATABASE_FILE_NAME = 'defensive.db';

const DEFAULT_BUSY_TIMEOUT_MS = 5000;
const DEFAULT_TOUCH_FLUSH_MS = 1000;
/** The database holds keys: owner-only, like the private key files of the client (§8). */
const DATABASE_FILE_MODE = 0o600;
const DATA_DIR_MODE = 0o700;
const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;
/** Client records kept in memory; the oldest entry goes first beyond this. */
const MAX_CACHED_CLIENTS = 10_000;

export interface SqliteStoreOptions {
  /** Path of the database file, normally `<data-dir>/defensive.db`. */
  readonly path: string;
  /** 32-byte master key: AESKey values are stored sealed with it (issue 6). */
  readonly masterKey?: Buffer;
  readonly logger?: Logger;
  /**
   * Open without writing anything (the admin command): no file or folder is created, the schema
   * must already be current, and plain keys are not re-sealed.
   */
  readonly readOnly?: boolean;
  /** How long a statement waits for a lock held by another connection. Default 5000 ms. */
  readonly busyTimeoutMs?: number;
  /** How long LastSeen updates of `touch` may wait before being written. Default 1000 ms. */
  readonly touchFlushMs?: number;
  /** Run `PRAGMA quick_check` at open. Default true. */
  readonly quickCheck?: boolean;
}

/** A client row without key material, for listings (the admin command). */
export interface ClientSummary {
  readonly id: Buffer;
  readonly name: string;
  readonly hasPublicKey: boolean;
  readonly hasAesKey: boolean;
  /** True when the AESKey column is sealed under a master key. */
  readonly aesKeySealed: boolean;
  readonly lastSeen: number;
}

export type StoredAuditEntry = AuditEntry & { readonly id: number };

/** The SQLite ClientStore, with a few extras for the admin command and tests. */
export interface SqliteStore extends ClientStore {
  readonly path: string;
  readonly readOnly: boolean;
  /** Writes pending LastSeen updates now. */
  flush(): Promise<void>;
  /** `PRAGMA integrity_check`: `['ok']` when the database is sound. */
  integrityCheck(): Promise<string[]>;
  /** The journal mode in effect (`wal` for a writable store). */
  journalMode(): Promise<string>;
  listClientSummaries(): Promise<ClientSummary[]>;
  /** Audit entries from `since` (inclusive), oldest first; with `limit`, the newest `limit`. */
  queryAudit(options: { since?: number; limit?: number }): Promise<StoredAuditEntry[]>;
}

interface ClientRow {
  [column: string]: unknown;
  ID: Buffer;
  Name: string;
  PublicKey: Buffer | null;
  LastSeen: number;
  AESKey: Buffer | null;
}

interface FileRow {
  [column: string]: unknown;
  ID: Buffer;
  FileName: string;
  PathName: string;
  Verified: number;
  Status: string;
  Size: number;
  Cksum: number;
  UpdatedAt: number;
}

interface AuditRow {
  [column: string]: unknown;
  LogID: number;
  Time: number;
  RemoteAddress: string;
  ClientID: Buffer | null;
  Name: string | null;
  RequestCode: number;
  Outcome: string;
  Detail: string | null;
}

const CLIENT_COLUMNS = 'ID, Name, PublicKey, LastSeen, AESKey';
const AUDIT_INSERT_COLUMNS = 'Time, RemoteAddress, ClientID, Name, RequestCode, Outcome, Detail';
/** Audit rows per INSERT: far below SQLite's limit of 32766 bound parameters. */
const AUDIT_ROWS_PER_INSERT = 500;
const FILE_COLUMNS = 'ID, FileName, PathName, Verified, Status, Size, Cksum, UpdatedAt';
const AUDIT_COLUMNS = 'LogID, Time, RemoteAddress, ClientID, Name, RequestCode, Outcome, Detail';

const SQL = {
  clientById: `SELECT ${CLIENT_COLUMNS} FROM clients WHERE ID = ?`,
  clientByName: `SELECT ${CLIENT_COLUMNS} FROM clients WHERE Name = ?`,
  insertClient:
    'INSERT INTO clients (ID, Name, PublicKey, LastSeen, AESKey) VALUES (?, ?, NULL, ?, NULL)',
  deleteClient: 'DELETE FROM clients WHERE ID = ?',
  deleteFilesOf: 'DELETE FROM files WHERE ID = ?',
  setPublicKey:
    'UPDATE clients SET PublicKey = ?, AESKey = ?, LastSeen = ? WHERE ID = ? AND PublicKey IS NULL',
  setAesKey: 'UPDATE clients SET AESKey = ?, LastSeen = max(LastSeen, ?) WHERE ID = ?',
  resealAesKey: 'UPDATE clients SET AESKey = ? WHERE ID = ? AND AESKey = ?',
  touch: 'UPDATE clients SET LastSeen = max(LastSeen, ?) WHERE ID = ?',
  putFile:
    `INSERT INTO files (${FILE_COLUMNS}) VALUES (?, ?, ?, 0, 'received', ?, ?, ?) ` +
    'ON CONFLICT (ID, FileName) DO UPDATE SET PathName = excluded.PathName, Verified = 0, ' +
    "Status = 'received', Size = excluded.Size, Cksum = excluded.Cksum, " +
    'UpdatedAt = excluded.UpdatedAt',
  fileByKey: `SELECT ${FILE_COLUMNS} FROM files WHERE ID = ? AND FileName = ?`,
  setFileStatus:
    'UPDATE files SET Status = ?, Verified = ?, UpdatedAt = ? WHERE ID = ? AND FileName = ?',
  storedBytes:
    "SELECT COALESCE(SUM(Size), 0) AS total FROM files WHERE ID = ? AND Status <> 'failed'",
  auditOne: `INSERT INTO auth_log (${AUDIT_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`,
} as const;
type StatementName = keyof typeof SQL;

const FILE_STATUSES: ReadonlySet<string> = new Set<FileStatus>(['received', 'verified', 'failed']);

function toFileRecord(row: FileRow): FileRecord {
  const status = FILE_STATUSES.has(row.Status) ? (row.Status as FileStatus) : 'received';
  return {
    clientId: row.ID,
    fileName: row.FileName,
    pathName: row.PathName,
    verified: row.Verified === 1,
    status,
    size: row.Size,
    cksum: row.Cksum,
    updatedAt: row.UpdatedAt,
  };
}

/** An audit entry as the values of AUDIT_INSERT_COLUMNS. */
function auditParams(entry: AuditEntry): SqlParams {
  return [
    entry.time,
    entry.remoteAddress,
    entry.clientId ? copy(entry.clientId) : null,
    entry.name,
    entry.requestCode,
    entry.outcome,
    entry.detail ?? null,
  ];
}

function toAuditEntry(row: AuditRow): StoredAuditEntry {
  return {
    id: row.LogID,
    time: row.Time,
    remoteAddress: row.RemoteAddress,
    clientId: row.ClientID,
    name: row.Name,
    requestCode: row.RequestCode,
    outcome: row.Outcome as AuditOutcome,
    ...(row.Detail === null ? {} : { detail: row.Detail }),
  };
}

/** Callers may hand in views of reused buffers (decoder views): keep our own copy. */
function copy(buffer: Buffer): Buffer {
  return Buffer.from(buffer);
}

function closedError(): StorageError {
  return new StorageError(StorageErrorCode.CLOSED, 'the client store is closed');
}

async function prepareDirectory(file: string): Promise<void> {
  const dir = path.dirname(file);
  try {
    await fsp.mkdir(dir, { recursive: true, mode: DATA_DIR_MODE });
    await fsp.access(dir, fsConstants.W_OK);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? String(err);
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
      `no database at ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)}); ` +
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

export async function openSqliteStore(options: SqliteStoreOptions): Promise<SqliteStore> {
  const file = path.resolve(options.path);
  const readOnly = options.readOnly ?? false;
  if (options.masterKey && options.masterKey.length !== 32) {
    throw new StorageError(StorageErrorCode.MASTER_KEY, 'master key must be 32 bytes');
  }
  if (readOnly) await requireExisting(file);
  else await prepareDirectory(file);

  let db: AsyncDatabase;
  try {
    // Read-only stores still open read-write (without CREATE) when they may: issuing no writes,
    // they can then remove the -wal/-shm files at close like any last connection. SQLite falls
    // back to read-only by itself when the file is not writable.
    db = await AsyncDatabase.open(file, readOnly ? OPEN_READWRITE : OPEN_READWRITE | OPEN_CREATE);
  } catch (err) {
    throw describeOpenFailure(file, err);
  }
  try {
    db.configureBusyTimeout(options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS);
    // The first read of the file: fails with SQLITE_NOTADB for a file that is no database.
    await db.get('SELECT count(*) AS n FROM sqlite_master');
    if (!readOnly) {
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
    if (options.quickCheck ?? true) {
      const rows = await db.all<{ quick_check: string }>('PRAGMA quick_check');
      const problems = rows.map((row) => row.quick_check).filter((text) => text !== 'ok');
      if (problems.length > 0) {
        throw new StorageError(
          StorageErrorCode.DATABASE,
          `${file} is corrupt (quick_check: ${problems.slice(0, 3).join('; ')}); restore a backup`,
        );
      }
    }
    if (readOnly) {
      const version = await readSchemaVersion(db);
      checkNotNewer(version, file);
      if (version < SCHEMA_VERSION) {
        throw new StorageError(
          StorageErrorCode.DATABASE,
          `${file} has schema version ${version}, not ${SCHEMA_VERSION}: it is not a database ` +
            'of this server, or the server has not upgraded it yet (start the server once)',
        );
      }
    } else {
      await migrate(db, file);
    }
    const statements = new Map<StatementName, AsyncStatement>();
    for (const [name, sql] of Object.entries(SQL) as Array<[StatementName, string]>) {
      statements.set(name, await db.prepare(sql, name));
    }
    return new SqliteClientStore(db, file, statements, options, readOnly);
  } catch (err) {
    await db.close().catch(() => undefined);
    throw describeOpenFailure(file, err);
  }
}

interface PendingWrite {
  /** The write's statements; audit entries have none: see `auditRow`. */
  readonly body: () => Promise<unknown>;
  /** An audit entry: all of a group's are inserted with one statement. */
  readonly auditRow?: SqlParams;
  /** True when `body` runs several statements that must commit together. */
  readonly atomic: boolean;
  /**
   * The audit row of this write, inserted in the same transaction if `body` succeeds and its
   * result says the change happened: both commit, or neither.
   */
  readonly withAudit?: { readonly row: SqlParams; readonly when: (value: unknown) => boolean };
  /** Runs once the write is committed, before anything else uses the connection. */
  readonly committed: ((value: unknown) => void) | undefined;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * Failures that concern one write alone: its own checks (no SQLite code), or a constraint
 * SQLite undoes for the failing statement only. Anything else fails the whole group.
 */
function isOwnFailure(err: unknown): boolean {
  const code = sqliteCode(err);
  return code === undefined || code === 'SQLITE_CONSTRAINT';
}

class SqliteClientStore implements SqliteStore {
  private readonly queue = new SerialQueue();
  private readonly masterKey: Buffer | undefined;
  private readonly logger: Logger | undefined;
  private readonly touchFlushMs: number;
  /** LastSeen values not yet written, by client id hex. */
  private readonly pendingTouches = new Map<string, number>();
  /** Decoded client rows (LastSeen as stored), by id hex; see the file comment. */
  private readonly clients = new Map<string, ClientRecord>();
  private touchTimer: NodeJS.Timeout | undefined;
  private pendingWrites: PendingWrite[] = [];
  private writeJobQueued = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly db: AsyncDatabase,
    readonly path: string,
    private readonly statements: ReadonlyMap<StatementName, AsyncStatement>,
    options: SqliteStoreOptions,
    readonly readOnly: boolean,
  ) {
    this.masterKey = options.masterKey ? copy(options.masterKey) : undefined;
    this.logger = options.logger;
    this.touchFlushMs = options.touchFlushMs ?? DEFAULT_TOUCH_FLUSH_MS;
  }

  private statement(name: StatementName): AsyncStatement {
    const statement = this.statements.get(name);
    if (!statement) throw new StorageError(StorageErrorCode.DATABASE, `no statement ${name}`);
    return statement;
  }

  /** Runs `job` alone on the connection; rejects with CLOSED once close() began. */
  private job<T>(job: () => Promise<T>): Promise<T> {
    if (this.closing) return Promise.reject(closedError());
    return this.queue.run(job);
  }

  /**
   * Queues a write for the next group commit; resolves with its result once committed.
   * `atomic` bodies (several statements) get a savepoint, so a failure undoes them alone.
   */
  private write<T>(
    body: () => Promise<T>,
    atomic = false,
    committed?: (value: T) => void,
    withAudit?: { readonly row: SqlParams; readonly when: (value: T) => boolean },
  ): Promise<T> {
    if (this.closing) return Promise.reject(closedError());
    return new Promise<T>((resolve, reject) => {
      this.pendingWrites.push({
        body,
        atomic,
        committed: committed as ((value: unknown) => void) | undefined,
        resolve: resolve as (value: unknown) => void,
        reject,
        ...(withAudit
          ? { withAudit: withAudit as { row: SqlParams; when: (value: unknown) => boolean } }
          : {}),
      });
      this.queueWriteJob();
    });
  }

  private queueWriteJob(): void {
    if (this.writeJobQueued) return;
    this.writeJobQueued = true;
    // The job takes every write queued until it starts.
    void this.queue.run(() => this.commitWrites());
  }

  private async commitWrites(): Promise<void> {
    this.writeJobQueued = false;
    const batch = this.pendingWrites;
    this.pendingWrites = [];
    const writes = batch.filter((pending) => pending.auditRow === undefined);
    const audits = batch.filter((pending) => pending.auditRow !== undefined);
    if (writes.length === 1 && audits.length === 0) {
      // Alone: no savepoints, and a single statement commits by itself.
      const [only] = writes;
      const audit = only.withAudit;
      const body =
        audit === undefined
          ? only.body
          : async () => {
              const result = await only.body();
              if (audit.when(result)) await this.statement('auditOne').run(audit.row);
              return result;
            };
      let value: unknown;
      try {
        value = await (only.atomic || audit !== undefined ? this.transaction(body) : body());
      } catch (err) {
        only.reject(err);
        return;
      }
      only.committed?.(value);
      only.resolve(value);
      return;
    }
    const results = new Map<
      PendingWrite,
      { ok: true; value: unknown } | { ok: false; error: unknown }
    >();
    const group = async (): Promise<void> => {
      // Audit rows of writes that succeeded join the group's audit insert (same transaction).
      const rows: SqlParams[] = [];
      for (const pending of writes) {
        const result = await this.runInGroup(pending);
        results.set(pending, result);
        const audit = pending.withAudit;
        if (result.ok && audit !== undefined && audit.when(result.value)) rows.push(audit.row);
      }
      for (const pending of audits) rows.push(pending.auditRow as SqlParams);
      const audited = await this.insertAudits(rows);
      if (!audited.ok) {
        // The rows of writes cannot fail alone: their writes must not commit without them.
        if (writes.some((pending) => pending.withAudit !== undefined)) throw audited.error;
      }
      for (const pending of audits) results.set(pending, audited);
    };
    try {
      // Audit rows alone are one INSERT: atomic without a transaction of its own.
      if (writes.length === 0) await group();
      else await this.transaction(group);
    } catch (err) {
      for (const pending of batch) pending.reject(err);
      return;
    }
    for (const pending of batch) {
      const result = results.get(pending) as
        { ok: true; value: unknown } | { ok: false; error: unknown };
      if (!result.ok) {
        pending.reject(result.error);
        continue;
      }
      pending.committed?.(result.value);
      pending.resolve(result.value);
    }
  }

  /** Inserts the audit rows of a group with as few statements as possible. */
  private async insertAudits(
    audits: readonly SqlParams[],
  ): Promise<{ ok: true; value: unknown } | { ok: false; error: unknown }> {
    try {
      for (let from = 0; from < audits.length; from += AUDIT_ROWS_PER_INSERT) {
        const rows = audits.slice(from, from + AUDIT_ROWS_PER_INSERT);
        const placeholders = rows.map(() => '(?, ?, ?, ?, ?, ?, ?)').join(', ');
        await this.db.run(
          `INSERT INTO auth_log (${AUDIT_INSERT_COLUMNS}) VALUES ${placeholders}`,
          rows.flat(),
          'cannot write the audit trail',
        );
      }
      return { ok: true, value: undefined };
    } catch (error) {
      if (isOwnFailure(error)) return { ok: false, error };
      throw error;
    }
  }

  /** One write of a group; throws (failing the group) unless only its own work was undone. */
  private async runInGroup(
    pending: PendingWrite,
  ): Promise<{ ok: true; value: unknown } | { ok: false; error: unknown }> {
    if (!pending.atomic) {
      try {
        return { ok: true, value: await pending.body() };
      } catch (error) {
        if (isOwnFailure(error)) return { ok: false, error };
        throw error;
      }
    }
    await this.db.run('SAVEPOINT write', [], 'cannot begin savepoint');
    try {
      const value = await pending.body();
      await this.db.run('RELEASE write', [], 'cannot release savepoint');
      return { ok: true, value };
    } catch (error) {
      await this.db.run('ROLLBACK TO write');
      await this.db.run('RELEASE write');
      return { ok: false, error };
    }
  }

  private async transaction<T>(body: () => Promise<T>): Promise<T> {
    await this.db.run('BEGIN IMMEDIATE', [], 'cannot begin transaction');
    try {
      const result = await body();
      await this.db.run('COMMIT', [], 'cannot commit transaction');
      return result;
    } catch (err) {
      await this.db.run('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  /** Decodes a row inside a job; re-seals a plain AES key when a master key is set. */
  private async toClientRecord(row: ClientRow): Promise<ClientRecord> {
    let aesKey: Buffer | null = null;
    if (row.AESKey !== null) {
      const { key, form } = unsealStoredAesKey(this.masterKey, row.ID, row.AESKey);
      aesKey = key;
      if (form === 'plain' && this.masterKey && !this.readOnly) {
        const sealed = sealAesKey(this.masterKey, row.ID, key);
        // Opportunistic: the key is usable either way; a failed rewrite is retried next use.
        await this.statement('resealAesKey')
          .run([sealed, row.ID, row.AESKey])
          .catch((err: unknown) => {
            this.logger?.warn({ err }, 'could not re-seal a plain AES key');
          });
      }
    }
    const pending = this.pendingTouches.get(row.ID.toString('hex'));
    return {
      id: row.ID,
      name: row.Name,
      publicKey: row.PublicKey,
      aesKey,
      lastSeen: pending !== undefined ? Math.max(pending, row.LastSeen) : row.LastSeen,
    };
  }

  private storedAesKey(id: Buffer, aesKey: Buffer): Buffer {
    return this.masterKey ? sealAesKey(this.masterKey, id, aesKey) : copy(aesKey);
  }

  findClientById(id: Buffer): Promise<ClientRecord | undefined> {
    if (this.closing) return Promise.reject(closedError());
    const hex = id.toString('hex');
    const cached = this.clients.get(hex);
    if (cached !== undefined) return Promise.resolve(this.withPendingTouch(cached));
    const key = copy(id);
    return this.job(async () => {
      const row = await this.statement('clientById').get<ClientRow>([key]);
      if (!row) return undefined;
      const record = await this.toClientRecord(row);
      this.remember(hex, { ...record, lastSeen: row.LastSeen });
      return record;
    });
  }

  /** Caches a record read or committed inside a job (so no write of it can be under way). */
  private remember(hex: string, record: ClientRecord): void {
    if (this.clients.size >= MAX_CACHED_CLIENTS) {
      const oldest = this.clients.keys().next();
      if (!oldest.done) this.clients.delete(oldest.value);
    }
    this.clients.set(hex, record);
  }

  private withPendingTouch(record: ClientRecord): ClientRecord {
    const pending = this.pendingTouches.get(record.id.toString('hex'));
    return pending !== undefined && pending > record.lastSeen
      ? { ...record, lastSeen: pending }
      : { ...record };
  }

  findClientByName(name: string): Promise<ClientRecord | undefined> {
    return this.job(async () => {
      const row = await this.statement('clientByName').get<ClientRow>([name]);
      return row ? this.toClientRecord(row) : undefined;
    });
  }

  registerClient(id: Buffer, name: string, now: number): Promise<RegisterResult> {
    const newId = copy(id);
    return this.write(
      async (): Promise<RegisterResult> => {
        const existing = await this.statement('clientByName').get<ClientRow>([name]);
        let replacedId: Buffer | undefined;
        if (existing) {
          if (existing.PublicKey !== null) return { ok: false, reason: 'name_taken' };
          // §5.1: a record that never got a key is not owned yet; the new registration wins.
          replacedId = existing.ID;
          this.clients.delete(existing.ID.toString('hex'));
          await this.statement('deleteFilesOf').run([existing.ID]);
          await this.statement('deleteClient').run([existing.ID]);
          this.pendingTouches.delete(existing.ID.toString('hex'));
        }
        this.clients.delete(newId.toString('hex'));
        await this.statement('insertClient').run([newId, name, now]);
        const client: ClientRecord = {
          id: newId,
          name,
          publicKey: null,
          aesKey: null,
          lastSeen: now,
        };
        return replacedId ? { ok: true, client, replacedId } : { ok: true, client };
      },
      true,
      (result) => {
        if (result.ok) this.remember(result.client.id.toString('hex'), result.client);
      },
    );
  }

  setPublicKey(id: Buffer, publicKeyDer: Buffer, aesKey: Buffer, now: number): Promise<boolean> {
    const publicKey = copy(publicKeyDer);
    return this.writeClientKey(
      id,
      aesKey,
      async (key, stored) =>
        (await this.statement('setPublicKey').run([publicKey, stored, now, key])).changes === 1,
      (before, changed) => (changed ? { ...before, publicKey, lastSeen: now } : undefined),
    );
  }

  setAesKey(id: Buffer, aesKey: Buffer, now: number): Promise<void> {
    return this.writeClientKey(
      id,
      aesKey,
      async (key, stored, hex) => {
        const result = await this.statement('setAesKey').run([stored, now, key]);
        if (result.changes !== 1) {
          throw new StorageError(
            StorageErrorCode.DATABASE,
            `cannot store the AES key: no client ${hex}`,
          );
        }
      },
      (before) => ({ ...before, lastSeen: Math.max(before.lastSeen, now) }),
    );
  }

  /**
   * A write of a client's AES key (sealed under the master key if there is one). Its cache entry
   * is dropped while the write runs, and put back with the new key and `patch` once committed.
   */
  private writeClientKey<T>(
    id: Buffer,
    aesKey: Buffer,
    body: (key: Buffer, storedKey: Buffer, hex: string) => Promise<T>,
    patch: (before: ClientRecord, value: T) => Omit<ClientRecord, 'aesKey'> | undefined,
  ): Promise<T> {
    const key = copy(id);
    const hex = key.toString('hex');
    let before: ClientRecord | undefined;
    return this.write(
      async () => {
        before = this.clients.get(hex);
        this.clients.delete(hex);
        return body(key, this.storedAesKey(key, aesKey), hex);
      },
      false,
      (value) => {
        const after = before === undefined ? undefined : patch(before, value);
        if (after !== undefined) this.remember(hex, { ...after, aesKey: copy(aesKey) });
      },
    );
  }

  touch(id: Buffer, now: number): Promise<void> {
    if (this.closing) return Promise.reject(closedError());
    // Written behind: the session may touch on every packet; one fsync per packet would
    // dominate an upload. A crash loses at most touchFlushMs of LastSeen, nothing else.
    const hex = id.toString('hex');
    const before = this.pendingTouches.get(hex);
    if (before === undefined || now > before) this.pendingTouches.set(hex, now);
    if (!this.touchTimer) {
      this.touchTimer = setTimeout(() => {
        this.touchTimer = undefined;
        this.flush().catch((err: unknown) => {
          this.logger?.error({ err }, 'could not write LastSeen updates');
        });
      }, this.touchFlushMs);
      this.touchTimer.unref();
    }
    return Promise.resolve();
  }

  private async writeTouches(): Promise<void> {
    if (this.pendingTouches.size === 0) return;
    const batch = [...this.pendingTouches];
    this.pendingTouches.clear();
    await this.transaction(async () => {
      for (const [hex, time] of batch) {
        // The cached LastSeen no longer includes the pending value: read it anew.
        this.clients.delete(hex);
        await this.statement('touch').run([time, Buffer.from(hex, 'hex')]);
      }
    });
  }

  flush(): Promise<void> {
    if (this.touchTimer) {
      clearTimeout(this.touchTimer);
      this.touchTimer = undefined;
    }
    return this.job(() => this.writeTouches());
  }

  putFile(file: Omit<FileRecord, 'verified' | 'status'>, audit?: AuditEntry): Promise<void> {
    const owner = copy(file.clientId);
    const auditRow = audit === undefined ? undefined : auditParams(audit);
    return this.write(
      async () => {
        await this.statement('putFile').run([
          owner,
          file.fileName,
          file.pathName,
          file.size,
          file.cksum,
          file.updatedAt,
        ]);
      },
      false,
      undefined,
      // Same transaction: one flush for both, and no audit row for a change that failed.
      auditRow === undefined ? undefined : { row: auditRow, when: () => true },
    );
  }

  findFile(clientId: Buffer, fileName: string): Promise<FileRecord | undefined> {
    const owner = copy(clientId);
    return this.job(async () => {
      const row = await this.statement('fileByKey').get<FileRow>([owner, fileName]);
      return row ? toFileRecord(row) : undefined;
    });
  }

  setFileStatus(
    clientId: Buffer,
    fileName: string,
    status: FileStatus,
    now: number,
    audit?: AuditEntry,
  ): Promise<boolean> {
    const owner = copy(clientId);
    const auditRow = audit === undefined ? undefined : auditParams(audit);
    return this.write(
      async () => {
        const verified = status === 'verified' ? 1 : 0;
        const result = await this.statement('setFileStatus').run([
          status,
          verified,
          now,
          owner,
          fileName,
        ]);
        return result.changes === 1;
      },
      false,
      undefined,
      auditRow === undefined ? undefined : { row: auditRow, when: (changed) => changed },
    );
  }

  storedBytes(clientId: Buffer): Promise<number> {
    const owner = copy(clientId);
    return this.job(async () => {
      const row = await this.statement('storedBytes').get<{ total: number }>([owner]);
      return row?.total ?? 0;
    });
  }

  listClients(): Promise<ClientRecord[]> {
    return this.job(async () => {
      const rows = await this.db.all<ClientRow>(
        `SELECT ${CLIENT_COLUMNS} FROM clients ORDER BY Name`,
      );
      const records: ClientRecord[] = [];
      for (const row of rows) records.push(await this.toClientRecord(row));
      return records;
    });
  }

  listClientSummaries(): Promise<ClientSummary[]> {
    return this.job(async () => {
      const rows = await this.db.all<ClientRow>(
        `SELECT ${CLIENT_COLUMNS} FROM clients ORDER BY Name`,
      );
      return rows.map((row) => {
        const pending = this.pendingTouches.get(row.ID.toString('hex'));
        return {
          id: row.ID,
          name: row.Name,
          hasPublicKey: row.PublicKey !== null,
          hasAesKey: row.AESKey !== null,
          aesKeySealed: row.AESKey !== null && row.AESKey.length !== 32,
          lastSeen: pending !== undefined ? Math.max(pending, row.LastSeen) : row.LastSeen,
        };
      });
    });
  }

  listFiles(): Promise<FileRecord[]> {
    return this.job(async () => {
      const rows = await this.db.all<FileRow>(
        `SELECT ${FILE_COLUMNS} FROM files ORDER BY ID, FileName`,
      );
      return rows.map(toFileRecord);
    });
  }

  audit(entry: AuditEntry): Promise<void> {
    if (this.closing) return Promise.reject(closedError());
    const auditRow = auditParams(entry);
    return new Promise<void>((resolve, reject) => {
      this.pendingWrites.push({
        body: () => Promise.resolve(),
        auditRow,
        atomic: false,
        committed: undefined,
        resolve: () => resolve(),
        reject,
      });
      this.queueWriteJob();
    });
  }

  listAudit(since?: number): Promise<StoredAuditEntry[]> {
    return this.queryAudit(since === undefined ? {} : { since });
  }

  queryAudit(options: { since?: number; limit?: number }): Promise<StoredAuditEntry[]> {
    return this.job(async () => {
      const since = options.since ?? Number.MIN_SAFE_INTEGER;
      const rows =
        options.limit === undefined
          ? await this.db.all<AuditRow>(
              `SELECT ${AUDIT_COLUMNS} FROM auth_log WHERE Time >= ? ORDER BY Time, LogID`,
              [since],
            )
          : await this.db.all<AuditRow>(
              `SELECT * FROM (SELECT ${AUDIT_COLUMNS} FROM auth_log WHERE Time >= ? ` +
                'ORDER BY Time DESC, LogID DESC LIMIT ?) ORDER BY Time, LogID',
              [since, Math.max(0, Math.floor(options.limit))],
            );
      return rows.map(toAuditEntry);
    });
  }

  integrityCheck(): Promise<string[]> {
    return this.job(async () => {
      const rows = await this.db.all<{ integrity_check: string }>('PRAGMA integrity_check');
      return rows.map((row) => row.integrity_check);
    });
  }

  journalMode(): Promise<string> {
    return this.job(async () => {
      const row = await this.db.get<{ journal_mode: string }>('PRAGMA journal_mode');
      return row?.journal_mode ?? '';
    });
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    if (this.touchTimer) {
      clearTimeout(this.touchTimer);
      this.touchTimer = undefined;
    }
    // Jobs already queued (including group-committed audits) finish first.
    const finalJob = this.queue.run(async () => {
      if (!this.readOnly) {
        await this.writeTouches().catch((err: unknown) => {
          this.logger?.error({ err }, 'could not write LastSeen updates at close');
        });
      }
      for (const statement of this.statements.values()) await statement.finalize();
      await this.db.close();
    });
    this.closing = finalJob;
    return finalJob;
  }
}
