/**
 * The listings of the admin command (and the checks of tests) on SQLite. Each runs as one job
 * of the catalog's queue; none writes.
 */
import type {
  ClientSummary,
  FileRecord,
  FileVersion,
  StoredAuditEntry,
  VersionFilter,
} from '../types';
import type { AsyncDatabase, SqlValue } from './async';
import {
  AUDIT_COLUMNS,
  CLIENT_COLUMNS,
  FILE_COLUMNS,
  toAuditEntry,
  toFileRecord,
  toFileVersion,
  VERSION_COLUMNS,
  type AuditRow,
  type ClientRow,
  type FileRow,
  type VersionRow,
} from './rows';
import { PLAIN_AES_KEY_BYTES } from '../master-key';

export async function listClientSummaries(
  db: AsyncDatabase,
  lastSeen: (hex: string, stored: number) => number,
): Promise<ClientSummary[]> {
  const rows = await db.all<ClientRow>(`SELECT ${CLIENT_COLUMNS} FROM clients ORDER BY Name`);
  return rows.map((row) => ({
    id: row.ID,
    name: row.Name,
    hasPublicKey: row.PublicKey !== null,
    hasAesKey: row.AESKey !== null,
    aesKeySealed: row.AESKey !== null && row.AESKey.length !== PLAIN_AES_KEY_BYTES,
    lastSeen: lastSeen(row.ID.toString('hex'), row.LastSeen),
  }));
}

export async function listFiles(db: AsyncDatabase, clientId?: Buffer): Promise<FileRecord[]> {
  const rows =
    clientId === undefined
      ? await db.all<FileRow>(`SELECT ${FILE_COLUMNS} FROM files ORDER BY ID, FileName`)
      : await db.all<FileRow>(`SELECT ${FILE_COLUMNS} FROM files WHERE ID = ? ORDER BY FileName`, [
          clientId,
        ]);
  return rows.map(toFileRecord);
}

export async function listVersions(
  db: AsyncDatabase,
  filter: VersionFilter,
): Promise<FileVersion[]> {
  const where: string[] = [];
  const params: SqlValue[] = [];
  if (filter.clientId !== undefined) {
    where.push('ID = ?');
    params.push(Buffer.from(filter.clientId));
  }
  if (filter.fileName !== undefined) {
    where.push('FileName = ?');
    params.push(filter.fileName);
  }
  const rows = await db.all<VersionRow>(
    `SELECT ${VERSION_COLUMNS} FROM file_versions` +
      (where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '') +
      ' ORDER BY ID, FileName, Version',
    params,
  );
  return rows.map(toFileVersion);
}

export async function queryAudit(
  db: AsyncDatabase,
  options: { since?: number; limit?: number },
): Promise<StoredAuditEntry[]> {
  const since = options.since ?? Number.MIN_SAFE_INTEGER;
  const rows =
    options.limit === undefined
      ? await db.all<AuditRow>(
          `SELECT ${AUDIT_COLUMNS} FROM auth_log WHERE Time >= ? ORDER BY Time, LogID`,
          [since],
        )
      : await db.all<AuditRow>(
          `SELECT * FROM (SELECT ${AUDIT_COLUMNS} FROM auth_log WHERE Time >= ? ` +
            'ORDER BY Time DESC, LogID DESC LIMIT ?) ORDER BY Time, LogID',
          [since, Math.max(0, Math.floor(options.limit))],
        );
  return rows.map(toAuditEntry);
}

/** `PRAGMA integrity_check`: `['ok']` when the database is sound. */
export async function integrityCheck(db: AsyncDatabase): Promise<string[]> {
  const rows = await db.all<{ integrity_check: string }>('PRAGMA integrity_check');
  return rows.map((row) => row.integrity_check);
}

export async function journalMode(db: AsyncDatabase): Promise<string> {
  const row = await db.get<{ journal_mode: string }>('PRAGMA journal_mode');
  return row?.journal_mode ?? '';
}
