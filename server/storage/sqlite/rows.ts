/**
 * The SQL of the SQLite catalog and the mapping between its rows and the records of types.ts.
 * Ids and keys are BLOBs; every statement is parameterised; the hot ones are prepared once.
 */
import type {
  AuditEntry,
  AuditOutcome,
  ClientRecord,
  FileRecord,
  FileStatus,
  FileVersion,
  StoredAuditEntry,
} from '../types';
import type { SqlParams } from './async';

export interface ClientRow {
  [column: string]: unknown;
  ID: Buffer;
  Name: string;
  PublicKey: Buffer | null;
  LastSeen: number;
  AESKey: Buffer | null;
}

export interface FileRow {
  [column: string]: unknown;
  ID: Buffer;
  FileName: string;
  PathName: string;
  Verified: number;
  Status: string;
  Size: number;
  Cksum: number;
  UpdatedAt: number;
  Sha256: Buffer | null;
  Flags: number;
}

export interface VersionRow {
  [column: string]: unknown;
  ID: Buffer;
  FileName: string;
  Version: number;
  ObjectKey: string;
  Status: string;
  Size: number;
  Cksum: number;
  UpdatedAt: number;
  ArchivedAt: number;
}

export interface AuditRow {
  [column: string]: unknown;
  LogID: number;
  Time: number;
  RemoteAddress: string;
  ClientID: Buffer | null;
  Name: string | null;
  RequestCode: number;
  Outcome: string;
  Detail: string | null;
}

export const CLIENT_COLUMNS = 'ID, Name, PublicKey, LastSeen, AESKey';
export const FILE_COLUMNS =
  'ID, FileName, PathName, Verified, Status, Size, Cksum, UpdatedAt, Sha256, Flags';
export const VERSION_COLUMNS =
  'ID, FileName, Version, ObjectKey, Status, Size, Cksum, UpdatedAt, ArchivedAt';
export const AUDIT_COLUMNS =
  'LogID, Time, RemoteAddress, ClientID, Name, RequestCode, Outcome, Detail';
export const AUDIT_INSERT_COLUMNS =
  'Time, RemoteAddress, ClientID, Name, RequestCode, Outcome, Detail';
/** A second audit row's columns in a view (audited-writes.ts), as `Check<column>`. */
export const CHECK_AUDIT_COLUMNS = AUDIT_INSERT_COLUMNS.split(', ')
  .map((column) => `Check${column}`)
  .join(', ');
/** What an insert of a file row does when (ID, FileName) has one: replace it. */
export const FILE_UPSERT =
  'ON CONFLICT (ID, FileName) DO UPDATE SET PathName = excluded.PathName, ' +
  'Verified = excluded.Verified, Status = excluded.Status, Size = excluded.Size, ' +
  'Cksum = excluded.Cksum, UpdatedAt = excluded.UpdatedAt, Sha256 = excluded.Sha256, ' +
  'Flags = excluded.Flags';
const FILE_COUNT = FILE_COLUMNS.split(', ').length;
const AUDIT_COUNT = AUDIT_INSERT_COLUMNS.split(', ').length;

function placeholders(count: number): string {
  return Array(count).fill('?').join(', ');
}

/** Audit rows per INSERT: far below SQLite's limit of 32766 bound parameters. */
export const AUDIT_ROWS_PER_INSERT = 500;

