/**
 * The client records of the SQLite catalog (catalog.ts adds files, versions and the audit
 * trail): lookups served from a cache (../client-cache.ts), registrations and keys written with
 * their audit row in one statement where it can be (audited-writes.ts), LastSeen written behind
 * (../last-seen.ts), AES keys sealed under the master key (../master-key.ts).
 */
import type { Logger } from '../../../shared/logger';
import { ClientCache } from '../client-cache';
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
import type { AsyncDatabase, AsyncStatement } from './async';
import { registerNewClientAudited, setAesKeyAudited, setPublicKeyAudited } from './audited-writes';
import { SqliteJobs } from './jobs';
import { audited } from '../group-commit';
import { CLIENT_COLUMNS, copy, toClientRecord, type ClientRow, type StatementName } from './rows';

export interface ClientSettings {
  /** 32-byte master key: AESKey values are stored sealed with it. */
  readonly masterKey?: Buffer;
  readonly logger?: Logger;
  /** How long LastSeen updates of `touch` may wait before being written. Default 1000 ms. */
  readonly touchFlushMs?: number;
  /** No writes of its own: plain keys are not re-sealed, LastSeen is not flushed at close. */
  readonly readOnly: boolean;
}

export abstract class SqliteClients extends SqliteJobs implements ClientStore {
  protected readonly masterKey: Buffer | undefined;
  protected readonly logger: Logger | undefined;
  protected readonly clients = new ClientCache();
  protected readonly lastSeen: LastSeenWriteBehind;
  readonly readOnly: boolean;

  constructor(
    db: AsyncDatabase,
    statements: ReadonlyMap<StatementName, AsyncStatement>,
    settings: ClientSettings,
  ) {
    super(db, statements);
    this.masterKey = settings.masterKey ? copy(settings.masterKey) : undefined;
    this.logger = settings.logger;
    this.readOnly = settings.readOnly;
    this.lastSeen = new LastSeenWriteBehind({
      flushMs: settings.touchFlushMs ?? DEFAULT_TOUCH_FLUSH_MS,
      flush: () => this.flush(),
      onError: (err) => this.logger?.error({ err }, 'could not write LastSeen updates'),
    });
  }

  /** Decodes a row inside a job; re-seals a plain AES key when a master key is set. */
  protected async decodeClient(row: ClientRow): Promise<ClientRecord> {
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

  registerClient(
    id: Buffer,
    name: string,
    now: number,
    audit?: AuditEntry,
  ): Promise<RegisterResult> {
    const newId = copy(id);
    const client: ClientRecord = { id: newId, name, publicKey: null, aesKey: null, lastSeen: now };
    if (audit === undefined) return this.registerReplacing(client);
    // A name with no row (the common case) is one statement with its audit row; a name in use,
    // to refuse or to replace, takes the statements below, its audit row committed with them.
    const hex = newId.toString('hex');
    const statement = this.statement('registerClientAudited');
    return this.write(
      () => {
        this.clients.forget(hex);
        return registerNewClientAudited(statement, { id: newId, name, now }, audit);
      },
      {
        committed: (inserted) => {
          if (inserted) this.clients.remember(hex, client);
        },
      },
    ).then((inserted) => (inserted ? { ok: true, client } : this.registerReplacing(client, audit)));
  }

  private registerReplacing(client: ClientRecord, audit?: AuditEntry): Promise<RegisterResult> {
    const { id: newId, name, lastSeen: now } = client;
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
        return replacedId ? { ok: true, client, replacedId } : { ok: true, client };
      },
      {
        atomic: true,
        committed: (result) => {
          if (result.ok) this.clients.remember(result.client.id.toString('hex'), result.client);
        },
        ...audited(audit, (result: RegisterResult) => result.ok),
      },
    );
  }

  setPublicKey(
    id: Buffer,
    publicKeyDer: Buffer,
    aesKey: Buffer,
    now: number,
    audit?: AuditEntry,
  ): Promise<boolean> {
    const publicKey = copy(publicKeyDer);
    return this.writeClientKey(
      id,
      aesKey,
      async (key, stored) =>
        audit === undefined
          ? (await this.statement('setPublicKey').run([publicKey, stored, now, key])).changes === 1
          : setPublicKeyAudited(
              this.statement('setPublicKeyAudited'),
              { id: key, publicKey, storedAesKey: stored },
              now,
              audit,
            ),
      (before, changed) => (changed ? { ...before, publicKey, lastSeen: now } : undefined),
    );
  }

  setAesKey(id: Buffer, aesKey: Buffer, now: number, audit?: AuditEntry): Promise<void> {
    return this.writeClientKey(
      id,
      aesKey,
      async (key, stored, hex) => {
        const changed =
          audit === undefined
            ? (await this.statement('setAesKey').run([stored, now, key])).changes === 1
            : await setAesKeyAudited(
                this.statement('setAesKeyAudited'),
                { id: key, storedAesKey: stored },
                now,
                audit,
              );
        if (!changed) {
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

  protected async writeTouches(): Promise<void> {
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
}
