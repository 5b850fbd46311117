/**
 * `sft-server admin migrate`: copies everything of one deployment's backends into another's,
 * typically a single box (SQLite + its data folder) into PostgreSQL + S3 when scaling out.
 * Works through the storage interfaces only, so any pair of backends can be the two ends.
 *
 * Run it with the server stopped. Order: clients (with their keys, re-sealed under the target's
 * master key), then each file's bytes (streamed, SHA-256 computed on the way in and again by
 * reading the target's object back: a mismatch stops the migration), kept versions, file rows,
 * and last the audit trail in its order. The target must be empty: migrating twice, or into a
 * live deployment, is refused rather than merged.
 */
import { createHash } from 'node:crypto';
import { AdminUsageError } from './admin-format';
import { loadMasterKey } from '../storage/master-key';
import { openBackends } from '../storage/open-backends';
import {
  StorageError,
  StorageErrorCode,
  type ByteStore,
  type Catalog,
  type FileRecord,
  type FileVersion,
} from '../storage/types';

export interface MigrationEnd {
  readonly catalog: Catalog;
  readonly bytes: ByteStore;
}

export interface MigrationReport {
  readonly clients: number;
  readonly files: number;
  readonly versions: number;
  /** Versions that could not be re-created (not verified when kept): listed, not copied. */
  readonly versionsSkipped: readonly string[];
  readonly auditRows: number;
  readonly bytes: number;
  /** Every object copied, with the SHA-256 both ends agree on. */
  readonly objects: ReadonlyArray<{ readonly key: string; readonly sha256: string }>;
}

function migrationError(message: string): StorageError {
  return new StorageError(StorageErrorCode.BACKEND, message);
}

async function digest(stream: NodeJS.ReadableStream): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream) {
    const data = toBuffer(chunk);
    hash.update(data);
    bytes += data.length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

/** Copies one object; verifies the target's bytes by reading them back. */
async function copyObject(
  from: ByteStore,
  to: ByteStore,
  key: string,
): Promise<{ sha256: string; bytes: number }> {
  const source = await from.read(key);
  if (source === undefined) throw migrationError(`${key} is listed but its bytes are missing`);
  const writer = await to.begin(key);
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    for await (const chunk of source) {
      const data = toBuffer(chunk);
      hash.update(data);
      bytes += data.length;
      await writer.write(data);
    }
    await writer.commit();
  } catch (err) {
    await writer.abort();
    throw err;
  }
  const sent = hash.digest('hex');
  const stored = await to.read(key);
  if (stored === undefined) throw migrationError(`${key} is missing in the target after its copy`);
  const check = await digest(stored);
  if (check.sha256 !== sent || check.bytes !== bytes) {
    throw migrationError(
      `${key}: the target holds other bytes than the source (SHA-256 ${check.sha256}, ` +
        `${check.bytes} bytes; expected ${sent}, ${bytes} bytes)`,
    );
  }
  return { sha256: sent, bytes };
}

function toBuffer(chunk: string | Buffer): Buffer {
  return typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
}

const groupKey = (clientId: Buffer, fileName: string): string =>
  `${clientId.toString('hex')}/${fileName}`;

