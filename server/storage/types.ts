/**
 * The storage boundary of the server. Sessions talk only to these interfaces, so tests inject an
 * in-memory or failing backend and the session imports no database driver and no fs.
 *
 * Four concerns, each an interface a backend implements (docs/protocol.md §7):
 * - ClientStore: client and key records.
 * - FileCatalog: file metadata, kept versions and the audit trail; a change and its audit row
 *   commit in one transaction.
 * - ByteStore: file bytes under opaque keys (object-keys.ts), shaped to fit an object store
 *   (byte-types.ts, with FileStore; re-exported here).
 * - AdminQueries: the read-only listings of `sft-server admin`.
 * A database backend (sqlite/, memory/) provides a Catalog (the first two plus AdminQueries); a
 * byte backend (disk/, memory/) a ByteStore; open-backends.ts chooses them. FileStore is what
 * sessions use for bytes: file-vault.ts builds it from a FileCatalog and a ByteStore.
 */
import { CodedError } from '../../shared/coded-error';
import type { QuotaLedger } from '../session/quota-ledger';

export interface ClientRecord {
  readonly id: Buffer;
  readonly name: string;
  /** SPKI DER as received (without the field's zero padding); null until 1026 (§5.2). */
  readonly publicKey: Buffer | null;
  /** The current AES key in the clear (the store decrypts it if keys are kept encrypted). */
  readonly aesKey: Buffer | null;
  /** Milliseconds since the epoch. */
  readonly lastSeen: number;
}

export type FileStatus = 'received' | 'verified' | 'failed';

export interface FileRecord {
  readonly clientId: Buffer;
  readonly fileName: string;
  /**
   * Where the bytes are in the ByteStore: an opaque key (`<client-id-hex>/<file name>` for the
   * live file, object-keys.ts). Stored in the §7 `PathName` column.
   */
  readonly objectKey: string;
  readonly verified: boolean;
  readonly status: FileStatus;
  /** Plaintext bytes. */
  readonly size: number;
  readonly cksum: number;
  /** Milliseconds since the epoch. */
  readonly updatedAt: number;
  /**
   * What a v4 upload verified (docs/protocol-v4.md §7), written with the row in its commit;
   * absent for a row a v3 upload wrote, so replacing the file clears it.
   */
  readonly v4?: V4Verified;
}

/** The SHA-256 a v4 upload was checked with and its FileFlag bits (E2E, COMPRESSED). */
export interface V4Verified {
  readonly sha256: Buffer;
  readonly flags: number;
}

/** A file row as written by `putFile`: status 'received' until the client confirms (§5.5). */
export type NewFile = Omit<FileRecord, 'verified' | 'status'>;

export interface PutFileOptions {
  /**
   * For a content checked before its row is written (docs/protocol-v4.md §5.4): the row is
   * written 'verified', and `audit` (the check's row) after putFile's own, in the same commit.
   * One durable write where putFile and setFileStatus are two; a failure writes neither row.
   */
  readonly verified?: { readonly audit?: AuditEntry };
}

/** The row `putFile(file, audit, options)` writes. */
export function putFileRecord(file: NewFile, options: PutFileOptions = {}): FileRecord {
  const verified = options.verified !== undefined;
  return { ...file, verified, status: verified ? 'verified' : 'received' };
}

/** The audit rows `putFile(file, audit, options)` writes with its row, in this order. */
export function putFileAudits(
  audit: AuditEntry | undefined,
  options: PutFileOptions = {},
): AuditEntry[] {
  const check = options.verified?.audit;
  return [audit, check].filter((entry): entry is AuditEntry => entry !== undefined);
}

/** An earlier content of a file name, kept when an upload or a restore replaced it (§9). */
export interface FileVersion {
  readonly clientId: Buffer;
  readonly fileName: string;
  /** 1, 2, … per (client, name), never reused while a row of that name exists. */
  readonly version: number;
  readonly objectKey: string;
  /** The status the file had when it was replaced. */
  readonly status: FileStatus;
  readonly size: number;
  readonly cksum: number;
  /** When that content was stored (ms since the epoch). */
  readonly updatedAt: number;
  /** When it was replaced and became a version. */
  readonly archivedAt: number;
}

/** Which file a version is made from, and under what number and key. */
export interface ArchiveAs {
  readonly version: number;
  readonly objectKey: string;
  readonly archivedAt: number;
}

/** What `restoreVersion` puts back, under what key, and what it keeps of the live row. */
export interface RestoreOptions {
  /** Where the restored version's bytes now are. */
  readonly objectKey: string;
  /** The live row becomes this version first, unless it failed. */
  readonly current?: ArchiveAs;
  readonly keep: number;
  readonly now: number;
  readonly audit?: AuditEntry;
}

