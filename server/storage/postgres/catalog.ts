/**
 * The Catalog on PostgreSQL, shared by every instance of a deployment (docs/protocol.md §7
 * tables, schema.ts): files, versions and the audit trail. Client records, and the write lane
 * both halves use, are in clients.ts (split by responsibility, as the SQLite catalog is). What
 * differs from the SQLite catalog, and why:
 *
 * - Writes are group-committed (../group-commit.ts, write-lane.ts) one transaction at a time,
 *   each write in a savepoint: PostgreSQL aborts a whole transaction on any error, so a
 *   savepoint is what keeps one write's failure its own.
 * - Reads run on the pool concurrently with the writing transaction.
 * - No client cache, registrations unique across instances, AES keys sealed: see clients.ts.
 * Every failure rejects with a StorageError (DATABASE when PostgreSQL failed or is away).
 */
import type { Pool } from 'pg';
import { archiveRow, findVersion, listVersions, prune, putBack } from './versions';
import type { AdvisoryFileLocks } from './file-locks';
import type { SharedQuotaLedger } from './quota-ledger';
import { PLAIN_AES_KEY_BYTES } from '../master-key';
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
import { PostgresClients, type PostgresClientSettings } from './clients';
import { databaseError, run } from './database';
import {
  fileParams,
  SQL,
  toAuditEntry,
  toFileRecord,
  type AuditRow,
  type ClientRow,
  type FileRow,
} from './rows';

export interface PostgresCatalogSettings extends PostgresClientSettings {
  /** Per-file locks across instances; closed with the catalog. */
  readonly fileLocks: AdvisoryFileLocks;
  /** `--quota` reservations shared by instances; ended with the catalog. */
  readonly quotaLedger: SharedQuotaLedger;
}

/** The PostgreSQL Catalog, plus a reachability probe for `/readyz`. */
export interface PostgresStore extends Catalog {
  readonly readOnly: boolean;
  /** Writes pending LastSeen updates now. */
  flush(): Promise<void>;
  /** Resolves when PostgreSQL answers; rejects with a StorageError otherwise. */
  ping(): Promise<void>;
  /** Serializes changes to one file name across every instance sharing the database. */
  readonly fileLocks: AdvisoryFileLocks;
  readonly quotaLedger: SharedQuotaLedger;
}

export class PostgresCatalog extends PostgresClients implements PostgresStore {
  readonly fileLocks: AdvisoryFileLocks;
  readonly quotaLedger: SharedQuotaLedger;

  constructor(pool: Pool, settings: PostgresCatalogSettings) {
    super(pool, settings);
    this.fileLocks = settings.fileLocks;
    this.quotaLedger = settings.quotaLedger;
  }

  // ------------------------------------------------------------ files and versions

  putFile(file: NewFile, audit?: AuditEntry, options?: PutFileOptions): Promise<void> {
    const params = fileParams(putFileRecord(file, options));
    const entries = putFileAudits(audit, options);
    // One transaction (group-committed) for the row and its audit rows, in order.
    return this.write(
      async (db) => {
        await run(db, 'cannot store the file row', SQL.putFile, params);
      },
      entries.length === 0 ? {} : { audit: { entries, when: () => true } },
    );
  }

  async findFile(clientId: Buffer, fileName: string): Promise<FileRecord | undefined> {
    const rows = await this.read<FileRow>('cannot find file', SQL.fileByKey, [
      Buffer.from(clientId),
      fileName,
    ]);
    return rows[0] === undefined ? undefined : toFileRecord(rows[0]);
  }

  setFileStatus(
    clientId: Buffer,
    fileName: string,
    status: FileStatus,
    now: number,
    audit?: AuditEntry,
    options: SetStatusOptions = {},
  ): Promise<boolean> {
    const owner = Buffer.from(clientId);
    const sql = options.unlessFailed === true ? SQL.setFileStatusUnlessFailed : SQL.setFileStatus;
    return this.write(
      async (db) => {
        const result = await run(db, 'cannot set the file status', sql, [
          status,
          status === 'verified',
          now,
          owner,
          fileName,
        ]);
        return result.rowCount === 1;
      },
      audited(audit, (changed: boolean) => changed),
    );
  }

  deleteFile(clientId: Buffer, fileName: string, audit?: AuditEntry): Promise<boolean> {
    const owner = Buffer.from(clientId);
    return this.write(
      async (db) =>
        (await run(db, 'cannot delete the file row', SQL.deleteFile, [owner, fileName]))
          .rowCount === 1,
      audited(audit, (changed: boolean) => changed),
    );
  }

