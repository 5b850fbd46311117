/**
 * The Catalog on SQLite (`defensive.db`, docs/protocol.md §7) with the `sqlite3` package.
 *
 * - One connection, shared by all sessions. Every operation runs as a job of a SerialQueue, so
 *   a multi-statement transaction never interleaves with another session's statements.
 * - Writes are group-committed (../group-commit.ts), LastSeen is written behind
 *   (../last-seen.ts) and client records are cached (../client-cache.ts): the server is the
 *   only writer of its database.
 * - With a master key the AESKey column is sealed (../master-key.ts); plain rows written before
 *   are still read and re-sealed on next use.
 * - Every failure rejects with a StorageError, never a raw driver error.
 */
import type { Logger } from '../../../shared/logger';
import { ClientCache } from '../client-cache';
import { DEFAULT_TOUCH_FLUSH_MS, LastSeenWriteBehind } from '../last-seen';
import { sealAesKey, unsealStoredAesKey } from '../master-key';
import {
  StorageError,
  StorageErrorCode,
  type ArchiveAs,
  type ArchiveResult,
  type AuditEntry,
  type Catalog,
  type ClientRecord,
  type ClientSummary,
  type FileRecord,
  type FileStatus,
  type FileVersion,
  type NewFile,
  type RegisterResult,
  type SetStatusOptions,
  type StoredAuditEntry,
  type VersionFilter,
} from '../types';
import * as admin from './admin-queries';
import { setFileStatusAudited } from './audited-writes';
import { closedError, SqliteJobs } from './jobs';
import type { SqliteReader } from './reader';
import { archiveRow, pruneVersions, restoreRow } from './versions';
import type { AsyncDatabase, AsyncStatement } from './async';
import {
  auditParams,
  CLIENT_COLUMNS,
  copy,
  fileParams,
  toClientRecord,
  toFileRecord,
  type ClientRow,
  type FileRow,
  type StatementName,
} from './rows';

export interface CatalogSettings {
  /** 32-byte master key: AESKey values are stored sealed with it. */
  readonly masterKey?: Buffer;
  readonly logger?: Logger;
  /** How long LastSeen updates of `touch` may wait before being written. Default 1000 ms. */
  readonly touchFlushMs?: number;
  /** No writes of its own: plain keys are not re-sealed, LastSeen is not flushed at close. */
  readonly readOnly: boolean;
  /** Serves `findFile` without waiting for the write connection (reader.ts); closed with it. */
  readonly reader?: SqliteReader;
}

/** The SQLite Catalog, with a few extras for the admin command and tests. */
export interface SqliteStore extends Catalog {
  readonly path: string;
  readonly readOnly: boolean;
  /** Writes pending LastSeen updates now. */
  flush(): Promise<void>;
  /** `PRAGMA integrity_check`: `['ok']` when the database is sound. */
  integrityCheck(): Promise<string[]>;
  /** The journal mode in effect (`wal` for a writable store). */
  journalMode(): Promise<string>;
}

export class SqliteCatalog extends SqliteJobs implements SqliteStore {
  private readonly masterKey: Buffer | undefined;
  private readonly logger: Logger | undefined;
  private readonly clients = new ClientCache();
  private readonly lastSeen: LastSeenWriteBehind;
  private readonly reader: SqliteReader | undefined;
  readonly readOnly: boolean;

  constructor(
    db: AsyncDatabase,
    readonly path: string,
    statements: ReadonlyMap<StatementName, AsyncStatement>,
    settings: CatalogSettings,
  ) {
    super(db, statements);
    this.masterKey = settings.masterKey ? copy(settings.masterKey) : undefined;
    this.logger = settings.logger;
    this.readOnly = settings.readOnly;
    this.reader = settings.reader;
    this.lastSeen = new LastSeenWriteBehind({
      flushMs: settings.touchFlushMs ?? DEFAULT_TOUCH_FLUSH_MS,
      flush: () => this.flush(),
      onError: (err) => this.logger?.error({ err }, 'could not write LastSeen updates'),
    });
  }

  // ------------------------------------------------------------ clients

  /** Decodes a row inside a job; re-seals a plain AES key when a master key is set. */
  private async decodeClient(row: ClientRow): Promise<ClientRecord> {
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
    return toClientRecord(row, aesKey);
  }

