/** Kept versions in the SQLite catalog: a live row copied into file_versions, and pruning. */
import {
  archivedVersion,
  type ArchiveAs,
  type ArchiveResult,
  type FileRecord,
  type FileVersion,
  type RestoreOptions,
} from '../types';
import {
  fileParams,
  toFileRecord,
  toFileVersion,
  versionParams,
  type FileRow,
  type VersionRow,
} from './rows';
import type { StatementOf } from './transactions';

/** Inserts the live row of a file as a version when `accept` takes it. */
export async function archiveRow(
  statement: StatementOf,
  owner: Buffer,
  fileName: string,
  as: ArchiveAs,
  accept: (file: FileRecord) => boolean,
): Promise<FileVersion | undefined> {
  const row = await statement('fileByKey').get<FileRow>([owner, fileName]);
  if (row === undefined) return undefined;
  const current = toFileRecord(row);
  if (!accept(current)) return undefined;
  const version = archivedVersion(current, as);
  await statement('insertVersion').run(versionParams(version));
  return version;
}

/** Drops the oldest versions of a file beyond `keep`; returns them. */
export async function pruneVersions(
  statement: StatementOf,
  owner: Buffer,
  fileName: string,
  keep: number,
): Promise<FileVersion[]> {
  const rows = await statement('versionsOfFile').all<VersionRow>([owner, fileName]);
  const pruned = rows.slice(0, Math.max(0, rows.length - Math.max(0, keep))).map(toFileVersion);
  for (const version of pruned) {
    await statement('deleteVersion').run([owner, fileName, version.version]);
  }
  return pruned;
}

/**
 * Makes `version` the live row again (its bytes now under `options.objectKey`), the live row
 * first kept as `options.current` unless it failed; undefined when there is no such version.
 */
export async function restoreRow(
  statement: StatementOf,
  owner: Buffer,
  fileName: string,
  version: number,
  options: Omit<RestoreOptions, 'audit'>,
): Promise<ArchiveResult | undefined> {
  const row = await statement('versionByKey').get<VersionRow>([owner, fileName, version]);
  if (row === undefined) return undefined;
  const kept = toFileVersion(row);
  const archived =
    options.current === undefined
      ? undefined
      : await archiveRow(statement, owner, fileName, options.current, (f) => f.status !== 'failed');
  await statement('putFile').run(
    fileParams({
      clientId: owner,
      fileName,
      objectKey: options.objectKey,
      verified: kept.status === 'verified',
      status: kept.status,
      size: kept.size,
      cksum: kept.cksum,
      updatedAt: options.now,
    }),
  );
  return { archived, pruned: await pruneVersions(statement, owner, fileName, options.keep) };
}
