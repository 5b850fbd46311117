/**
 * The Catalog on PostgreSQL, shared by every instance of a deployment (docs/protocol.md §7
 * tables, schema.ts). What differs from the SQLite catalog, and why:
 *
 * - No client cache: another instance may change a client's row at any time (its key set, a
 *   keyless registration replaced), so every lookup reads the row.
 * - Registrations are unique across instances by the table's constraints: the insert does
 *   nothing when the name or id is taken meanwhile, which reads as `name_taken`; a keyless row
 *   being replaced is locked (`FOR UPDATE`) so two instances cannot both replace it.
 * - Writes are group-committed (../group-commit.ts, write-lane.ts) one transaction at a time,
 *   each write in a savepoint: PostgreSQL aborts a whole transaction on any error, so a
 *   savepoint is what keeps one write's failure its own.
 * - Reads run on the pool concurrently with the writing transaction.
 * - AES keys are sealed with the master key (../master-key.ts) exactly as in SQLite, so rows
 *   move between the two backends unchanged.
 * Every failure rejects with a StorageError (DATABASE when PostgreSQL failed or is away).
 */
import type { Pool, PoolClient } from 'pg';
import { archiveRow, findVersion, listVersions, prune, putBack } from './versions';
import { WriteLane } from './write-lane';
import type { AdvisoryFileLocks } from './file-locks';
import type { SharedQuotaLedger } from './quota-ledger';
import type { Logger } from '../../../shared/logger';
import { GroupCommit, type WriteOptions } from '../group-commit';
import { DEFAULT_TOUCH_FLUSH_MS, LastSeenWriteBehind } from '../last-seen';
import { PLAIN_AES_KEY_BYTES, sealAesKey, unsealStoredAesKey } from '../master-key';
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
import { databaseError, run } from './database';
import {
  fileParams,
  SQL,
  toAuditEntry,
  toClientRecord,
  toFileRecord,
  type AuditRow,
  type ClientRow,
  type FileRow,
} from './rows';

export interface PostgresCatalogSettings {
  readonly masterKey?: Buffer;
  readonly logger?: Logger;
  readonly touchFlushMs?: number;
  readonly readOnly: boolean;
  /** Group-commit batch sizes (writes per transaction), for metrics. */
  readonly onBatch?: (size: number) => void;
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

/** The write option that commits `audit` (if any) with a write whose result passes `when`. */
function audited<T>(
  audit: AuditEntry | undefined,
  when: (value: T) => boolean,
): Omit<WriteOptions<T>, 'atomic'> {
  return audit === undefined ? {} : { audit: { entry: audit, when } };
}

function closedError(): StorageError {
  return new StorageError(StorageErrorCode.CLOSED, 'the client store is closed');
}

export class PostgresCatalog implements PostgresStore {
  private readonly masterKey: Buffer | undefined;
  private readonly logger: Logger | undefined;
  private readonly lastSeen: LastSeenWriteBehind;
  private readonly group: GroupCommit;
  private readonly lane: WriteLane;
  private closing: Promise<void> | undefined;
  readonly readOnly: boolean;
  readonly fileLocks: AdvisoryFileLocks;
  readonly quotaLedger: SharedQuotaLedger;

  constructor(
    private readonly pool: Pool,
    settings: PostgresCatalogSettings,
  ) {
    this.masterKey = settings.masterKey ? Buffer.from(settings.masterKey) : undefined;
    this.logger = settings.logger;
    this.readOnly = settings.readOnly;
    this.fileLocks = settings.fileLocks;
    this.quotaLedger = settings.quotaLedger;
    this.lastSeen = new LastSeenWriteBehind({
      flushMs: settings.touchFlushMs ?? DEFAULT_TOUCH_FLUSH_MS,
      flush: () => this.flush(),
      onError: (err) => this.logger?.error({ err }, 'could not write LastSeen updates'),
    });
    this.lane = new WriteLane(pool, settings.onBatch);
    this.group = new GroupCommit(this.lane.driver);
  }

