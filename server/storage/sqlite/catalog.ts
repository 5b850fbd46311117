/**
 * The Catalog on SQLite (`defensive.db`, docs/protocol.md §7) with the `sqlite3` package.
 *
 * - One connection, shared by all sessions. Every operation runs as a job of a SerialQueue, so
 *   a multi-statement transaction never interleaves with another session's statements.
 * - Writes are group-committed (../group-commit.ts), LastSeen is written behind
 *   (../last-seen.ts) and client records are cached (../client-cache.ts): the server is the
 *   only writer of its database. Client records are in clients.ts.
 * - With a master key the AESKey column is sealed (../master-key.ts); plain rows written before
 *   are still read and re-sealed on next use.
 * - Every failure rejects with a StorageError, never a raw driver error.
 */
import type {
  ArchiveAs,
  ArchiveResult,
  AuditEntry,
  Catalog,
  ClientSummary,
  FileRecord,
  FileStatus,
  FileVersion,
  NewFile,
  PutFileOptions,
  RestoreOptions,
  SetStatusOptions,
  StoredAuditEntry,
  VersionFilter,
} from '../types';
import { closedError, putFileAudits, putFileRecord } from '../types';
import { audited } from '../group-commit';
import * as admin from './admin-queries';
import type { AsyncDatabase, AsyncStatement } from './async';
import { setFileStatusAudited } from './audited-writes';
import { SqliteClients, type ClientSettings } from './clients';
import type { SqliteReader } from './reader';
import {
  auditParams,
  copy,
  fileParams,
  toFileRecord,
  type FileRow,
  type StatementName,
} from './rows';
import { archiveRow, pruneVersions, restoreRow } from './versions';

export interface CatalogSettings extends ClientSettings {
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

export class SqliteCatalog extends SqliteClients implements SqliteStore {
  private readonly reader: SqliteReader | undefined;

  constructor(
    db: AsyncDatabase,
    readonly path: string,
    statements: ReadonlyMap<StatementName, AsyncStatement>,
    settings: CatalogSettings,
  ) {
    super(db, statements, settings);
    this.reader = settings.reader;
  }

  // ------------------------------------------------------------ files and versions

  putFile(file: NewFile, audit?: AuditEntry, options?: PutFileOptions): Promise<void> {
    const audits = putFileAudits(audit, options);
    // With its audit rows: one statement that writes all or none (audited-writes.ts).
    const name: StatementName =
      audits.length === 0
        ? 'putFile'
        : audits.length === 1
          ? 'putFileAudited'
          : 'putFileCheckedAudited';
    const values = [...fileParams(putFileRecord(file, options)), ...audits.flatMap(auditParams)];
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
      audited(audit, (changed: boolean) => changed),
    );
  }

  storedBytes(clientId: Buffer): Promise<number> {
    const owner = copy(clientId);
    return this.job(async () => {
      const row = await this.statement('storedBytes').get<{ total: number }>([owner]);
      return row?.total ?? 0;
    });
  }

  listFiles(clientId?: Buffer): Promise<FileRecord[]> {
    const owner = clientId === undefined ? undefined : copy(clientId);
    return this.job(() => admin.listFiles(this.db, owner));
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
    options: RestoreOptions,
  ): Promise<ArchiveResult | undefined> {
    const owner = copy(clientId);
    const { audit } = options;
    return this.write(() => restoreRow(this.statementOf, owner, fileName, version, options), {
      atomic: true,
      ...audited(audit, (result: ArchiveResult | undefined) => result !== undefined),
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
