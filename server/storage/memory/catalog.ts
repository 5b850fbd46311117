/**
 * The memory Catalog: clients, files, versions and the audit trail in Maps and an array. Every
 * change applies fully or not at all (checks and injected failures come first), like a
 * transaction. For tests and `--database memory` (nothing survives a restart).
 */
import { PLAIN_AES_KEY_BYTES } from '../master-key';
import {
  StorageError,
  StorageErrorCode,
  type ArchiveAs,
  type ArchiveResult,
  archivedVersion,
  type AuditEntry,
  type Catalog,
  type RestoreOptions,
  type ClientRecord,
  type ClientSummary,
  type FileRecord,
  type FileStatus,
  type FileVersion,
  type NewFile,
  type PutFileOptions,
  closedError,
  putFileAudits,
  putFileRecord,
  type RegisterResult,
  type SetStatusOptions,
  type StoredAuditEntry,
  type VersionFilter,
} from '../types';
import { FailureInjector } from './faults';

const hexOf = (id: Buffer): string => id.toString('hex');
const fileKey = (id: Buffer, name: string): string => `${hexOf(id)}/${name}`;
const byVersion = (a: FileVersion, b: FileVersion): number =>
  Buffer.compare(a.clientId, b.clientId) ||
  (a.fileName < b.fileName ? -1 : a.fileName > b.fileName ? 1 : 0) ||
  a.version - b.version;

export class MemoryCatalog implements Catalog {
  /** Client records by id hex. */
  readonly clients = new Map<string, ClientRecord>();
  /** File rows by `<id hex>/<name>`. */
  readonly files = new Map<string, FileRecord>();
  /** Kept versions by `<id hex>/<name>`, oldest first. */
  readonly versions = new Map<string, FileVersion[]>();
  readonly auditLog: StoredAuditEntry[] = [];
  private closed = false;

  constructor(readonly faults: FailureInjector = new FailureInjector()) {}

  private guard(operation: string): void {
    if (this.closed) throw closedError();
    this.faults.check(operation);
  }

  private append(entry: AuditEntry): void {
    this.auditLog.push({ ...entry, id: this.auditLog.length + 1 });
  }

  async findClientById(id: Buffer): Promise<ClientRecord | undefined> {
    this.guard('findClientById');
    return this.clients.get(hexOf(id));
  }

  async findClientByName(name: string): Promise<ClientRecord | undefined> {
    this.guard('findClientByName');
    return [...this.clients.values()].find((client) => client.name === name);
  }

  async registerClient(
    id: Buffer,
    name: string,
    now: number,
    audit?: AuditEntry,
  ): Promise<RegisterResult> {
    this.guard('registerClient');
    const existing = [...this.clients.values()].find((client) => client.name === name);
    if (existing && existing.publicKey !== null) return { ok: false, reason: 'name_taken' };
    if (existing) {
      this.clients.delete(hexOf(existing.id));
      for (const [key, file] of this.files) {
        if (file.clientId.equals(existing.id)) this.files.delete(key);
      }
      for (const key of [...this.versions.keys()]) {
        if (key.startsWith(`${hexOf(existing.id)}/`)) this.versions.delete(key);
      }
    }
    const client: ClientRecord = {
      id: Buffer.from(id),
      name,
      publicKey: null,
      aesKey: null,
      lastSeen: now,
    };
    this.clients.set(hexOf(id), client);
    if (audit !== undefined) this.append(audit);
    return existing ? { ok: true, client, replacedId: existing.id } : { ok: true, client };
  }

  async setPublicKey(
    id: Buffer,
    der: Buffer,
    aesKey: Buffer,
    now: number,
    audit?: AuditEntry,
  ): Promise<boolean> {
    this.guard('setPublicKey');
    const client = this.clients.get(hexOf(id));
    if (!client || client.publicKey !== null) return false;
    this.clients.set(hexOf(id), {
      ...client,
      publicKey: Buffer.from(der),
      aesKey: Buffer.from(aesKey),
      lastSeen: now,
    });
    if (audit !== undefined) this.append(audit);
    return true;
  }