  /**
   * Queues a write for the next group commit; each runs in a savepoint of the group's
   * transaction (or a transaction of its own when alone).
   */
  private write<T>(
    body: (db: PoolClient) => Promise<T>,
    options: Omit<WriteOptions<T>, 'atomic'> = {},
  ): Promise<T> {
    if (this.closing) return Promise.reject(closedError());
    return this.group.write(() => body(this.lane.client()), { ...options, atomic: true });
  }

  /** Reads on the pool, beside any running write. */
  private read<R extends object>(what: string, sql: string, params: readonly unknown[]) {
    if (this.closing) return Promise.reject(closedError());
    return run<R & Record<string, unknown>>(this.pool, what, sql, params).then(
      (result) => result.rows as R[],
    );
  }

  // ------------------------------------------------------------ clients

  /** Decodes a row; re-seals a plain AES key when a master key is set. */
  private async decodeClient(row: ClientRow): Promise<ClientRecord> {
    let aesKey: Buffer | null = null;
    if (row.aes_key !== null) {
      const { key, form } = unsealStoredAesKey(this.masterKey, row.id, row.aes_key);
      aesKey = key;
      if (form === 'plain' && this.masterKey && !this.readOnly) {
        const sealed = sealAesKey(this.masterKey, row.id, key);
        // Opportunistic: the key is usable either way; a failed rewrite is retried next use.
        await run(this.pool, 'cannot re-seal', SQL.resealAesKey, [
          sealed,
          row.id,
          row.aes_key,
        ]).catch((err: unknown) => this.logger?.warn({ err }, 'could not re-seal a plain AES key'));
      }
    }
    const record = toClientRecord(row, aesKey);
    return { ...record, lastSeen: this.lastSeen.lastSeen(row.id.toString('hex'), row.last_seen) };
  }

  private storedAesKey(id: Buffer, aesKey: Buffer): Buffer {
    return this.masterKey ? sealAesKey(this.masterKey, id, aesKey) : Buffer.from(aesKey);
  }

  async findClientById(id: Buffer): Promise<ClientRecord | undefined> {
    const rows = await this.read<ClientRow>('cannot find client', SQL.clientById, [
      Buffer.from(id),
    ]);
    return rows[0] === undefined ? undefined : this.decodeClient(rows[0]);
  }

  async findClientByName(name: string): Promise<ClientRecord | undefined> {
    const rows = await this.read<ClientRow>('cannot find client', SQL.clientByName, [name]);
    return rows[0] === undefined ? undefined : this.decodeClient(rows[0]);
  }

  registerClient(
    id: Buffer,
    name: string,
    now: number,
    audit?: AuditEntry,
  ): Promise<RegisterResult> {
    const newId = Buffer.from(id);
    const options = audited(audit, (result: RegisterResult) => result.ok);
    return this.write(async (db): Promise<RegisterResult> => {
      const { rows } = await run<ClientRow & Record<string, unknown>>(
        db,
        'cannot register',
        SQL.clientByNameForUpdate,
        [name],
      );
      const existing = rows[0];
      let replacedId: Buffer | undefined;
      if (existing) {
        if (existing.public_key !== null) return { ok: false, reason: 'name_taken' };
        // §5.1: a record that never got a key is not owned yet; the new registration wins.
        // Its files and versions go with it (ON DELETE CASCADE).
        replacedId = existing.id;
        await run(db, 'cannot replace a keyless client', SQL.deleteClient, [existing.id]);
        this.lastSeen.forget(existing.id.toString('hex'));
      }
      const inserted = await run(db, 'cannot register', SQL.insertClient, [newId, name, now]);
      if (inserted.rowCount !== 1) return { ok: false, reason: 'name_taken' };
      const client: ClientRecord = {
        id: newId,
        name,
        publicKey: null,
        aesKey: null,
        lastSeen: now,
      };
      return replacedId ? { ok: true, client, replacedId } : { ok: true, client };
    }, options);
  }

