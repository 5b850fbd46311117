/**
 * In-memory ClientStore and FileStore for session tests, with failure injection: any method
 * can be told to reject with a StorageError (full disk, locked database) from a given call on.
 */
import type {
  AuditEntry,
  ClientRecord,
  ClientStore,
  FileRecord,
  FileStatus,
  FileStore,
  RegisterResult,
  UploadSink,
} from '../../server/storage/types';
import { StorageError, StorageErrorCode } from '../../server/storage/types';

type Failure = { readonly error: StorageError; remaining: number };

/** Shared failure switchboard: `fail('putFile')` makes the next call(s) reject. */
export class FailureInjector {
  private readonly failures = new Map<string, Failure>();

  fail(method: string, options: { times?: number; error?: StorageError } = {}): void {
    this.failures.set(method, {
      error:
        options.error ??
        new StorageError(
          method.startsWith('sink.') || method === 'beginUpload'
            ? StorageErrorCode.FILESYSTEM
            : StorageErrorCode.DATABASE,
          `injected failure of ${method}`,
        ),
      remaining: options.times ?? 1,
    });
  }

  clear(): void {
    this.failures.clear();
  }

  check(method: string): void {
    const f = this.failures.get(method);
    if (!f) return;
    f.remaining--;
    if (f.remaining <= 0) this.failures.delete(method);
    throw f.error;
  }
}

const key = (id: Buffer): string => id.toString('hex');
const fileKey = (id: Buffer, name: string): string => `${key(id)}/${name}`;

export class MemoryClientStore implements ClientStore {
  readonly clients = new Map<string, ClientRecord>();
  readonly files = new Map<string, FileRecord>();
  readonly auditLog: Array<AuditEntry & { readonly id: number }> = [];
  closed = false;

  constructor(readonly faults: FailureInjector = new FailureInjector()) {}

  private guard(method: string): void {
    if (this.closed) throw new StorageError(StorageErrorCode.CLOSED, 'store is closed');
    this.faults.check(method);
  }

  async findClientById(id: Buffer): Promise<ClientRecord | undefined> {
    this.guard('findClientById');
    return this.clients.get(key(id));
  }

  async findClientByName(name: string): Promise<ClientRecord | undefined> {
    this.guard('findClientByName');
    return [...this.clients.values()].find((c) => c.name === name);
  }

  async registerClient(id: Buffer, name: string, now: number): Promise<RegisterResult> {
    this.guard('registerClient');
    const existing = [...this.clients.values()].find((c) => c.name === name);
    if (existing && existing.publicKey !== null) return { ok: false, reason: 'name_taken' };
    if (existing) {
      this.clients.delete(key(existing.id));
      for (const [k, f] of this.files) if (f.clientId.equals(existing.id)) this.files.delete(k);
    }
    const client: ClientRecord = {
      id: Buffer.from(id),
      name,
      publicKey: null,
      aesKey: null,
      lastSeen: now,
    };
    this.clients.set(key(id), client);
    return existing ? { ok: true, client, replacedId: existing.id } : { ok: true, client };
  }

  async setPublicKey(id: Buffer, der: Buffer, aesKey: Buffer, now: number): Promise<boolean> {
    this.guard('setPublicKey');
    const c = this.clients.get(key(id));
    if (!c || c.publicKey !== null) return false;
    this.clients.set(key(id), {
      ...c,
      publicKey: Buffer.from(der),
      aesKey: Buffer.from(aesKey),
      lastSeen: now,
    });
    return true;
  }

  async setAesKey(id: Buffer, aesKey: Buffer, now: number): Promise<void> {
    this.guard('setAesKey');
    const c = this.clients.get(key(id));
    if (c) this.clients.set(key(id), { ...c, aesKey: Buffer.from(aesKey), lastSeen: now });
  }

  async touch(id: Buffer, now: number): Promise<void> {
    this.guard('touch');
    const c = this.clients.get(key(id));
    if (c) this.clients.set(key(id), { ...c, lastSeen: now });
  }