/** Statements prepared once at open. */
export const SQL = {
  clientById: `SELECT ${CLIENT_COLUMNS} FROM clients WHERE ID = ?`,
  clientByName: `SELECT ${CLIENT_COLUMNS} FROM clients WHERE Name = ?`,
  insertClient:
    'INSERT INTO clients (ID, Name, PublicKey, LastSeen, AESKey) VALUES (?, ?, NULL, ?, NULL)',
  deleteClient: 'DELETE FROM clients WHERE ID = ?',
  deleteFilesOf: 'DELETE FROM files WHERE ID = ?',
  deleteVersionsOf: 'DELETE FROM file_versions WHERE ID = ?',
  /** insertClient with its audit row, for a name with no row (audited-writes.ts). */
  registerClientAudited:
    `INSERT INTO client_registered (ClientName, LastSeen, NewID, ${AUDIT_INSERT_COLUMNS}) ` +
    'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
  /** setPublicKey with its audit row, one statement (audited-writes.ts). */
  setPublicKeyAudited:
    `INSERT INTO client_key_set (PublicKey, AESKey, LastSeen, KeyID, ${AUDIT_INSERT_COLUMNS}) ` +
    'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
  /** setAesKey with its audit row, one statement (audited-writes.ts). */
  setAesKeyAudited:
    `INSERT INTO client_aes_key_set (AESKey, LastSeen, KeyID, ${AUDIT_INSERT_COLUMNS}) ` +
    'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
  setPublicKey:
    'UPDATE clients SET PublicKey = ?, AESKey = ?, LastSeen = ? WHERE ID = ? AND PublicKey IS NULL',
  setAesKey: 'UPDATE clients SET AESKey = ?, LastSeen = max(LastSeen, ?) WHERE ID = ?',
  resealAesKey: 'UPDATE clients SET AESKey = ? WHERE ID = ? AND AESKey = ?',
  touch: 'UPDATE clients SET LastSeen = max(LastSeen, ?) WHERE ID = ?',
  putFile: `INSERT INTO files (${FILE_COLUMNS}) VALUES (${placeholders(FILE_COUNT)}) ${FILE_UPSERT}`,
  /** putFile with its audit row, one statement (audited-writes.ts). */
  putFileAudited:
    `INSERT INTO file_stored (${FILE_COLUMNS}, ${AUDIT_INSERT_COLUMNS}) ` +
    `VALUES (${placeholders(FILE_COUNT + AUDIT_COUNT)})`,
  /** putFile with its audit row and the check's after it, one statement (audited-writes.ts). */
  putFileCheckedAudited:
    `INSERT INTO file_stored_checked (${FILE_COLUMNS}, ${AUDIT_INSERT_COLUMNS}, ` +
    `${CHECK_AUDIT_COLUMNS}) VALUES (${placeholders(FILE_COUNT + 2 * AUDIT_COUNT)})`,
  /** setFileStatus with its audit row, one statement (audited-writes.ts). */
  setFileStatusAudited:
    'INSERT INTO file_status_set (Status, Verified, UpdatedAt, ID, FileName, UnlessFailed, ' +
    `${AUDIT_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  fileByKey: `SELECT ${FILE_COLUMNS} FROM files WHERE ID = ? AND FileName = ?`,
  setFileStatus:
    'UPDATE files SET Status = ?, Verified = ?, UpdatedAt = ? WHERE ID = ? AND FileName = ?',
  setFileStatusUnlessFailed:
    'UPDATE files SET Status = ?, Verified = ?, UpdatedAt = ? ' +
    "WHERE ID = ? AND FileName = ? AND Status <> 'failed'",
  deleteFile: 'DELETE FROM files WHERE ID = ? AND FileName = ?',
  storedBytes:
    "SELECT COALESCE(SUM(Size), 0) AS total FROM files WHERE ID = ? AND Status <> 'failed'",
  auditOne: `INSERT INTO auth_log (${AUDIT_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`,
  insertVersion: `INSERT INTO file_versions (${VERSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  versionByKey: `SELECT ${VERSION_COLUMNS} FROM file_versions WHERE ID = ? AND FileName = ? AND Version = ?`,
  versionsOfFile: `SELECT ${VERSION_COLUMNS} FROM file_versions WHERE ID = ? AND FileName = ? ORDER BY Version`,
  deleteVersion: 'DELETE FROM file_versions WHERE ID = ? AND FileName = ? AND Version = ?',
} as const;
export type StatementName = keyof typeof SQL;

const FILE_STATUSES: ReadonlySet<string> = new Set<FileStatus>(['received', 'verified', 'failed']);

function toStatus(text: string): FileStatus {
  return FILE_STATUSES.has(text) ? (text as FileStatus) : 'received';
}

export function toFileRecord(row: FileRow): FileRecord {
  return {
    clientId: row.ID,
    fileName: row.FileName,
    objectKey: row.PathName,
    verified: row.Verified === 1,
    status: toStatus(row.Status),
    size: row.Size,
    cksum: row.Cksum,
    updatedAt: row.UpdatedAt,
    ...(row.Sha256 === null || row.Sha256 === undefined
      ? {}
      : { v4: { sha256: row.Sha256, flags: row.Flags } }),
  };
}

/** Values of FILE_COLUMNS. */
export function fileParams(file: FileRecord): SqlParams {
  return [
    copy(file.clientId),
    file.fileName,
    file.objectKey,
    file.status === 'verified' ? 1 : 0,
    file.status,
    file.size,
    file.cksum,
    file.updatedAt,
    file.v4 === undefined ? null : copy(file.v4.sha256),
    file.v4?.flags ?? 0,
  ];
}

export function toFileVersion(row: VersionRow): FileVersion {
  return {
    clientId: row.ID,
    fileName: row.FileName,
    version: row.Version,
    objectKey: row.ObjectKey,
    status: toStatus(row.Status),
    size: row.Size,
    cksum: row.Cksum,
    updatedAt: row.UpdatedAt,
    archivedAt: row.ArchivedAt,
  };
}

/** Values of VERSION_COLUMNS. */
export function versionParams(version: FileVersion): SqlParams {
  return [
    copy(version.clientId),
    version.fileName,
    version.version,
    version.objectKey,
    version.status,
    version.size,
    version.cksum,
    version.updatedAt,
    version.archivedAt,
  ];
}

/** An audit entry as the values of AUDIT_INSERT_COLUMNS. */
export function auditParams(entry: AuditEntry): SqlParams {
  return [
    entry.time,
    entry.remoteAddress,
    entry.clientId ? copy(entry.clientId) : null,
    entry.name,
    entry.requestCode,
    entry.outcome,
    entry.detail ?? null,
  ];
}

export function toAuditEntry(row: AuditRow): StoredAuditEntry {
  return {
    id: row.LogID,
    time: row.Time,
    remoteAddress: row.RemoteAddress,
    clientId: row.ClientID,
    name: row.Name,
    requestCode: row.RequestCode,
    outcome: row.Outcome as AuditOutcome,
    ...(row.Detail === null ? {} : { detail: row.Detail }),
  };
}

export function toClientRecord(row: ClientRow, aesKey: Buffer | null): ClientRecord {
  return {
    id: row.ID,
    name: row.Name,
    publicKey: row.PublicKey,
    aesKey,
    lastSeen: row.LastSeen,
  };
}

/** Callers may hand in views of reused buffers (decoder views): keep our own copy. */
export function copy(buffer: Buffer): Buffer {
  return Buffer.from(buffer);
}
