/**
 * What a resume relies on (docs/protocol-v4.md §5.5): a partial's record is written only by a
 * checkpoint, after the bytes it vouches for were synced, and is itself durable (temp synced,
 * renamed, folder synced) before the checkpoint resolves; a new upload writes no record, so a
 * crash before its first checkpoint resumes at 0; a record that no longer fits is replaced
 * before the upload that replaced it writes a byte.
 */
import { readdir, readFile, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { createDiskPartialStore, PARTIALS_DIR } from '../../server/storage/disk/v4-partials';
import { removeDirs, tempDir } from './helpers';
import { recordFsOrder } from '../helpers/fs-order';

const HEX = 'ef'.repeat(16);

const key = (check = 1) => ({
  clientIdHex: HEX,
  fileName: 'notes.txt',
  size: 100,
  check: Buffer.alloc(32, check),
});

describe('disk partials: what is durable when', () => {
  let dir: string;
  let clientDir: string;
  beforeEach(async () => {
    dir = await tempDir('partials-durable');
    clientDir = join(dir, PARTIALS_DIR, HEX);
  });
  afterEach(async () => {
    jest.restoreAllMocks();
    await removeDirs(dir);
  });

  const metaFiles = async (): Promise<string[]> =>
    (await readdir(clientDir)).filter((f) => f.endsWith('.meta'));

  it('writes no record for a new upload, so a crash before its first checkpoint resumes at 0', async () => {
    const store = createDiskPartialStore(dir, () => 0);
    const partial = await store.open(key());
    expect(await metaFiles()).toEqual([]);
    await partial.write(Buffer.alloc(40, 1)); // never checkpointed: the process dies here
    const again = await store.open(key());
    expect(again.offset).toBe(0);
    await again.close();
  });

  it('syncs the bytes, then the record (temp synced, renamed, folder synced), before a checkpoint resolves', async () => {
    const store = createDiskPartialStore(dir, () => 0);
    const log = await recordFsOrder(dir, { datasync: true });
    const partial = await store.open(key());
    await partial.write(Buffer.alloc(40, 1));
    log.length = 0;
    expect(await partial.checkpoint()).toBe(40);
    const [meta] = await metaFiles();
    const metaPath = join(clientDir, meta as string);
    const dataPath = metaPath.replace(/\.meta$/, '.data');
    const at = (pattern: RegExp): number => log.findIndex((line) => pattern.test(line));
    const escaped = (path: string): string => path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const dataSynced = at(new RegExp(`^datasync ${escaped(dataPath)}$`));
    const tempSynced = at(new RegExp(`^sync ${escaped(clientDir)}/\\..*\\.tmp$`));
    const renamed = at(new RegExp(`^rename .* -> ${escaped(metaPath)}$`));
    const folderSynced = at(new RegExp(`^sync ${escaped(clientDir)}$`));
    expect(dataSynced).toBeGreaterThanOrEqual(0);
    expect(tempSynced).toBeGreaterThan(dataSynced);
    expect(renamed).toBeGreaterThan(tempSynced);
    expect(folderSynced).toBeGreaterThan(renamed);
    expect(JSON.parse(await readFile(metaPath, 'utf8'))).toMatchObject({ durable: 40 });
    await partial.close();
  });

  it('syncs the folders it makes into their parents before the upload begins', async () => {
    const log = await recordFsOrder(dir, { datasync: true });
    const partial = await createDiskPartialStore(dir, () => 0).open(key());
    expect(log).toEqual(expect.arrayContaining([`sync ${dir}`, `sync ${join(dir, PARTIALS_DIR)}`]));
    await partial.close();
  });

  it('replaces the record of another upload of the name before a byte of the new one is written', async () => {
    const store = createDiskPartialStore(dir, () => 0);
    const first = await store.open(key(1));
    await first.write(Buffer.alloc(30, 1));
    await first.close();
    // Another content under the name: its bytes go into the same data file, unsynced...
    const second = await store.open(key(2));
    await second.write(Buffer.alloc(30, 2));
    // ...and after a crash, the first upload must not take them for its own.
    expect((await store.open(key(1))).offset).toBe(0);
  });

  it('rewrites a record that promises more than the data file holds, for what it holds', async () => {
    const store = createDiskPartialStore(dir, () => 0);
    const partial = await store.open(key());
    await partial.write(Buffer.alloc(50, 1));
    await partial.close();
    const data = (await readdir(clientDir)).find((f) => f.endsWith('.data')) as string;
    await truncate(join(clientDir, data), 20);
    const again = await store.open(key());
    expect(again.offset).toBe(20);
    const [meta] = await metaFiles();
    expect(JSON.parse(await readFile(join(clientDir, meta as string), 'utf8'))).toMatchObject({
      durable: 20,
    });
    await again.close();
  });

  it('removes the record and the data when the upload is done', async () => {
    const store = createDiskPartialStore(dir, () => 0);
    const partial = await store.open(key());
    await partial.write(Buffer.alloc(50, 1));
    await partial.checkpoint();
    await partial.remove();
    expect(await readdir(clientDir)).toEqual([]);
  });
});