  async putFile(file: Omit<FileRecord, 'verified' | 'status'>, audit?: AuditEntry): Promise<void> {
    this.guard('putFile');
    this.files.set(fileKey(file.clientId, file.fileName), {
      ...file,
      clientId: Buffer.from(file.clientId),
      verified: false,
      status: 'received',
    });
    if (audit !== undefined) this.auditLog.push({ ...audit, id: this.auditLog.length + 1 });
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
  ): Promise<boolean> {
    this.guard('setFileStatus');
    const k = fileKey(clientId, fileName);
    const f = this.files.get(k);
    if (!f) return false;
    this.files.set(k, { ...f, status, verified: status === 'verified', updatedAt: now });
    if (audit !== undefined) this.auditLog.push({ ...audit, id: this.auditLog.length + 1 });
    return true;
  }

  async storedBytes(clientId: Buffer): Promise<number> {
    this.guard('storedBytes');
    let total = 0;
    for (const f of this.files.values()) {
      if (f.clientId.equals(clientId) && f.status !== 'failed') total += f.size;
    }
    return total;
  }

  async listClients(): Promise<ClientRecord[]> {
    this.guard('listClients');
    return [...this.clients.values()];
  }

  async listFiles(): Promise<FileRecord[]> {
    this.guard('listFiles');
    return [...this.files.values()];
  }

  async audit(entry: AuditEntry): Promise<void> {
    this.guard('audit');
    this.auditLog.push({ ...entry, id: this.auditLog.length + 1 });
  }

  async listAudit(since?: number): Promise<Array<AuditEntry & { readonly id: number }>> {
    this.guard('listAudit');
    return this.auditLog.filter((e) => since === undefined || e.time >= since);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** Files kept in memory under `<client-id-hex>/<name>`, temp files under `tmp/<n>`. */
export class MemoryFileStore implements FileStore {
  readonly files = new Map<string, Buffer>();
  readonly temps = new Map<string, Buffer[]>();
  private nextTemp = 1;

  constructor(readonly faults: FailureInjector = new FailureInjector()) {}

  async beginUpload(clientIdHex: string, fileName: string): Promise<UploadSink> {
    this.faults.check('beginUpload');
    if (fileName.includes('/') || fileName.includes('\\') || fileName === '..') {
      throw new StorageError(StorageErrorCode.PATH_ESCAPE, `bad file name ${fileName}`);
    }
    const temp = `tmp/${this.nextTemp++}`;
    const parts: Buffer[] = [];
    this.temps.set(temp, parts);
    let done = false;
    return {
      write: async (data) => {
        this.faults.check('sink.write');
        if (done) throw new StorageError(StorageErrorCode.FILESYSTEM, 'sink is closed');
        parts.push(Buffer.from(data));
      },
      commit: async () => {
        this.faults.check('sink.commit');
        done = true;
        this.temps.delete(temp);
        const path = `${clientIdHex}/${fileName}`;
        this.files.set(path, Buffer.concat(parts));
        return path;
      },
      abort: async () => {
        done = true;
        this.temps.delete(temp);
      },
    };
  }

  async remove(clientIdHex: string, fileName: string): Promise<void> {
    this.faults.check('remove');
    this.files.delete(`${clientIdHex}/${fileName}`);
  }

  async removeClient(clientIdHex: string): Promise<void> {
    this.faults.check('removeClient');
    for (const path of [...this.files.keys()]) {
      if (path.startsWith(`${clientIdHex}/`)) this.files.delete(path);
    }
  }

  async sweepTemp(): Promise<number> {
    const n = this.temps.size;
    this.temps.clear();
    return n;
  }
}

export function memoryStores(): {
  faults: FailureInjector;
  store: MemoryClientStore;
  files: MemoryFileStore;
} {
  const faults = new FailureInjector();
  return { faults, store: new MemoryClientStore(faults), files: new MemoryFileStore(faults) };
}
