/**
 * The listings of `sft-server admin` (admin.ts) over AdminQueries, and `restore`: each returns
 * rows for a table and the same data for `--json`.
 */
import { AdminUsageError, hexOrDash, iso, printable } from './admin-format';
import type { Backends } from '../storage/open-backends';
import { FileFlag } from '../../protocol/v4/constants';
import { metaOfFile, type V4FileMeta, type V4FileMetaStore } from '../session/v4/file-meta';
import {
  StorageError,
  StorageErrorCode,
  type AdminQueries,
  type ClientSummary,
  type FileRecord,
  type FileVersion,
} from '../storage/types';

/** The request code of audit rows written by the admin command (no protocol request). */
export const ADMIN_REQUEST_CODE = 0;
/** The remote address of audit rows written by the admin command. */
export const ADMIN_REMOTE_ADDRESS = 'admin';

/** What versions and restore are asked for. */
export interface ListingOptions {
  /** A client id (32 hex digits) or name. */
  readonly client?: string;
  /** A file name of that client. */
  readonly name?: string;
  /** restore: the version to bring back (default the newest). */
  readonly version?: number;
}

export interface Listing {
  readonly json: unknown;
  readonly headers: readonly string[];
  readonly rows: ReadonlyArray<ReadonlyArray<string | number>>;
  /** Singular and plural, for the count line; none for a single result. */
  readonly noun?: readonly [string, string];
}

/**
 * `fingerprints`: client id hex → the v4 certificate fingerprint bound to it (docs/protocol-v4.md
 * §7); the column appears only when some client has one.
 */
export async function listClients(
  store: AdminQueries,
  since: number | undefined,
  fingerprints: ReadonlyMap<string, string> = new Map(),
): Promise<Listing> {
  const clients = (await store.listClientSummaries()).filter(
    (client) => since === undefined || client.lastSeen >= since,
  );
  const v4 = fingerprints.size > 0;
  const fingerprintOf = (client: ClientSummary): string | undefined =>
    fingerprints.get(client.id.toString('hex'));
  return {
    noun: ['client', 'clients'],
    json: clients.map((client) => {
      const fingerprint = fingerprintOf(client);
      return {
        id: client.id.toString('hex'),
        name: client.name,
        hasPublicKey: client.hasPublicKey,
        hasAesKey: client.hasAesKey,
        aesKeyEncrypted: client.aesKeySealed,
        lastSeen: iso(client.lastSeen),
        ...(fingerprint === undefined ? {} : { protocol: 4, fingerprint }),
      };
    }),
    headers: [
      'CLIENT ID',
      'NAME',
      'PUBLIC KEY',
      'AES KEY',
      'LAST SEEN',
      ...(v4 ? ['V4 FINGERPRINT'] : []),
    ],
    rows: clients.map((client) => [
      client.id.toString('hex'),
      client.name,
      client.hasPublicKey ? 'yes' : 'no',
      client.hasAesKey ? (client.aesKeySealed ? 'encrypted' : 'plain') : 'no',
      iso(client.lastSeen),
      ...(v4 ? [fingerprintOf(client) ?? '-'] : []),
    ]),
  };
}

async function ownerNames(store: AdminQueries): Promise<(id: Buffer) => string> {
  const owners = new Map(
    (await store.listClientSummaries()).map((client) => [client.id.toString('hex'), client.name]),
  );
  return (id) => owners.get(id.toString('hex')) ?? '';
}

/**
 * What v4 verified of each upload comes from its row, else from a record of `metaStore`
 * (docs/protocol-v4.md §7); the SHA-256, E2E and DEFLATED columns appear only when some file
 * has either.
 */
export async function listFiles(
  store: AdminQueries,
  since: number | undefined,
  metaStore?: V4FileMetaStore,
): Promise<Listing> {
  const ownerName = await ownerNames(store);
  const files = (await store.listFiles()).filter(
    (file: FileRecord) => since === undefined || file.updatedAt >= since,
  );
  const metas = await Promise.all(files.map((file) => metaOfFile(file, metaStore)));
  const v4 = metas.some((meta) => meta !== undefined);
  const v4Fields = (meta: V4FileMeta | undefined): Record<string, unknown> =>
    meta === undefined
      ? {}
      : {
          sha256: meta.sha256.toString('hex'),
          e2e: (meta.flags & FileFlag.E2E) !== 0,
          compressed: (meta.flags & FileFlag.COMPRESSED) !== 0,
        };
  const v4Cells = (meta: V4FileMeta | undefined): string[] =>
    meta === undefined
      ? ['-', '-', '-']
      : [
          meta.sha256.toString('hex'),
          (meta.flags & FileFlag.E2E) !== 0 ? 'yes' : 'no',
          (meta.flags & FileFlag.COMPRESSED) !== 0 ? 'yes' : 'no',
        ];
  return {
    noun: ['file', 'files'],
    json: files.map((file, index) => ({
      clientId: file.clientId.toString('hex'),
      owner: ownerName(file.clientId),
      fileName: file.fileName,
      // The §7 column name: where the bytes are, relative to the data directory on disk.
      pathName: file.objectKey,
      size: file.size,
      cksum: file.cksum,
      status: file.status,
      verified: file.verified,
      updatedAt: iso(file.updatedAt),
      ...v4Fields(metas[index]),
    })),
    headers: [
      'OWNER ID',
      'OWNER',
      'FILE',
      'PATH',
      'SIZE',
      'CKSUM',
      'STATUS',
      'UPDATED',
      ...(v4 ? ['SHA-256', 'E2E', 'DEFLATED'] : []),
    ],
    rows: files.map((file, index) => [
      file.clientId.toString('hex'),
      ownerName(file.clientId),
      file.fileName,
      file.objectKey,
      file.size,
      file.cksum,
      file.status,
      iso(file.updatedAt),
      ...(v4 ? v4Cells(metas[index]) : []),
    ]),
  };
}