  setPublicKey(
    id: Buffer,
    publicKeyDer: Buffer,
    aesKey: Buffer,
    now: number,
    audit?: AuditEntry,
  ): Promise<boolean> {
    const key = Buffer.from(id);
    const options = audited(audit, (changed: boolean) => changed);
    const publicKey = Buffer.from(publicKeyDer);
    const stored = this.storedAesKey(key, aesKey);
    return this.write(async (db) => {
      const result = await run(db, 'cannot store the public key', SQL.setPublicKey, [
        publicKey,
        stored,
        now,
        key,
      ]);
      return result.rowCount === 1;
    }, options);
  }

  setAesKey(id: Buffer, aesKey: Buffer, now: number, audit?: AuditEntry): Promise<void> {
    const key = Buffer.from(id);
    const options = audited(audit, () => true);
    const stored = this.storedAesKey(key, aesKey);
    return this.write(async (db) => {
      const result = await run(db, 'cannot store the AES key', SQL.setAesKey, [stored, now, key]);
      if (result.rowCount !== 1) {
        throw new StorageError(
          StorageErrorCode.DATABASE,
          `cannot store the AES key: no client ${key.toString('hex')}`,
        );
      }
    }, options);
  }

  touch(id: Buffer, now: number): Promise<void> {
    if (this.closing) return Promise.reject(closedError());
    this.lastSeen.note(id.toString('hex'), now);
    return Promise.resolve();
  }

  private async writeTouches(): Promise<void> {
    const batch = this.lastSeen.take();
    if (batch.length === 0) return;
    await run(this.pool, 'cannot write LastSeen', SQL.touchMany, [
      batch.map(([hex]) => Buffer.from(hex, 'hex')),
      batch.map(([, time]) => time),
    ]);
  }

  flush(): Promise<void> {
    this.lastSeen.stop();
    if (this.closing) return Promise.reject(closedError());
    return this.lane.schedule(() => this.writeTouches());
  }

  async listClients(): Promise<ClientRecord[]> {
    const rows = await this.read<ClientRow>('cannot list clients', SQL.listClients, []);
    const records: ClientRecord[] = [];
    for (const row of rows) records.push(await this.decodeClient(row));
    return records;
  }

  // ------------------------------------------------------------ files and versions

  putFile(file: NewFile, audit?: AuditEntry): Promise<void> {
    const params = fileParams({ ...file, verified: false, status: 'received' });
    return this.write(
      async (db) => {
        await run(db, 'cannot store the file row', SQL.putFile, params);
      },
      audit === undefined ? {} : { audit: { entry: audit, when: () => true } },
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
      audit === undefined ? {} : { audit: { entry: audit, when: (changed) => changed } },
    );
  }

  deleteFile(clientId: Buffer, fileName: string, audit?: AuditEntry): Promise<boolean> {
    const owner = Buffer.from(clientId);
    return this.write(
      async (db) =>
        (await run(db, 'cannot delete the file row', SQL.deleteFile, [owner, fileName]))
          .rowCount === 1,
      audit === undefined ? {} : { audit: { entry: audit, when: (changed) => changed } },
    );
  }

  async storedBytes(clientId: Buffer): Promise<number> {
    const rows = await this.read<{ total: number }>('cannot count stored bytes', SQL.storedBytes, [
      Buffer.from(clientId),
    ]);
    return rows[0]?.total ?? 0;
  }

  async listFiles(): Promise<FileRecord[]> {
    const rows = await this.read<FileRow>('cannot list files', SQL.listFiles, []);
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
    options: {
      readonly objectKey: string;
      readonly current?: ArchiveAs;
      readonly keep: number;
      readonly now: number;
      readonly audit?: AuditEntry;
    },
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
      audit === undefined
        ? {}
        : { audit: { entry: audit, when: (result) => result !== undefined } },
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