/** The version `file` becomes when it is archived `as`. */
export function archivedVersion(file: FileRecord, as: ArchiveAs): FileVersion {
  return {
    clientId: file.clientId,
    fileName: file.fileName,
    version: as.version,
    objectKey: as.objectKey,
    status: file.status,
    size: file.size,
    cksum: file.cksum,
    updatedAt: file.updatedAt,
    archivedAt: as.archivedAt,
  };
}

export interface ArchiveResult {
  /** The version made; undefined when there was nothing to keep (no row, or not verified). */
  readonly archived: FileVersion | undefined;
  /** Versions dropped to keep at most `keep`: their bytes are the caller's to remove. */
  readonly pruned: readonly FileVersion[];
}

export interface VersionFilter {
  readonly clientId?: Buffer;
  readonly fileName?: string;
}

/** Outcomes recorded in the audit trail (table auth_log). */
export type AuditOutcome =
  | 'registered'
  | 'name_taken'
  | 'invalid_name'
  | 'rate_limited'
  | 'key_set'
  | 'key_rejected'
  | 'reconnected'
  | 'reconnect_refused'
  | 'unknown_client'
  | 'file_stored'
  | 'file_rejected'
  | 'rejected_name'
  | 'checksum_ok'
  | 'checksum_retry'
  | 'checksum_failed'
  | 'quota_exceeded'
  /** A request that needs a bound connection (docs/protocol.md §9) came without one. */
  | 'unbound_request'
  /** An upload failed to decrypt (bad padding or size mismatch): counted for lockout. */
  | 'decrypt_failed'
  /** 1027/1028 refused: too many decrypt failures for this id from this address. */
  | 'locked_out'
  /** An administrator brought back a kept version of a file (`sft-server admin restore`). */
  | 'file_restored'
  /** A client deleted one of its files over version 4 (docs/protocol-v4.md §5.7). */
  | 'file_deleted';

export interface AuditEntry {
  /** Milliseconds since the epoch. */
  readonly time: number;
  readonly remoteAddress: string;
  /** Null when the request carried no usable id (1025). */
  readonly clientId: Buffer | null;
  readonly name: string | null;
  readonly requestCode: number;
  readonly outcome: AuditOutcome;
  /** Free text: file name, reason. Never key material. */
  readonly detail?: string;
}

export type StoredAuditEntry = AuditEntry & { readonly id: number };

export type RegisterResult =
  | {
      readonly ok: true;
      readonly client: ClientRecord;
      /** Id of a keyless record of the same name that this registration replaced (§5.1). */
      readonly replacedId?: Buffer;
    }
  | { readonly ok: false; readonly reason: 'name_taken' };

/** Client and key records. All methods reject with a StorageError on failure. */
export interface ClientStore {
  findClientById(id: Buffer): Promise<ClientRecord | undefined>;
  findClientByName(name: string): Promise<ClientRecord | undefined>;
  /**
   * Registers `name` under `id`. A record with that name but no public key is replaced (its
   * files, versions and row go, §5.1); a record with a key makes this fail with `name_taken`.
   * `audit` is written with a registration, and only with it: both commit, or neither.
   */
  registerClient(
    id: Buffer,
    name: string,
    now: number,
    audit?: AuditEntry,
  ): Promise<RegisterResult>;
  /**
   * Sets the key once (§5.2): false if the client is unknown or already has a key. `audit` is
   * written with the key, and only with it.
   */
  setPublicKey(
    id: Buffer,
    publicKeyDer: Buffer,
    aesKey: Buffer,
    now: number,
    audit?: AuditEntry,
  ): Promise<boolean>;
  /** Replaces the AES key of a known client; `audit` commits with it. */
  setAesKey(id: Buffer, aesKey: Buffer, now: number, audit?: AuditEntry): Promise<void>;
  /** Updates LastSeen (a backend may write it behind). */
  touch(id: Buffer, now: number): Promise<void>;
  listClients(): Promise<ClientRecord[]>;
}

export interface SetStatusOptions {
  /** Changes the row only when its status is not 'failed' (a file given up by 1031). */
  readonly unlessFailed?: boolean;
}

/**
 * File rows, kept versions and the audit trail. Every change that takes an `audit` entry
 * writes it in the same transaction: both commit, or neither.
 */
