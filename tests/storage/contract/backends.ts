/**
 * The backends every contract test runs against, through the interfaces of
 * server/storage/types.ts only. Adding a backend to the suite is one entry in BACKENDS.
 */
import { mkdir } from 'node:fs/promises';
import * as path from 'node:path';
import { createDiskByteStore } from '../../../server/storage/disk/byte-store';
import { DEFAULT_KEEP_VERSIONS, FileVault } from '../../../server/storage/file-vault';
import { MemoryByteStore, MemoryCatalog } from '../../../server/storage/memory';
import { DATABASE_FILE_NAME, openSqliteStore } from '../../../server/storage/sqlite';
import type { ByteStore, Catalog } from '../../../server/storage/types';
import { postgresS3Backend } from '../../scale/contract-backend';
import { tempDirs } from '../temp-dir';

export interface BackendUnderTest {
  readonly catalog: Catalog;
  readonly bytes: ByteStore;
  /** For backends on a local file system: nothing may appear in `parent` outside `root`. */
  readonly confined?: { readonly parent: string; readonly root: string };
  close(): Promise<void>;
}

export interface BackendFactory {
  readonly name: string;
  /** Opens an empty backend; `now` is the clock of what it writes itself. */
  open(): Promise<BackendUnderTest>;
}

const dirs = tempDirs('contract');

/** A data directory inside a parent folder, so writes into the parent can be seen. */
async function confinedDataDir(): Promise<{ parent: string; root: string }> {
  const parent = await dirs.make();
  const root = path.join(parent, 'data');
  await mkdir(root);
  return { parent, root };
}

export const BACKENDS: readonly BackendFactory[] = [
  {
    name: 'sqlite + disk',
    async open() {
      const confined = await confinedDataDir();
      const catalog = await openSqliteStore({
        path: path.join(confined.root, DATABASE_FILE_NAME),
        touchFlushMs: 10,
      });
      return {
        catalog,
        bytes: createDiskByteStore(confined.root),
        confined,
        close: () => catalog.close(),
      };
    },
  },
  {
    name: 'memory',
    async open() {
      const catalog = new MemoryCatalog();
      return { catalog, bytes: new MemoryByteStore(), close: () => catalog.close() };
    },
  },
  postgresS3Backend(),
];

/** Opens a fresh backend before each test and closes it (and its folders) after. */
export function useBackend(factory: BackendFactory): () => BackendUnderTest {
  let current: BackendUnderTest | undefined;
  beforeEach(async () => {
    current = await factory.open();
  });
  afterEach(async () => {
    await current?.close().catch(() => undefined);
    current = undefined;
    await dirs.cleanup();
  });
  return () => {
    if (current === undefined) throw new Error('no backend open');
    return current;
  };
}

/** A FileVault over the backend, with an injected clock. */
export function vaultOf(
  backend: BackendUnderTest,
  options: { keepVersions?: number; now?: () => number } = {},
): FileVault {
  return new FileVault({
    catalog: backend.catalog,
    bytes: backend.bytes,
    keepVersions: options.keepVersions ?? DEFAULT_KEEP_VERSIONS,
    now: options.now ?? (() => 1_700_000_000_000),
  });
}

export async function readAll(
  stream: NodeJS.ReadableStream | undefined,
): Promise<Buffer | undefined> {
  if (stream === undefined) return undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

export async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  return promise.then(
    () => undefined,
    (err: unknown) => (err as { code?: string }).code ?? String(err),
  );
}