export async function migrateBackends(
  source: MigrationEnd,
  target: MigrationEnd,
): Promise<MigrationReport> {
  if ((await target.catalog.listClientSummaries()).length > 0) {
    throw migrationError('the target already has clients: migrate only into an empty database');
  }
  const clients = await source.catalog.listClients();
  for (const client of clients) {
    const registered = await target.catalog.registerClient(client.id, client.name, client.lastSeen);
    if (!registered.ok)
      throw migrationError(`client ${client.name} cannot be registered in the target`);
    if (client.publicKey !== null && client.aesKey !== null) {
      await target.catalog.setPublicKey(
        client.id,
        client.publicKey,
        client.aesKey,
        client.lastSeen,
      );
    } else if (client.aesKey !== null) {
      await target.catalog.setAesKey(client.id, client.aesKey, client.lastSeen);
    }
  }

  const objects: Array<{ key: string; sha256: string }> = [];
  let bytes = 0;
  const copy = async (key: string): Promise<void> => {
    const copied = await copyObject(source.bytes, target.bytes, key);
    objects.push({ key, sha256: copied.sha256 });
    bytes += copied.bytes;
  };

  const versionsByFile = new Map<string, FileVersion[]>();
  for (const version of await source.catalog.listVersions()) {
    const key = groupKey(version.clientId, version.fileName);
    versionsByFile.set(key, [...(versionsByFile.get(key) ?? []), version]);
  }
  const files = await source.catalog.listFiles();
  const live = new Map<string, FileRecord>(files.map((f) => [groupKey(f.clientId, f.fileName), f]));
  const skipped: string[] = [];
  let versions = 0;
  for (const [key, kept] of versionsByFile) {
    if (!live.has(key)) {
      skipped.push(...kept.map((v) => `${key} version ${v.version} (no live file)`));
      continue;
    }
    for (const version of kept) {
      // The catalog keeps a version by archiving a verified live row: re-create it that way.
      if (version.status !== 'verified') {
        skipped.push(`${key} version ${version.version} (${version.status})`);
        continue;
      }
      await copy(version.objectKey);
      await target.catalog.putFile({
        clientId: version.clientId,
        fileName: version.fileName,
        objectKey: version.objectKey,
        size: version.size,
        cksum: version.cksum,
        updatedAt: version.updatedAt,
      });
      await target.catalog.setFileStatus(
        version.clientId,
        version.fileName,
        'verified',
        version.updatedAt,
      );
      const result = await target.catalog.archiveFile(
        version.clientId,
        version.fileName,
        { version: version.version, objectKey: version.objectKey, archivedAt: version.archivedAt },
        Number.MAX_SAFE_INTEGER,
      );
      if (result.archived === undefined)
        throw migrationError(`${key} version ${version.version} was not kept`);
      versions += 1;
    }
  }
  for (const file of files) {
    // A failed upload's bytes are gone by design (1031): only its row is copied.
    if (file.status !== 'failed') await copy(file.objectKey);
    await target.catalog.putFile({
      clientId: file.clientId,
      fileName: file.fileName,
      objectKey: file.objectKey,
      size: file.size,
      cksum: file.cksum,
      updatedAt: file.updatedAt,
      ...(file.v4 === undefined ? {} : { v4: file.v4 }),
    });
    if (file.status !== 'received') {
      await target.catalog.setFileStatus(file.clientId, file.fileName, file.status, file.updatedAt);
    }
  }

  const audit = await source.catalog.queryAudit({});
  for (const entry of audit) {
    await target.catalog.audit({
      time: entry.time,
      remoteAddress: entry.remoteAddress,
      clientId: entry.clientId,
      name: entry.name,
      requestCode: entry.requestCode,
      outcome: entry.outcome,
      ...(entry.detail === undefined ? {} : { detail: entry.detail }),
    });
  }
  await target.catalog.flush();
  return {
    clients: clients.length,
    files: files.length,
    versions,
    versionsSkipped: skipped,
    auditRows: audit.length,
    bytes,
    objects,
  };
}

/** What `admin migrate` is given: the target, and the master key of both ends. */
export interface MigrateCommand {
  readonly dataDir: string;
  /** `--to`: the target database URL. */
  readonly to?: string;
  /** The target's byte storage and endpoint (`--storage`, `--s3-endpoint`). */
  readonly storage?: string;
  readonly s3Endpoint?: string;
  /** Given by the admin: the source is always `--data-dir` (SQLite and its folder). */
  readonly sourceDatabase?: string;
  readonly masterKeyFile?: string;
  readonly masterKeyEnv?: string;
  readonly keepVersions: number;
  readonly now: () => number;
}

/** Runs the migration from the data directory's backends into the target; a listing of it. */
export async function runMigration(
  source: MigrationEnd,
  command: MigrateCommand,
): Promise<{
  json: unknown;
  headers: readonly string[];
  rows: ReadonlyArray<ReadonlyArray<string | number>>;
}> {
  if (command.to === undefined) {
    throw new AdminUsageError(
      'migrate needs --to postgres://… (and --storage s3://… for the bytes)',
    );
  }
  if (command.sourceDatabase !== undefined) {
    throw new AdminUsageError(
      'migrate reads --data-dir (SQLite and its files); name the target with --to',
    );
  }
  const masterKey = loadMasterKey({ file: command.masterKeyFile, env: command.masterKeyEnv });
  const target = await openBackends({
    dataDir: command.dataDir,
    database: command.to,
    storage: command.storage ?? 'disk',
    keepVersions: command.keepVersions,
    now: command.now,
    ...(command.s3Endpoint === undefined ? {} : { s3Endpoint: command.s3Endpoint }),
    ...(masterKey === undefined ? {} : { masterKey }),
  });
  try {
    const report = await migrateBackends(source, target);
    return {
      json: report,
      headers: [
        'CLIENTS',
        'FILES',
        'VERSIONS',
        'AUDIT ROWS',
        'BYTES',
        'OBJECTS VERIFIED (SHA-256)',
      ],
      rows: [
        [
          report.clients,
          report.files,
          report.versions,
          report.auditRows,
          report.bytes,
          report.objects.length,
        ],
        ...report.versionsSkipped.map((skipped) => [`not copied: ${skipped}`, '', '', '', '', '']),
      ],
    };
  } finally {
    await target.close();
  }
}