export interface FileCatalog {
  /**
   * Inserts or replaces the row of (clientId, fileName) with status 'received' ('verified' with
   * `options.verified`); its audit rows (putFileAudits) commit with it.
   */
  putFile(file: NewFile, audit?: AuditEntry, options?: PutFileOptions): Promise<void>;
  findFile(clientId: Buffer, fileName: string): Promise<FileRecord | undefined>;
  /**
   * False if there is no such row; `audit` is written with the change, and only with it. With
   * `unlessFailed`, a failed row is left as it is and answers false like a missing one: one
   * conditional write where a read and a write would be two round trips (1029).
   */
  setFileStatus(
    clientId: Buffer,
    fileName: string,
    status: FileStatus,
    now: number,
    audit?: AuditEntry,
    options?: SetStatusOptions,
  ): Promise<boolean>;
  /** Bytes of plaintext stored for a client in live files (for quotas). */
  storedBytes(clientId: Buffer): Promise<number>;
  /**
   * Removes the live row of (clientId, fileName); kept versions stay. False when there was
   * none; `audit` is written with the change, and only with it.
   */
  deleteFile(clientId: Buffer, fileName: string, audit?: AuditEntry): Promise<boolean>;
  /**
   * Live rows by client, then name; with `clientId`, that client's only (a v4 LIST), read
   * through the (client, name) key rather than the whole table.
   */
  listFiles(clientId?: Buffer): Promise<FileRecord[]>;
  /**
   * Keeps the current row of (clientId, fileName) as version `as.version` if it is verified,
   * then drops the oldest versions beyond `keep`. One transaction.
   */
  archiveFile(
    clientId: Buffer,
    fileName: string,
    as: ArchiveAs,
    keep: number,
  ): Promise<ArchiveResult>;
  /**
   * Makes version `version` the live row again, its bytes now under `objectKey` (status and
   * sizes as kept, `now` as its time); the live row, unless failed, becomes version `current`
   * first when `current` is given. The restored version stays. Drops the oldest versions
   * beyond `keep`; `audit` commits with it. Undefined if there is no such version.
   */
  restoreVersion(
    clientId: Buffer,
    fileName: string,
    version: number,
    options: RestoreOptions,
  ): Promise<ArchiveResult | undefined>;
  /** Versions, oldest first (by client, name, number). */
  listVersions(filter?: VersionFilter): Promise<FileVersion[]>;
  /** Appends an audit row on its own (group-committed with other writes). */
  audit(entry: AuditEntry): Promise<void>;
  listAudit(since?: number): Promise<StoredAuditEntry[]>;
}

/** A client row without key material, for listings (the admin command). */
export interface ClientSummary {
  readonly id: Buffer;
  readonly name: string;
  readonly hasPublicKey: boolean;
  readonly hasAesKey: boolean;
  /** True when the stored AES key is sealed under a master key (master-key.ts). */
  readonly aesKeySealed: boolean;
  readonly lastSeen: number;
}

/** The read-only listings of `sft-server admin`. */
export interface AdminQueries {
  listClientSummaries(): Promise<ClientSummary[]>;
  listFiles(clientId?: Buffer): Promise<FileRecord[]>;
  listVersions(filter?: VersionFilter): Promise<FileVersion[]>;
  /** Audit entries from `since` (inclusive), oldest first; with `limit`, the newest `limit`. */
  queryAudit(options: { since?: number; limit?: number }): Promise<StoredAuditEntry[]>;
  /**
   * The backend's own consistency check: `['ok']` when sound, else its findings; undefined
   * when the backend has no such check.
   */
  integrityCheck(): Promise<readonly string[] | undefined>;
}

/** What a database backend provides. */
export interface Catalog extends ClientStore, FileCatalog, AdminQueries {
  /** Per-file locks across every server sharing this database; absent: one server owns it. */
  readonly fileLocks?: { run<T>(key: string, work: () => Promise<T>): Promise<T> };
  /** `--quota` reservations shared with every server of this database; absent: per server. */
  readonly quotaLedger?: QuotaLedger;
  /** Writes anything written behind (LastSeen) now. */
  flush(): Promise<void>;
  /** Flushes, then closes; later calls reject with CLOSED. */
  close(): Promise<void>;
}

export type {
  ByteStore,
  CommitHint,
  FileStore,
  ObjectWriter,
  Published,
  UploadSink,
} from './byte-types';

export const StorageErrorCode = {
  /** The database failed (locked, corrupt, read-only, full). */
  DATABASE: 'DATABASE',
  /** The file system or object store failed (permissions, I/O). */
  FILESYSTEM: 'FILESYSTEM',
  /** No room: the disk is full, or the space reserve is given up (space-reserve.ts). */
  DISK_FULL: 'DISK_FULL',
  /** A key would leave the storage root; never expected after §9 validation. */
  PATH_ESCAPE: 'PATH_ESCAPE',
  /** The store was closed. */
  CLOSED: 'CLOSED',
  /** The master key is malformed or does not decrypt a stored key. */
  MASTER_KEY: 'MASTER_KEY',
  /** A file or version asked for does not exist. */
  NOT_FOUND: 'NOT_FOUND',
  /** The data folder is held by another running daemon (sqlite/dir-lock.ts). */
  IN_USE: 'IN_USE',
  /** A backend choice (`--database`, `--storage`) names no backend this server has. */
  BACKEND: 'BACKEND',
} as const;
export type StorageErrorCode = (typeof StorageErrorCode)[keyof typeof StorageErrorCode];

export class StorageError extends CodedError<StorageErrorCode> {
  override readonly name = 'StorageError';
}

/** What every catalog answers once it is closed (or closing). */
export function closedError(): StorageError {
  return new StorageError(StorageErrorCode.CLOSED, 'the client store is closed');
}
