/**
 * The SQL of the PostgreSQL catalog and the mapping between its rows and the records of
 * types.ts. Every statement is parameterised; bigint columns arrive as numbers (database.ts).
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

export interface ClientRow {
  id: Buffer;
  name: string;
  public_key: Buffer | null;
  last_seen: number;
  aes_key: Buffer | null;
}

export interface FileRow {
  client_id: Buffer;
  file_name: string;
  path_name: string;
  verified: boolean;
  status: string;
  size: number;
  cksum: number;
  updated_at: number;
  sha256: Buffer | null;
  flags: number;
}

export interface VersionRow {
  client_id: Buffer;
  file_name: string;
  version: number;
  object_key: string;
  status: string;
  size: number;
  cksum: number;
  updated_at: number;
  archived_at: number;
}

export interface AuditRow {
  log_id: number;
  time: number;
  remote_address: string;
  client_id: Buffer | null;
  name: string | null;
  request_code: number;
  outcome: string;
  detail: string | null;
}

export const CLIENT_COLUMNS = 'id, name, public_key, last_seen, aes_key';
export const FILE_COLUMNS =
  'client_id, file_name, path_name, verified, status, size, cksum, updated_at, sha256, flags';
export const VERSION_COLUMNS =
  'client_id, file_name, version, object_key, status, size, cksum, updated_at, archived_at';
export const AUDIT_COLUMNS =
  'log_id, time, remote_address, client_id, name, request_code, outcome, detail';

export const SQL = {
  clientById: `SELECT ${CLIENT_COLUMNS} FROM clients WHERE id = $1`,
  clientByName: `SELECT ${CLIENT_COLUMNS} FROM clients WHERE name = $1`,
  /** Locks the row: a registration elsewhere waits until this one commits. */
  clientByNameForUpdate: `SELECT ${CLIENT_COLUMNS} FROM clients WHERE name = $1 FOR UPDATE`,
  /** No row back when the name (or id) was taken meanwhile, by any instance. */
  insertClient:
    'INSERT INTO clients (id, name, public_key, last_seen, aes_key) VALUES ($1, $2, NULL, $3, NULL) ' +
    'ON CONFLICT DO NOTHING RETURNING id',
  deleteClient: 'DELETE FROM clients WHERE id = $1',
  setPublicKey:
    'UPDATE clients SET public_key = $1, aes_key = $2, last_seen = $3 ' +
    'WHERE id = $4 AND public_key IS NULL',
  setAesKey: 'UPDATE clients SET aes_key = $1, last_seen = GREATEST(last_seen, $2) WHERE id = $3',
  resealAesKey: 'UPDATE clients SET aes_key = $1 WHERE id = $2 AND aes_key = $3',
  touchMany:
    'UPDATE clients AS c SET last_seen = GREATEST(c.last_seen, t.seen) ' +
    'FROM unnest($1::bytea[], $2::bigint[]) AS t (id, seen) WHERE c.id = t.id',
  putFile:
    `INSERT INTO files (${FILE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ` +
    'ON CONFLICT (client_id, file_name) DO UPDATE SET path_name = excluded.path_name, ' +
    'verified = excluded.verified, status = excluded.status, size = excluded.size, ' +
    'cksum = excluded.cksum, updated_at = excluded.updated_at, sha256 = excluded.sha256, ' +
    'flags = excluded.flags',
  fileByKey: `SELECT ${FILE_COLUMNS} FROM files WHERE client_id = $1 AND file_name = $2`,
  setFileStatus:
    'UPDATE files SET status = $1, verified = $2, updated_at = $3 ' +
    'WHERE client_id = $4 AND file_name = $5',
  setFileStatusUnlessFailed:
    'UPDATE files SET status = $1, verified = $2, updated_at = $3 ' +
    "WHERE client_id = $4 AND file_name = $5 AND status <> 'failed'",
  deleteFile: 'DELETE FROM files WHERE client_id = $1 AND file_name = $2',
  storedBytes:
    "SELECT COALESCE(SUM(size), 0)::bigint AS total FROM files WHERE client_id = $1 AND status <> 'failed'",
  insertAudits:
    'INSERT INTO auth_log (time, remote_address, client_id, name, request_code, outcome, detail) ' +
    'SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::text[], $5::integer[], ' +
    '$6::text[], $7::text[])',
  insertVersion: `INSERT INTO file_versions (${VERSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
  versionByKey: `SELECT ${VERSION_COLUMNS} FROM file_versions WHERE client_id = $1 AND file_name = $2 AND version = $3`,
  versionsOfFile: `SELECT ${VERSION_COLUMNS} FROM file_versions WHERE client_id = $1 AND file_name = $2 ORDER BY version`,
  deleteVersion:
    'DELETE FROM file_versions WHERE client_id = $1 AND file_name = $2 AND version = $3',
  listClients: `SELECT ${CLIENT_COLUMNS} FROM clients ORDER BY name`,
  listFiles: `SELECT ${FILE_COLUMNS} FROM files ORDER BY client_id, file_name`,
  listFilesOf: `SELECT ${FILE_COLUMNS} FROM files WHERE client_id = $1 ORDER BY file_name`,
  auditSince: `SELECT ${AUDIT_COLUMNS} FROM auth_log WHERE time >= $1 ORDER BY time, log_id`,
  auditNewest:
    `SELECT * FROM (SELECT ${AUDIT_COLUMNS} FROM auth_log WHERE time >= $1 ` +
    'ORDER BY time DESC, log_id DESC LIMIT $2) AS newest ORDER BY time, log_id',
} as const;

const FILE_STATUSES: ReadonlySet<string> = new Set<FileStatus>(['received', 'verified', 'failed']);

function toStatus(text: string): FileStatus {
  return FILE_STATUSES.has(text) ? (text as FileStatus) : 'received';
}

export function toFileRecord(row: FileRow): FileRecord {
  return {
    clientId: row.client_id,
    fileName: row.file_name,
    objectKey: row.path_name,
    verified: row.verified,
    status: toStatus(row.status),
    size: row.size,
    cksum: row.cksum,
    updatedAt: row.updated_at,
    ...(row.sha256 === null ? {} : { v4: { sha256: row.sha256, flags: row.flags } }),
  };
}

/** Values of FILE_COLUMNS. */
export function fileParams(file: FileRecord): unknown[] {
  return [
    Buffer.from(file.clientId),
    file.fileName,
    file.objectKey,
    file.status === 'verified',
    file.status,
    file.size,
    file.cksum,
    file.updatedAt,
    file.v4 === undefined ? null : Buffer.from(file.v4.sha256),
    file.v4?.flags ?? 0,
  ];
}

export function toFileVersion(row: VersionRow): FileVersion {
  return {
    clientId: row.client_id,
    fileName: row.file_name,
    version: row.version,
    objectKey: row.object_key,
    status: toStatus(row.status),
    size: row.size,
    cksum: row.cksum,
    updatedAt: row.updated_at,
    archivedAt: row.archived_at,
  };
}

/** Values of VERSION_COLUMNS. */
export function versionParams(version: FileVersion): unknown[] {
  return [
    Buffer.from(version.clientId),
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

/** Audit entries as the seven column arrays of `insertAudits`. */
export function auditArrays(entries: readonly AuditEntry[]): unknown[] {
  return [
    entries.map((entry) => entry.time),
    entries.map((entry) => entry.remoteAddress),
    entries.map((entry) => (entry.clientId ? Buffer.from(entry.clientId) : null)),
    entries.map((entry) => entry.name),
    entries.map((entry) => entry.requestCode),
    entries.map((entry) => entry.outcome),
    entries.map((entry) => entry.detail ?? null),
  ];
}

export function toAuditEntry(row: AuditRow): StoredAuditEntry {
  return {
    id: row.log_id,
    time: row.time,
    remoteAddress: row.remote_address,
    clientId: row.client_id,
    name: row.name,
    requestCode: row.request_code,
    outcome: row.outcome as AuditOutcome,
    ...(row.detail === null ? {} : { detail: row.detail }),
  };
}

export function toClientRecord(row: ClientRow, aesKey: Buffer | null): ClientRecord {
  return {
    id: row.id,
    name: row.name,
    publicKey: row.public_key,
    aesKey,
    lastSeen: row.last_seen,
  };
}
