/**
 * Chooses and opens the storage backends: a database for the Catalog (`database`) and a place
 * for file bytes (`storage`), each a name or a URL. A backend is a folder under server/storage/
 * plus one line in a switch below; daemon.ts and admin.ts see only the interfaces of types.ts.
 */
import * as path from 'node:path';
import { assertNever } from '../../protocol/errors';
import type { Logger } from '../../shared/logger';
import { createDiskByteStore } from './disk/byte-store';
import { FileVault } from './file-vault';
import { MemoryByteStore, MemoryCatalog } from './memory';
import { DATABASE_FILE_NAME, openSqliteStore } from './sqlite';
import { StorageError, StorageErrorCode, type ByteStore, type Catalog } from './types';

/** Databases this server has. A URL names one by its scheme (none is URL-addressed yet). */
export const DATABASE_KINDS = ['sqlite', 'memory', 'postgres'] as const;
export type DatabaseKind = (typeof DATABASE_KINDS)[number];
/** Byte stores this server has. */
export const STORAGE_KINDS = ['disk', 'memory', 's3'] as const;
export type StorageKind = (typeof STORAGE_KINDS)[number];

/** URL schemes of backends: scheme (without `:`) → kind. */
const DATABASE_SCHEMES: Readonly<Record<string, DatabaseKind>> = {
  postgres: 'postgres',
  postgresql: 'postgres',
};
const STORAGE_SCHEMES: Readonly<Record<string, StorageKind>> = { s3: 's3' };

export interface Choice<Kind extends string> {
  readonly kind: Kind;
  /** The URL the choice was given as, for URL-addressed backends. */
  readonly url?: string;
}

export interface BackendOptions {
  /** The data directory: `defensive.db` and the files of the disk backend live here. */
  readonly dataDir: string;
  /** `sqlite` (default), `memory`, or a URL of a database backend. */
  readonly database?: string;
  /** `disk` (default), `memory`, or a URL of a byte backend. */
  readonly storage?: string;
  readonly masterKey?: Buffer;
  readonly logger?: Logger;
  /** Open the database without writing (admin listings). */
  readonly readOnly?: boolean;
  /** Versions kept per file name (file-vault.ts). */
  readonly keepVersions: number;
  /** Milliseconds since the epoch (injected). */
  readonly now: () => number;
  /** The endpoint of an S3-compatible store for `s3://` storage (default: AWS S3). */
  readonly s3Endpoint?: string;
  /** Group-commit batch sizes of the database, for metrics. */
  readonly onBatch?: (size: number) => void;
}

export interface Backends {
  readonly catalog: Catalog;
  readonly bytes: ByteStore;
  /** The FileStore of sessions and the restores of the admin command. */
  readonly files: FileVault;
  /** Closes the catalog (bytes need no closing). */
  close(): Promise<void>;
}

function backendError(message: string): StorageError {
  return new StorageError(StorageErrorCode.BACKEND, message);
}

function choose<Kind extends string>(
  what: 'database' | 'storage',
  text: string,
  kinds: readonly Kind[],
  schemes: Readonly<Record<string, Kind>>,
): Choice<Kind> {
  const named = kinds.find((kind) => kind === text);
  if (named !== undefined) return { kind: named };
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(text)?.[1]?.toLowerCase();
  const kind = scheme === undefined ? undefined : schemes[scheme];
  if (kind !== undefined) return { kind, url: text };
  // A URL may hold a password: name only its scheme.
  const shown = scheme === undefined ? JSON.stringify(text) : `a ${scheme}: URL`;
  throw backendError(`--${what} ${shown}: this server has ${kinds.join(', ')}`);
}

/** The URL of a URL-addressed backend, which its bare name alone cannot open. */
function urlOf(choice: Choice<string>, what: 'database' | 'storage', example: string): string {
  if (choice.url === undefined)
    throw backendError(`--${what} ${choice.kind} needs a URL: ${example}`);
  return choice.url;
}

export function chooseDatabase(text: string): Choice<DatabaseKind> {
  return choose('database', text, DATABASE_KINDS, DATABASE_SCHEMES);
}

export function chooseStorage(text: string): Choice<StorageKind> {
  return choose('storage', text, STORAGE_KINDS, STORAGE_SCHEMES);
}

async function openCatalog(
  choice: Choice<DatabaseKind>,
  options: BackendOptions,
): Promise<Catalog> {
  switch (choice.kind) {
    case 'sqlite':
      return openSqliteStore({
        path: path.join(path.resolve(options.dataDir), DATABASE_FILE_NAME),
        readOnly: options.readOnly ?? false,
        // Listings next to a running server skip the check; the server runs it at start.
        quickCheck: !(options.readOnly ?? false),
        ...(options.masterKey === undefined ? {} : { masterKey: options.masterKey }),
        ...(options.logger === undefined ? {} : { logger: options.logger }),
      });
    case 'memory':
      return new MemoryCatalog();
    case 'postgres': {
      // Loaded only when chosen: the driver costs memory and start-up time in every server.
      const { openPostgres } = await import('./postgres');
      return openPostgres({
        ...options,
        url: urlOf(choice, 'database', 'postgres://user@host:5432/db'),
      });
    }
    default:
      return assertNever(choice.kind, 'database backend');
  }
}

async function openBytes(choice: Choice<StorageKind>, options: BackendOptions): Promise<ByteStore> {
  switch (choice.kind) {
    case 'disk':
      return createDiskByteStore(options.dataDir);
    case 'memory':
      return new MemoryByteStore();
    case 's3': {
      // Loaded only when chosen: the AWS SDK costs memory and start-up time in every server.
      const { openS3ByteStore } = await import('./s3');
      return openS3ByteStore({
        url: urlOf(choice, 'storage', 's3://bucket/prefix'),
        now: options.now,
        ...(options.s3Endpoint === undefined ? {} : { endpoint: options.s3Endpoint }),
      });
    }
    default:
      return assertNever(choice.kind, 'storage backend');
  }
}

export async function openBackends(options: BackendOptions): Promise<Backends> {
  // Both choices are checked before anything is opened or created.
  const database = chooseDatabase(options.database ?? 'sqlite');
  const storage = chooseStorage(options.storage ?? 'disk');
  const bytes = await openBytes(storage, options);
  const catalog = await openCatalog(database, options);
  try {
    const files = new FileVault({
      catalog,
      bytes,
      keepVersions: options.keepVersions,
      now: options.now,
    });
    return { catalog, bytes, files, close: () => catalog.close() };
  } catch (err) {
    await catalog.close().catch(() => undefined);
    throw err;
  }
}