export async function listAudit(
  store: AdminQueries,
  since: number | undefined,
  limit: number | undefined,
): Promise<Listing> {
  const query: { since?: number; limit?: number } = {};
  if (since !== undefined) query.since = since;
  if (limit !== undefined) query.limit = limit;
  const entries = await store.queryAudit(query);
  return {
    noun: ['audit entry', 'audit entries'],
    json: entries.map((entry) => ({
      id: entry.id,
      time: iso(entry.time),
      remoteAddress: entry.remoteAddress,
      clientId: entry.clientId ? entry.clientId.toString('hex') : null,
      name: entry.name,
      requestCode: entry.requestCode,
      outcome: entry.outcome,
      detail: entry.detail ?? null,
    })),
    headers: ['TIME', 'REMOTE', 'CLIENT ID', 'NAME', 'CODE', 'OUTCOME', 'DETAIL'],
    rows: entries.map((entry) => [
      iso(entry.time),
      entry.remoteAddress,
      hexOrDash(entry.clientId),
      entry.name ?? '-',
      entry.requestCode,
      entry.outcome,
      entry.detail ?? '',
    ]),
  };
}

/** The client named by `text`: its id in hex, or its name. NOT_FOUND when there is none. */
async function findClient(store: AdminQueries, text: string): Promise<ClientSummary> {
  const clients = await store.listClientSummaries();
  const wanted = text.toLowerCase();
  const found =
    clients.find((client) => client.id.toString('hex') === wanted) ??
    clients.find((client) => client.name === text);
  if (found === undefined) {
    throw new StorageError(
      StorageErrorCode.NOT_FOUND,
      `no client with the id or name ${JSON.stringify(printable(text))}`,
    );
  }
  return found;
}

function versionJson(version: FileVersion, owner: string): Record<string, unknown> {
  return {
    clientId: version.clientId.toString('hex'),
    owner,
    fileName: version.fileName,
    version: version.version,
    objectKey: version.objectKey,
    size: version.size,
    cksum: version.cksum,
    status: version.status,
    updatedAt: iso(version.updatedAt),
    archivedAt: iso(version.archivedAt),
  };
}

export async function listVersions(
  store: AdminQueries,
  options: ListingOptions,
  since: number | undefined,
): Promise<Listing> {
  const client = options.client === undefined ? undefined : await findClient(store, options.client);
  const ownerName = await ownerNames(store);
  const versions = (
    await store.listVersions({
      ...(client === undefined ? {} : { clientId: client.id }),
      ...(options.name === undefined ? {} : { fileName: options.name }),
    })
  ).filter((version) => since === undefined || version.archivedAt >= since);
  return {
    noun: ['version', 'versions'],
    json: versions.map((version) => versionJson(version, ownerName(version.clientId))),
    headers: ['OWNER ID', 'OWNER', 'FILE', 'VERSION', 'SIZE', 'CKSUM', 'STATUS', 'STORED', 'KEPT'],
    rows: versions.map((version) => [
      version.clientId.toString('hex'),
      ownerName(version.clientId),
      version.fileName,
      version.version,
      version.size,
      version.cksum,
      version.status,
      iso(version.updatedAt),
      iso(version.archivedAt),
    ]),
  };
}

export async function restore(
  backends: Backends,
  options: ListingOptions,
  now: number,
): Promise<Listing> {
  if (options.client === undefined || options.name === undefined) {
    throw new AdminUsageError('restore needs a client (id or name) and a file name');
  }
  const client = await findClient(backends.catalog, options.client);
  const result = await backends.files.restore(client.id, options.name, {
    ...(options.version === undefined ? {} : { version: options.version }),
    audit: {
      time: now,
      remoteAddress: ADMIN_REMOTE_ADDRESS,
      clientId: client.id,
      name: client.name,
      requestCode: ADMIN_REQUEST_CODE,
      outcome: 'file_restored',
      detail: `${options.name}: version ${options.version ?? 'newest'}`,
    },
  });
  const keptAs = result.archived?.version;
  return {
    json: {
      restored: versionJson(result.restored, client.name),
      previousKeptAs: keptAs ?? null,
    },
    headers: ['OWNER', 'FILE', 'RESTORED VERSION', 'PREVIOUS FILE KEPT AS'],
    rows: [
      [
        client.name,
        options.name,
        result.restored.version,
        keptAs === undefined ? '-' : `version ${keptAs}`,
      ],
    ],
  };
}
