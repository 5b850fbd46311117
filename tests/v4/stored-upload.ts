/**
 * What the tests of a v4 upload's end (STORED, its row and its record) share: the v4 test
 * server (memory-server.ts) with the file commands over backends each test owns, a raw peer
 * past HELLO and REGISTER, and one whole upload through it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { RequestCode, ResponseCode, type Response } from '../../protocol/v4';
import type { V4FileMetaStore } from '../../server/session/v4/file-meta';
import { createDiskFileMetaStore } from '../../server/storage/disk/v4-file-meta';
import { openBackends, type Backends } from '../../server/storage/open-backends';
import type { Catalog } from '../../server/storage/types';
import { generateIdentityKey, issueCertificate } from '../../shared/identity';
import { removeDirs, tempDir } from './helpers';
import { startMemoryServer, type MemoryServer } from './memory-server';
import { connectRaw, type RawV4 } from './raw-v4';

export const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

interface StoredUploadServer {
  readonly server: MemoryServer;
  readonly peer: RawV4;
}

/**
 * A server over `backends` (its catalog, or `store` in its place) with disk file records
 * (`fileMeta`, default the disk's), and a peer registered as `name`. The caller closes both.
 */
async function startWithPeer(
  dir: string,
  backends: Backends,
  options: { readonly store?: Catalog; readonly fileMeta?: V4FileMetaStore; readonly name: string },
): Promise<StoredUploadServer> {
  const server = await startMemoryServer(dir, {
    backends,
    files: true,
    fileMeta: options.fileMeta ?? createDiskFileMetaStore(dir),
    ...(options.store === undefined ? {} : { store: options.store }),
  });
  const identity = await issueCertificate(await generateIdentityKey(), 'test', {
    now: Date.now,
    random: randomBytes,
  });
  const peer = await connectRaw(server.port, identity);
  peer.send({ code: RequestCode.HELLO, version: 4, maxChunk: 65536 });
  expect((await peer.next()).code).toBe(ResponseCode.WELCOME);
  peer.send({ code: RequestCode.REGISTER, name: options.name });
  expect((await peer.next()).code).toBe(ResponseCode.REGISTERED);
  return { server, peer };
}

/** UPLOAD_BEGIN, the data in one DATA frame, UPLOAD_END; returns the answer to the end. */
export async function uploadWhole(
  peer: RawV4,
  fileName: string,
  data: Buffer,
  check: Buffer = sha256(data),
): Promise<Response> {
  peer.send({ code: RequestCode.UPLOAD_BEGIN, fileName, size: data.length, check });
  expect((await peer.next()).code).toBe(ResponseCode.UPLOAD_OFFSET);
  peer.send({ code: RequestCode.UPLOAD_DATA, data });
  peer.send({ code: RequestCode.UPLOAD_END, sha256: sha256(data) });
  return peer.next();
}

export interface StoredUploadFixture {
  /** The test's data directory. */
  readonly dir: string;
  readonly backends: Backends;
  /** Starts the server (closed after the test, with the peer) and returns its peer. */
  start(options?: {
    readonly store?: Catalog;
    readonly fileMeta?: V4FileMetaStore;
  }): Promise<RawV4>;
}

/**
 * Registers jest hooks that give each test of the suite a fresh directory and backends of the
 * given kinds, and close the server, peers and backends after it (and undo jest spies).
 */
export function storedUploadFixture(
  prefix: string,
  kinds: { readonly database: 'memory' | 'sqlite'; readonly storage: 'memory' | 'disk' },
): StoredUploadFixture {
  let dir: string | undefined;
  let backends: Backends | undefined;
  let running: StoredUploadServer | undefined;
  beforeEach(async () => {
    dir = await tempDir(prefix);
    backends = await openBackends({ dataDir: dir, ...kinds, keepVersions: 1, now: Date.now });
  });
  afterEach(async () => {
    running?.peer.close();
    await running?.server.close();
    running = undefined;
    await backends?.close();
    jest.restoreAllMocks();
    if (dir !== undefined) await removeDirs(dir);
  });
  const ready = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('used outside a test');
    return value;
  };
  return {
    get dir() {
      return ready(dir);
    },
    get backends() {
      return ready(backends);
    },
    async start(options = {}) {
      running = await startWithPeer(ready(dir), ready(backends), { ...options, name: prefix });
      return running.peer;
    },
  };
}
