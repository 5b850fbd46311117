/**
 * A 1028 that replaces a verified file, whose bytes are published but whose row cannot be
 * written (database gone, disk full): 1607, and the replaced file is live again, bytes and row
 * agreeing, its version still listed (docs/protocol.md §9: an upload never destroys a verified
 * file). A new name leaves nothing. Over the in-memory backends with injected failures and
 * over SQLite and the disk.
 */
import * as path from 'node:path';
import { cksum } from '../../shared/cksum';
import { memoryBackends } from '../../server/storage/memory';
import { openBackends } from '../../server/storage/open-backends';
import { liveKey } from '../../server/storage/object-keys';
import {
  StorageError,
  StorageErrorCode,
  type ByteStore,
  type Catalog,
  type FileStore,
} from '../../server/storage/types';
import {
  Code,
  Reply,
  checksum,
  fileReceived,
  uploadPackets,
  type RawClient,
} from '../helpers/raw-client';
import { readAll } from '../storage/contract/backends';
import { tempDirs } from '../storage/temp-dir';
import { registerWithKey, startServer, type Registered, type TestServer } from '../server/harness';

interface Setup {
  readonly store: Catalog;
  readonly files: FileStore;
  readonly bytes: ByteStore;
  /** Makes the next putFile fail after nothing was written; `then` runs as it fails. */
  failNextPutFile(then?: () => void): void;
  /** Makes the next copy of the byte store fail as a full disk would. */
  failNextCopy(): void;
  close(): Promise<void>;
}

const dirs = tempDirs('failed-row');

/** The next putFile of `store` rejects as a full database would, writing nothing. */
function failingPutFile(store: Catalog): (then?: () => void) => void {
  const putFile = store.putFile.bind(store);
  let armed: (() => void) | undefined;
  store.putFile = (...args) => {
    const then = armed;
    if (then === undefined) return putFile(...args);
    armed = undefined;
    then();
    return Promise.reject(new StorageError(StorageErrorCode.DATABASE, 'injected: disk is full'));
  };
  return (then = () => undefined) => {
    armed = then;
  };
}

/** The next copy of `bytes` rejects, copying nothing. */
function failingCopy(bytes: ByteStore): () => void {
  const copy = bytes.copy.bind(bytes);
  let armed = false;
  bytes.copy = (from, to) => {
    if (!armed) return copy(from, to);
    armed = false;
    return Promise.reject(new StorageError(StorageErrorCode.FILESYSTEM, 'injected: disk is full'));
  };
  return () => {
    armed = true;
  };
}

const SETUPS: ReadonlyArray<{ name: string; open(): Promise<Setup> }> = [
  {
    name: 'memory',
    async open() {
      const { store, files, bytes } = memoryBackends();
      return {
        store,
        files,
        bytes,
        failNextPutFile: failingPutFile(store),
        failNextCopy: failingCopy(bytes),
        close: () => store.close(),
      };
    },
  },
  {
    name: 'sqlite + disk',
    async open() {
      const dataDir = path.join(await dirs.make(), 'data');
      const backends = await openBackends({
        dataDir,
        database: 'sqlite',
        storage: 'disk',
        keepVersions: 3,
        now: Date.now,
      });
      return {
        store: backends.catalog,
        files: backends.files,
        bytes: backends.bytes,
        failNextPutFile: failingPutFile(backends.catalog),
        failNextCopy: failingCopy(backends.bytes),
        close: () => backends.close(),
      };
    },
  },
];

describe.each(SETUPS)('a 1028 whose row cannot be written: $name', ({ open }) => {
  let setup: Setup;
  let server: TestServer;
  let me: Registered;
  let client: RawClient;

  beforeEach(async () => {
    setup = await open();
    server = await startServer({ store: setup.store, files: setup.files });
    client = await server.connect();
    me = await registerWithKey(client, 'replacer');
  });
  afterEach(async () => {
    await server.close();
    await setup.close();
    await dirs.cleanup();
  });

  async function storeVerified(name: string, data: Buffer): Promise<void> {
    expect(
      fileReceived(await client.request(uploadPackets(me.id, name, me.aesKey, data))).cksum,
    ).toBe(cksum(data));
    expect((await client.request(checksum(Code.CRC_OK, me.id, name))).code).toBe(Reply.ACK);
  }

  async function liveBytes(name: string): Promise<Buffer | undefined> {
    return readAll(await setup.bytes.read(liveKey(me.id.toString('hex'), name)));
  }

  const oldData = Buffer.alloc(3000, 0x4f);
  const newData = Buffer.alloc(5000, 0x4e);

  it('1607, the replaced verified file is live again with its row, its version listed', async () => {
    await storeVerified('a.bin', oldData);
    const before = await setup.store.findFile(me.id, 'a.bin');
    setup.failNextPutFile();
    expect((await client.request(uploadPackets(me.id, 'a.bin', me.aesKey, newData))).code).toBe(
      Reply.ERROR,
    );
    expect(await liveBytes('a.bin')).toEqual(oldData);
    expect(await setup.store.findFile(me.id, 'a.bin')).toEqual(before);
    expect(before).toMatchObject({ status: 'verified', size: 3000, cksum: cksum(oldData) });
    const versions = await setup.store.listVersions({ clientId: me.id, fileName: 'a.bin' });
    expect(versions).toMatchObject([{ version: 1, size: 3000, cksum: cksum(oldData) }]);
    expect(await readAll(await setup.bytes.read(versions[0]!.objectKey))).toEqual(oldData);
    // The client retries, as after any 1607.
    await storeVerified('a.bin', newData);
    expect(await liveBytes('a.bin')).toEqual(newData);
  });

  it('1607 for a new name: no row, no live bytes, no version', async () => {
    setup.failNextPutFile();
    expect((await client.request(uploadPackets(me.id, 'new.bin', me.aesKey, newData))).code).toBe(
      Reply.ERROR,
    );
    expect(await liveBytes('new.bin')).toBeUndefined();
    expect(await setup.store.findFile(me.id, 'new.bin')).toBeUndefined();
    expect(await setup.store.listVersions({ clientId: me.id, fileName: 'new.bin' })).toEqual([]);
  });

  it('1607 when the old bytes cannot be put back either: no live bytes, the version stays', async () => {
    await storeVerified('a.bin', oldData);
    // The copy that keeps the version is done by then: the next one is the copy back.
    setup.failNextPutFile(() => setup.failNextCopy());
    expect((await client.request(uploadPackets(me.id, 'a.bin', me.aesKey, newData))).code).toBe(
      Reply.ERROR,
    );
    expect(await liveBytes('a.bin')).toBeUndefined();
    const versions = await setup.store.listVersions({ clientId: me.id, fileName: 'a.bin' });
    expect(versions).toMatchObject([{ version: 1, size: 3000 }]);
    expect(await readAll(await setup.bytes.read(versions[0]!.objectKey))).toEqual(oldData);
  });
});