  private withPendingTouch(record: ClientRecord): ClientRecord {
    return {
      ...record,
      lastSeen: this.lastSeen.lastSeen(record.id.toString('hex'), record.lastSeen),
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
      const record = await this.decodeClient(row);
      this.clients.remember(hex, record);
      return this.withPendingTouch(record);
    });
  }

  findClientByName(name: string): Promise<ClientRecord | undefined> {
    return this.job(async () => {
      const row = await this.statement('clientByName').get<ClientRow>([name]);
      return row ? this.withPendingTouch(await this.decodeClient(row)) : undefined;
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
          const replacedHex = existing.ID.toString('hex');
          this.clients.forget(replacedHex);
          await this.statement('deleteVersionsOf').run([existing.ID]);
          await this.statement('deleteFilesOf').run([existing.ID]);
          await this.statement('deleteClient').run([existing.ID]);
          this.lastSeen.forget(replacedHex);
        }
        this.clients.forget(newId.toString('hex'));
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
      {
        atomic: true,
        committed: (result) => {
          if (result.ok) this.clients.remember(result.client.id.toString('hex'), result.client);
        },
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
        this.clients.forget(hex);
        return body(key, this.storedAesKey(key, aesKey), hex);
      },
      {
        committed: (value) => {
          const after = before === undefined ? undefined : patch(before, value);
          if (after !== undefined) this.clients.remember(hex, { ...after, aesKey: copy(aesKey) });
        },
      },
    );
  }

  touch(id: Buffer, now: number): Promise<void> {
    if (this.closing) return Promise.reject(closedError());
    this.lastSeen.note(id.toString('hex'), now);
    return Promise.resolve();
  }

  private async writeTouches(): Promise<void> {
    const batch = this.lastSeen.take();
    if (batch.length === 0) return;
    await this.tx.transaction(async () => {
      for (const [hex, time] of batch) {
        // The cached LastSeen no longer includes the pending value: read it anew.
        this.clients.forget(hex);
        await this.statement('touch').run([time, Buffer.from(hex, 'hex')]);
      }
    });
  }

  flush(): Promise<void> {
    this.lastSeen.stop();
    return this.job(() => this.writeTouches());
  }

  listClients(): Promise<ClientRecord[]> {
    return this.job(async () => {
      const rows = await this.db.all<ClientRow>(
        `SELECT ${CLIENT_COLUMNS} FROM clients ORDER BY Name`,
      );
      const records: ClientRecord[] = [];
      for (const row of rows) records.push(this.withPendingTouch(await this.decodeClient(row)));
      return records;
    });
  }

  // ------------------------------------------------------------ files and versions

  putFile(file: NewFile, audit?: AuditEntry): Promise<void> {
    const params = fileParams({ ...file, verified: false, status: 'received' });
    // With its audit row: one statement that writes both or neither (file_stored, schema.ts).
    const [name, values] =
      audit === undefined
        ? (['putFile', params] as const)
        : (['putFileAudited', [...params, ...auditParams(audit)]] as const);
    return this.write(async () => {
      await this.statement(name).run(values);
    });
  }

  findFile(clientId: Buffer, fileName: string): Promise<FileRecord | undefined> {
    const owner = copy(clientId);
    const reader = this.reader;
    if (reader !== undefined) {
      if (this.closing) return Promise.reject(closedError());
      return reader.findFile(owner, fileName).then((row) => (row ? toFileRecord(row) : undefined));
    }
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
    options: SetStatusOptions = {},
  ): Promise<boolean> {
    const owner = copy(clientId);
    const unlessFailed = options.unlessFailed === true;
    if (audit !== undefined) {
      const statement = this.statement('setFileStatusAudited');
      const change = { status, now, unlessFailed };
      return this.write(() => setFileStatusAudited(statement, { owner, fileName }, change, audit));
    }
    const sql = unlessFailed ? 'setFileStatusUnlessFailed' : 'setFileStatus';
    return this.write(async () => {
      const verified = status === 'verified' ? 1 : 0;
      const result = await this.statement(sql).run([status, verified, now, owner, fileName]);
      return result.changes === 1;
    });
  }

  deleteFile(clientId: Buffer, fileName: string, audit?: AuditEntry): Promise<boolean> {
    const owner = copy(clientId);
    return this.write(
      async () => (await this.statement('deleteFile').run([owner, fileName])).changes === 1,
      audit === undefined ? {} : { audit: { entry: audit, when: (changed) => changed } },
    );
  }

  storedBytes(clientId: Buffer): Promise<number> {
    const owner = copy(clientId);
    return this.job(async () => {
      const row = await this.statement('storedBytes').get<{ total: number }>([owner]);
      return row?.total ?? 0;
    });
  }

  listFiles(): Promise<FileRecord[]> {
    return this.job(() => admin.listFiles(this.db));
  }

  archiveFile(
    clientId: Buffer,
    fileName: string,
    as: ArchiveAs,
    keep: number,
  ): Promise<ArchiveResult> {
    const owner = copy(clientId);
    return this.write(
      async () => {
        const archived =
          keep > 0
            ? await archiveRow(
                this.statementOf,
                owner,
                fileName,
                as,
                (file) => file.status === 'verified',
              )
            : undefined;
        return { archived, pruned: await pruneVersions(this.statementOf, owner, fileName, keep) };
      },
      { atomic: true },
    );
  }

  restoreVersion(
    clientId: Buffer,
    fileName: string,
    version: number,
    options: {
      readonly objectKey: string;
      readonly current?: ArchiveAs;
      readonly keep: number;
      readonly now: number;
      readonly audit?: AuditEntry;
    },
  ): Promise<ArchiveResult | undefined> {
    const owner = copy(clientId);
    const { audit } = options;
    return this.write(() => restoreRow(this.statementOf, owner, fileName, version, options), {
      atomic: true,
      ...(audit === undefined
        ? {}
        : { audit: { entry: audit, when: (result) => result !== undefined } }),
    });
  }

  listVersions(filter: VersionFilter = {}): Promise<FileVersion[]> {
    return this.job(() => admin.listVersions(this.db, filter));
  }

  // ------------------------------------------------------------ audit and admin

  audit(entry: AuditEntry): Promise<void> {
    return this.writeAudit(entry);
  }

  listAudit(since?: number): Promise<StoredAuditEntry[]> {
    return this.queryAudit(since === undefined ? {} : { since });
  }

  queryAudit(options: { since?: number; limit?: number }): Promise<StoredAuditEntry[]> {
    return this.job(() => admin.queryAudit(this.db, options));
  }

  listClientSummaries(): Promise<ClientSummary[]> {
    return this.job(() =>
      admin.listClientSummaries(this.db, (hex, stored) => this.lastSeen.lastSeen(hex, stored)),
    );
  }

  integrityCheck(): Promise<string[]> {
    return this.job(() => admin.integrityCheck(this.db));
  }

  journalMode(): Promise<string> {
    return this.job(() => admin.journalMode(this.db));
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.lastSeen.stop();
    // Jobs already queued (including group-committed audits) finish first.
    const finalJob = this.queue.run(async () => {
      // The reader first: the write connection, closing last, checkpoints the WAL.
      await this.reader?.close();
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