  async setAesKey(id: Buffer, aesKey: Buffer, now: number, audit?: AuditEntry): Promise<void> {
    this.guard('setAesKey');
    const client = this.clients.get(hexOf(id));
    if (!client) {
      throw new StorageError(
        StorageErrorCode.DATABASE,
        `cannot store the AES key: no client ${hexOf(id)}`,
      );
    }
    this.clients.set(hexOf(id), {
      ...client,
      aesKey: Buffer.from(aesKey),
      lastSeen: Math.max(client.lastSeen, now),
    });
    if (audit !== undefined) this.append(audit);
  }

  async touch(id: Buffer, now: number): Promise<void> {
    this.guard('touch');
    const client = this.clients.get(hexOf(id));
    if (client && now > client.lastSeen) this.clients.set(hexOf(id), { ...client, lastSeen: now });
  }

  async listClients(): Promise<ClientRecord[]> {
    this.guard('listClients');
    return [...this.clients.values()].sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    );
  }

  async putFile(file: NewFile, audit?: AuditEntry, options?: PutFileOptions): Promise<void> {
    this.guard('putFile');
    if (!this.clients.has(hexOf(file.clientId))) {
      throw new StorageError(
        StorageErrorCode.DATABASE,
        `cannot store ${file.fileName}: no client ${hexOf(file.clientId)}`,
      );
    }
    this.files.set(fileKey(file.clientId, file.fileName), {
      ...putFileRecord(file, options),
      clientId: Buffer.from(file.clientId),
      ...(file.v4 === undefined
        ? {}
        : { v4: { sha256: Buffer.from(file.v4.sha256), flags: file.v4.flags } }),
    });
    for (const entry of putFileAudits(audit, options)) this.append(entry);
  }

  async findFile(clientId: Buffer, fileName: string): Promise<FileRecord | undefined> {
    this.guard('findFile');
    return this.files.get(fileKey(clientId, fileName));
  }

  async setFileStatus(
    clientId: Buffer,
    fileName: string,
    status: FileStatus,
    now: number,
    audit?: AuditEntry,
    options: SetStatusOptions = {},
  ): Promise<boolean> {
    this.guard('setFileStatus');
    const key = fileKey(clientId, fileName);
    const file = this.files.get(key);
    if (!file || (options.unlessFailed === true && file.status === 'failed')) return false;
    this.files.set(key, { ...file, status, verified: status === 'verified', updatedAt: now });
    if (audit !== undefined) this.append(audit);
    return true;
  }

  async deleteFile(clientId: Buffer, fileName: string, audit?: AuditEntry): Promise<boolean> {
    this.guard('deleteFile');
    if (!this.files.delete(fileKey(clientId, fileName))) return false;
    if (audit !== undefined) this.append(audit);
    return true;
  }

  async storedBytes(clientId: Buffer): Promise<number> {
    this.guard('storedBytes');
    let total = 0;
    for (const file of this.files.values()) {
      if (file.clientId.equals(clientId) && file.status !== 'failed') total += file.size;
    }
    return total;
  }

  async listFiles(clientId?: Buffer): Promise<FileRecord[]> {
    this.guard('listFiles');
    return [...this.files.values()]
      .filter((f) => clientId === undefined || f.clientId.equals(clientId))
      .sort(
        (a, b) =>
          Buffer.compare(a.clientId, b.clientId) ||
          (a.fileName < b.fileName ? -1 : a.fileName > b.fileName ? 1 : 0),
      );
  }

  /** The version `current` would become, if `accept` takes it; nothing is changed. */
  private versionOf(
    clientId: Buffer,
    fileName: string,
    as: ArchiveAs,
    accept: (file: FileRecord) => boolean,
  ): FileVersion | undefined {
    const current = this.files.get(fileKey(clientId, fileName));
    if (current === undefined || !accept(current)) return undefined;
    const taken = this.versions.get(fileKey(clientId, fileName)) ?? [];
    if (taken.some((kept) => kept.version === as.version)) {
      throw new StorageError(
        StorageErrorCode.DATABASE,
        `version ${as.version} of ${fileKey(clientId, fileName)} exists`,
      );
    }
    return { ...archivedVersion(current, as), clientId: Buffer.from(clientId) };
  }

  /** Adds `version` (if any) and drops the oldest beyond `keep`. */
  private keep(clientId: Buffer, fileName: string, version: FileVersion | undefined, keep: number) {
    const key = fileKey(clientId, fileName);
    const list = [...(this.versions.get(key) ?? []), ...(version ? [version] : [])];
    const pruned = list.splice(0, Math.max(0, list.length - Math.max(0, keep)));
    if (list.length > 0) this.versions.set(key, list);
    else this.versions.delete(key);
    return pruned;
  }

  async archiveFile(
    clientId: Buffer,
    fileName: string,
    as: ArchiveAs,
    keep: number,
  ): Promise<ArchiveResult> {
    this.guard('archiveFile');
    const archived =
      keep > 0
        ? this.versionOf(clientId, fileName, as, (file) => file.status === 'verified')
        : undefined;
    return { archived, pruned: this.keep(clientId, fileName, archived, keep) };
  }

  async restoreVersion(
    clientId: Buffer,
    fileName: string,
    version: number,
    options: RestoreOptions,
  ): Promise<ArchiveResult | undefined> {
    this.guard('restoreVersion');
    const key = fileKey(clientId, fileName);
    const wanted = (this.versions.get(key) ?? []).find((kept) => kept.version === version);
    if (wanted === undefined) return undefined;
    const archived =
      options.current === undefined
        ? undefined
        : this.versionOf(clientId, fileName, options.current, (file) => file.status !== 'failed');
    this.files.set(key, {
      clientId: Buffer.from(clientId),
      fileName,
      objectKey: options.objectKey,
      verified: wanted.status === 'verified',
      status: wanted.status,
      size: wanted.size,
      cksum: wanted.cksum,
      updatedAt: options.now,
    });
    const pruned = this.keep(clientId, fileName, archived, options.keep);
    if (options.audit !== undefined) this.append(options.audit);
    return { archived, pruned };
  }

  async listVersions(filter: VersionFilter = {}): Promise<FileVersion[]> {
    this.guard('listVersions');
    const all = [...this.versions.values()].flat();
    return all
      .filter(
        (kept) =>
          (filter.clientId === undefined || kept.clientId.equals(filter.clientId)) &&
          (filter.fileName === undefined || kept.fileName === filter.fileName),
      )
      .sort(byVersion);
  }

  async audit(entry: AuditEntry): Promise<void> {
    this.guard('audit');
    this.append(entry);
  }

  async listAudit(since?: number): Promise<StoredAuditEntry[]> {
    this.guard('listAudit');
    return this.queryAudit(since === undefined ? {} : { since });
  }

  async queryAudit(options: { since?: number; limit?: number }): Promise<StoredAuditEntry[]> {
    this.guard('queryAudit');
    const since = options.since ?? Number.MIN_SAFE_INTEGER;
    const rows = this.auditLog
      .filter((entry) => entry.time >= since)
      .sort((a, b) => a.time - b.time || a.id - b.id);
    return options.limit === undefined
      ? rows
      : rows.slice(Math.max(0, rows.length - Math.max(0, Math.floor(options.limit))));
  }

  async listClientSummaries(): Promise<ClientSummary[]> {
    this.guard('listClientSummaries');
    return (await this.listClients()).map((client) => ({
      id: client.id,
      name: client.name,
      hasPublicKey: client.publicKey !== null,
      hasAesKey: client.aesKey !== null,
      aesKeySealed: client.aesKey !== null && client.aesKey.length !== PLAIN_AES_KEY_BYTES,
      lastSeen: client.lastSeen,
    }));
  }

  /** Maps have no consistency check of their own. */
  async integrityCheck(): Promise<undefined> {
    this.guard('integrityCheck');
    return undefined;
  }

  /** Nothing is written behind. */
  async flush(): Promise<void> {
    this.guard('flush');
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
