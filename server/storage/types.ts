/**
 * The storage boundary of the server: the session state machine talks only to these
 * interfaces, so tests can inject a failing store and the session imports no SQLite and no fs.
 * Implementations: sqlite-store.ts (database, docs/protocol.md §7) and file-store.ts (received files).
 */
import { CodedError } from '../../shared/coded-error';

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
  /** Path relative to the data directory: `<client-id-hex>/<file name>` (§7). */
  readonly pathName: string;
  readonly verified: boolean;
  readonly status: FileStatus;
  /** Plaintext bytes. */
  readonly size: number;
  readonly cksum: number;
  /** Milliseconds since the epoch. */
  readonly updatedAt: number;
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
  | 'quota_exceeded';

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

export type RegisterResult =
  | {
      readonly ok: true;
      readonly client: ClientRecord;
      /** Id of a keyless record of the same name that this registration replaced (§5.1). */
      readonly replacedId?: Buffer;
    }
  | { readonly ok: false; readonly reason: 'name_taken' };

/** Client and file records. All methods reject with a StorageError on I/O or SQL failure. */
export interface ClientStore {
  findClientById(id: Buffer): Promise<ClientRecord | undefined>;
  findClientByName(name: string): Promise<ClientRecord | undefined>;
  /**
   * Registers `name` under `id`. A record with that name but no public key is replaced (its
   * files and row go, §5.1); a record with a key makes this fail with `name_taken`.
   */
  registerClient(id: Buffer, name: string, now: number): Promise<RegisterResult>;
  /** Sets the key once (§5.2): false if the client is unknown or already has a key. */
  setPublicKey(id: Buffer, publicKeyDer: Buffer, aesKey: Buffer, now: number): Promise<boolean>;
  setAesKey(id: Buffer, aesKey: Buffer, now: number): Promise<void>;
  /** Updates LastSeen. */
  touch(id: Buffer, now: number): Promise<void>;
  /**
   * Inserts or replaces the row of (clientId, fileName) with status 'received', Verified = 0.
   * `audit`, if given, is written in the same transaction: both or neither.
   */
  putFile(file: Omit<FileRecord, 'verified' | 'status'>, audit?: AuditEntry): Promise<void>;
  findFile(clientId: Buffer, fileName: string): Promise<FileRecord | undefined>;
  /** False if there is no such row; `audit` is written with the change, and only with it. */
  setFileStatus(
    clientId: Buffer,
    fileName: string,
    status: FileStatus,
    now: number,
    audit?: AuditEntry,
  ): Promise<boolean>;
  /** Bytes of plaintext stored for a client (for quotas). */
  storedBytes(clientId: Buffer): Promise<number>;
  listClients(): Promise<ClientRecord[]>;
  listFiles(): Promise<FileRecord[]>;
  audit(entry: AuditEntry): Promise<void>;
  listAudit(since?: number): Promise<Array<AuditEntry & { readonly id: number }>>;
  close(): Promise<void>;
}

/** A temp file receiving one upload's plaintext; visible under its name only after `commit`. */
export interface UploadSink {
  /** Appends bytes; resolves when the OS took them (backpressure for the connection). */
  write(data: Buffer): Promise<void>;
  /** fsyncs, renames over `<client-id-hex>/<file name>`; returns the relative path (§7). */
  commit(): Promise<string>;
  /** Removes the temp file; safe to call more than once and after a failed write. */
  abort(): Promise<void>;
}

/** Received files under the data directory. Rejects with a StorageError on failure. */
export interface FileStore {
  /** Opens a temp file for `fileName` (already a checked base name, §9) of client `clientIdHex`. */
  beginUpload(clientIdHex: string, fileName: string): Promise<UploadSink>;
  /** Removes a stored file (1031, or a replaced registration); no error if it is gone. */
  remove(clientIdHex: string, fileName: string): Promise<void>;
  /** Removes a client's folder and everything in it. */
  removeClient(clientIdHex: string): Promise<void>;
  /** Deletes temp files left by a crash; called once at start. Returns how many it removed. */
  sweepTemp(): Promise<number>;
}

export const StorageErrorCode = {
  /** SQLite failed (locked, corrupt, read-only, full). */
  DATABASE: 'DATABASE',
  /** The file system failed (full disk, permissions). */
  FILESYSTEM: 'FILESYSTEM',
  /** A path would leave the data directory; never expected after §9 validation. */
  PATH_ESCAPE: 'PATH_ESCAPE',
  /** The store was closed. */
  CLOSED: 'CLOSED',
  /** The master key is malformed or does not decrypt a stored key. */
  MASTER_KEY: 'MASTER_KEY',
} as const;
export type StorageErrorCode = (typeof StorageErrorCode)[keyof typeof StorageErrorCode];

export class StorageError extends CodedError<StorageErrorCode> {
  override readonly name = 'StorageError';
}
