/**
 * The client records of the PostgreSQL catalog (catalog.ts adds files, versions and the audit
 * trail), and the write lane and group commit both halves write through. Kept apart so each
 * file stays one responsibility, as the SQLite catalog is split (../sqlite/clients.ts).
 *
 * - No client cache: another instance may change a client's row at any time (its key set, a
 *   keyless registration replaced), so every lookup reads the row.
 * - Registrations are unique across instances by the table's constraints: the insert does
 *   nothing when the name or id is taken meanwhile, which reads as `name_taken`; a keyless row
 *   being replaced is locked (`FOR UPDATE`) so two instances cannot both replace it.
 * - AES keys are sealed with the master key (../master-key.ts) exactly as in SQLite, so rows
 *   move between the two backends unchanged.
 */
import type { Pool, PoolClient } from 'pg';
import { WriteLane } from './write-lane';
import type { Logger } from '../../../shared/logger';
import { audited, GroupCommit, type WriteOptions } from '../group-commit';
import { DEFAULT_TOUCH_FLUSH_MS, LastSeenWriteBehind } from '../last-seen';
import { sealAesKey, unsealStoredAesKey } from '../master-key';
import {
  closedError,
  StorageError,
  StorageErrorCode,
  type AuditEntry,
  type ClientRecord,
  type ClientStore,
  type RegisterResult,
} from '../types';
import { run } from './database';
import { SQL, toClientRecord, type ClientRow } from './rows';

export interface PostgresClientSettings {
  readonly masterKey?: Buffer;
  readonly logger?: Logger;
  readonly touchFlushMs?: number;
  readonly readOnly: boolean;
  /** Group-commit batch sizes (writes per transaction), for metrics. */
  readonly onBatch?: (size: number) => void;
}

export abstract class PostgresClients implements ClientStore {
  protected readonly masterKey: Buffer | undefined;
  protected readonly logger: Logger | undefined;
  protected readonly lastSeen: LastSeenWriteBehind;
  protected readonly group: GroupCommit;
  protected readonly lane: WriteLane;
  protected closing: Promise<void> | undefined;
  readonly readOnly: boolean;

  constructor(
    protected readonly pool: Pool,
    settings: PostgresClientSettings,
  ) {
    this.masterKey = settings.masterKey ? Buffer.from(settings.masterKey) : undefined;
    this.logger = settings.logger;
    this.readOnly = settings.readOnly;
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
  protected write<T>(
    body: (db: PoolClient) => Promise<T>,
    options: Omit<WriteOptions<T>, 'atomic'> = {},
  ): Promise<T> {
    if (this.closing) return Promise.reject(closedError());
    return this.group.write(() => body(this.lane.client()), { ...options, atomic: true });
  }

  /** Reads on the pool, beside any running write. */
  protected read<R extends object>(what: string, sql: string, params: readonly unknown[]) {
    if (this.closing) return Promise.reject(closedError());
    return run<R & Record<string, unknown>>(this.pool, what, sql, params).then(
      (result) => result.rows as R[],
    );
  }

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

  protected async writeTouches(): Promise<void> {
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
}
