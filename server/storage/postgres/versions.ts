/**
 * Kept versions of files on PostgreSQL (docs/protocol.md §9: an upload never destroys a
 * verified file): the statements of archive, prune and restore, run inside the catalog's
 * write transaction, and the listing.
 */
import {
  archivedVersion,
  type ArchiveAs,
  type FileRecord,
  type FileVersion,
  type VersionFilter,
} from '../types';
import { run, type Queryable } from './database';
import {
  fileParams,
  SQL,
  toFileRecord,
  toFileVersion,
  versionParams,
  VERSION_COLUMNS,
  type FileRow,
  type VersionRow,
} from './rows';

/** Inserts the live row of a file as a version when `accept` takes it. */
export async function archiveRow(
  db: Queryable,
  owner: Buffer,
  fileName: string,
  as: ArchiveAs,
  accept: (file: FileRecord) => boolean,
): Promise<FileVersion | undefined> {
  const { rows } = await run<FileRow & Record<string, unknown>>(
    db,
    'cannot read the file row',
    SQL.fileByKey,
    [owner, fileName],
  );
  if (rows[0] === undefined) return undefined;
  const current = toFileRecord(rows[0]);
  if (!accept(current)) return undefined;
  const version = archivedVersion(current, as);
  await run(db, 'cannot keep a version', SQL.insertVersion, versionParams(version));
  return version;
}

/** Drops the oldest versions of a file beyond `keep`; returns them. */
export async function prune(
  db: Queryable,
  owner: Buffer,
  fileName: string,
  keep: number,
): Promise<FileVersion[]> {
  const { rows } = await run<VersionRow & Record<string, unknown>>(
    db,
    'cannot list versions',
    SQL.versionsOfFile,
    [owner, fileName],
  );
  const pruned = rows.slice(0, Math.max(0, rows.length - Math.max(0, keep))).map(toFileVersion);
  for (const version of pruned) {
    await run(db, 'cannot drop a version', SQL.deleteVersion, [owner, fileName, version.version]);
  }
  return pruned;
}

/** The kept version `version` of a file, or undefined. */
export async function findVersion(
  db: Queryable,
  owner: Buffer,
  fileName: string,
  version: number,
): Promise<FileVersion | undefined> {
  const { rows } = await run<VersionRow & Record<string, unknown>>(
    db,
    'cannot read the version',
    SQL.versionByKey,
    [owner, fileName, version],
  );
  return rows[0] === undefined ? undefined : toFileVersion(rows[0]);
}

/** Makes `kept` the live row again, its bytes under `objectKey`, as of `now`. */
export async function putBack(
  db: Queryable,
  kept: FileVersion,
  objectKey: string,
  now: number,
): Promise<void> {
  await run(
    db,
    'cannot restore the file row',
    SQL.putFile,
    fileParams({
      clientId: kept.clientId,
      fileName: kept.fileName,
      objectKey,
      verified: kept.status === 'verified',
      status: kept.status,
      size: kept.size,
      cksum: kept.cksum,
      updatedAt: now,
    }),
  );
}

/** Versions, oldest first (by client, name, number), optionally of one client or file. */
export async function listVersions(db: Queryable, filter: VersionFilter): Promise<FileVersion[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  if (filter.clientId !== undefined) {
    params.push(Buffer.from(filter.clientId));
    where.push(`client_id = $${params.length}`);
  }
  if (filter.fileName !== undefined) {
    params.push(filter.fileName);
    where.push(`file_name = $${params.length}`);
  }
  const { rows } = await run<VersionRow & Record<string, unknown>>(
    db,
    'cannot list versions',
    `SELECT ${VERSION_COLUMNS} FROM file_versions` +
      (where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '') +
      ' ORDER BY client_id, file_name, version',
    params,
  );
  return rows.map(toFileVersion);
}