  async storedBytes(clientId: Buffer): Promise<number> {
    const rows = await this.read<{ total: number }>('cannot count stored bytes', SQL.storedBytes, [
      Buffer.from(clientId),
    ]);
    return rows[0]?.total ?? 0;
  }

  async listFiles(clientId?: Buffer): Promise<FileRecord[]> {
    const rows =
      clientId === undefined
        ? await this.read<FileRow>('cannot list files', SQL.listFiles, [])
        : await this.read<FileRow>('cannot list files', SQL.listFilesOf, [clientId]);
    return rows.map(toFileRecord);
  }

  archiveFile(
    clientId: Buffer,
    fileName: string,
    as: ArchiveAs,
    keep: number,
  ): Promise<ArchiveResult> {
    const owner = Buffer.from(clientId);
    return this.write(async (db) => {
      const archived =
        keep > 0
          ? await archiveRow(db, owner, fileName, as, (file) => file.status === 'verified')
          : undefined;
      return { archived, pruned: await prune(db, owner, fileName, keep) };
    });
  }

  restoreVersion(
    clientId: Buffer,
    fileName: string,
    version: number,
    options: RestoreOptions,
  ): Promise<ArchiveResult | undefined> {
    const owner = Buffer.from(clientId);
    const { audit } = options;
    return this.write(
      async (db): Promise<ArchiveResult | undefined> => {
        const kept = await findVersion(db, owner, fileName, version);
        if (kept === undefined) return undefined;
        const archived =
          options.current === undefined
            ? undefined
            : await archiveRow(db, owner, fileName, options.current, (f) => f.status !== 'failed');
        await putBack(db, kept, options.objectKey, options.now);
        return { archived, pruned: await prune(db, owner, fileName, options.keep) };
      },
      audited(audit, (result: ArchiveResult | undefined) => result !== undefined),
    );
  }

  listVersions(filter: VersionFilter = {}): Promise<FileVersion[]> {
    if (this.closing) return Promise.reject(closedError());
    return listVersions(this.pool, filter);
  }

  // ------------------------------------------------------------ audit and admin

  audit(entry: AuditEntry): Promise<void> {
    if (this.closing) return Promise.reject(closedError());
    return this.group.audit(entry);
  }

  listAudit(since?: number): Promise<StoredAuditEntry[]> {
    return this.queryAudit(since === undefined ? {} : { since });
  }

  async queryAudit(options: { since?: number; limit?: number }): Promise<StoredAuditEntry[]> {
    const since = options.since ?? Number.MIN_SAFE_INTEGER;
    const rows =
      options.limit === undefined
        ? await this.read<AuditRow>('cannot read the audit trail', SQL.auditSince, [since])
        : await this.read<AuditRow>('cannot read the audit trail', SQL.auditNewest, [
            since,
            Math.max(0, Math.floor(options.limit)),
          ]);
    return rows.map(toAuditEntry);
  }

  async listClientSummaries(): Promise<ClientSummary[]> {
    const rows = await this.read<ClientRow>('cannot list clients', SQL.listClients, []);
    return rows.map((row) => ({
      id: row.id,
      name: row.name,
      hasPublicKey: row.public_key !== null,
      hasAesKey: row.aes_key !== null,
      aesKeySealed: row.aes_key !== null && row.aes_key.length !== PLAIN_AES_KEY_BYTES,
      lastSeen: this.lastSeen.lastSeen(row.id.toString('hex'), row.last_seen),
    }));
  }

  /** PostgreSQL keeps its own consistency (constraints, WAL); there is no check to run here. */
  async integrityCheck(): Promise<readonly string[] | undefined> {
    return undefined;
  }

  async ping(): Promise<void> {
    await this.read('PostgreSQL is not reachable', 'SELECT 1', []);
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.lastSeen.stop();
    // Writes already queued (group-committed audits included) finish first.
    const finalJob = this.lane
      .schedule(async () => {
        if (!this.readOnly) {
          await this.writeTouches().catch((err: unknown) => {
            this.logger?.error({ err }, 'could not write LastSeen updates at close');
          });
        }
      })
      .finally(async () => {
        await this.quotaLedger.end();
        for (const pool of [this.pool, this.fileLocks]) {
          await pool.end().catch((err: unknown) => {
            this.logger?.warn({ err: databaseError('closing a pool', err) }, 'pool did not close');
          });
        }
      });
    this.closing = finalJob;
    return finalJob;
  }
}
