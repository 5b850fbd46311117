import { randomBytes } from 'node:crypto';
import { mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { createDiskByteStore } from '../../server/storage/disk/byte-store';
import { FileVault } from '../../server/storage/file-vault';
import { MemoryByteStore, MemoryCatalog } from '../../server/storage/memory';
import { StorageError, StorageErrorCode, type ByteStore } from '../../server/storage/types';
import { tempDirs } from './temp-dir';
import { recordFsOrder } from '../helpers/fs-order';

const dirs = tempDirs('adopt');
afterEach(async () => {
  jest.restoreAllMocks();
  await dirs.cleanup();
});

const HEX = '0123456789abcdef0123456789abcdef';

async function layout(): Promise<{ parent: string; data: string; source: string }> {
  const parent = await dirs.make();
  const data = path.join(parent, 'data');
  await mkdir(path.join(data, '.partial-v4', HEX), { recursive: true });
  return { parent, data, source: path.join(data, '.partial-v4', HEX, 'upload.data') };
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  return error instanceof StorageError ? error.code : undefined;
}

describe('disk ByteStore adopt', () => {
  it('moves the file into place: file fsync, rename, then its folder fsync', async () => {
    const { data, source } = await layout();
    const bytes = randomBytes(200_000);
    await writeFile(source, bytes, { mode: 0o600 });
    const store = createDiskByteStore(data);
    const log = await recordFsOrder(await dirs.make());
    await store.adopt!(`${HEX}/report.pdf`, source);
    const destination = path.join(data, HEX, 'report.pdf');
    expect(await readFile(destination)).toEqual(bytes);
    await expect(stat(source)).rejects.toMatchObject({ code: 'ENOENT' });
    const fileSync = log.indexOf(`sync ${source}`);
    const renamed = log.indexOf(`rename ${source} -> ${destination}`);
    const folderSync = log.lastIndexOf(`sync ${path.join(data, HEX)}`);
    expect(fileSync).toBeGreaterThanOrEqual(0);
    expect(renamed).toBeGreaterThan(fileSync);
    expect(folderSync).toBeGreaterThan(renamed);
  });

  it('replaces an earlier file and keeps its verified content as a version', async () => {
    const { data, source } = await layout();
    const catalog = new MemoryCatalog();
    const vault = new FileVault({
      bytes: createDiskByteStore(data),
      catalog,
      keepVersions: 2,
      now: () => 1,
    });
    const clientId = Buffer.from(HEX, 'hex');
    await catalog.registerClient(clientId, 'adopter', 0);
    const sink = await vault.beginUpload(HEX, 'a.txt');
    await sink.write(Buffer.from('first'));
    const { objectKey: key } = await sink.commit();
    await catalog.putFile({
      clientId,
      fileName: 'a.txt',
      objectKey: key,
      size: 5,
      cksum: 0,
      updatedAt: 0,
    });
    await catalog.setFileStatus(clientId, 'a.txt', 'verified', 0);
    await writeFile(source, 'second');
    expect((await vault.adoptUpload!(HEX, 'a.txt', source)).objectKey).toBe(key);
    expect(await readFile(path.join(data, HEX, 'a.txt'), 'utf8')).toBe('second');
    const versions = await catalog.listVersions({ clientId, fileName: 'a.txt' });
    expect(versions).toHaveLength(1);
    expect(await readFile(path.join(data, versions[0]!.objectKey), 'utf8')).toBe('first');
  });

  it('refuses a source outside the data directory, and a symlink, touching nothing', async () => {
    const { parent, data, source } = await layout();
    const store = createDiskByteStore(data);
    const outside = path.join(parent, 'outside.bin');
    await writeFile(outside, 'not ours');
    expect(await codeOf(store.adopt!(`${HEX}/x.bin`, outside))).toBe(StorageErrorCode.PATH_ESCAPE);
    await symlink(outside, source);
    expect(await codeOf(store.adopt!(`${HEX}/x.bin`, source))).toBe(StorageErrorCode.FILESYSTEM);
    expect(await readFile(outside, 'utf8')).toBe('not ours');
    await expect(stat(path.join(data, HEX, 'x.bin'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a hostile key with PATH_ESCAPE and leaves the source in place', async () => {
    const { data, source } = await layout();
    await writeFile(source, 'kept');
    const store = createDiskByteStore(data);
    expect(await codeOf(store.adopt!(`${HEX}/../escape`, source))).toBe(
      StorageErrorCode.PATH_ESCAPE,
    );
    expect(await readFile(source, 'utf8')).toBe('kept');
  });

  it('is absent where objects are not files, and so is adoptUpload', () => {
    const bytes: ByteStore = new MemoryByteStore();
    expect(bytes.adopt).toBeUndefined();
    const vault = new FileVault({
      bytes,
      catalog: new MemoryCatalog(),
      keepVersions: 1,
      now: () => 0,
    });
    expect(vault.adoptUpload).toBeUndefined();
  });
});
