import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { createDiskPartialStore } from '../../server/storage/disk/v4-partials';
import { StorageError, StorageErrorCode } from '../../server/storage/types';
import { removeDirs, tempDir } from './helpers';

const key = {
  clientIdHex: 'cd'.repeat(16),
  fileName: 'ledger.db',
  size: 100,
  check: Buffer.alloc(32, 3),
};

describe('disk partial after a failed sync', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir('partials-eio');
  });
  afterEach(async () => {
    jest.restoreAllMocks();
    await removeDirs(dir);
  });

  it('records no later checkpoint (the OS reports a lost write once), so a resume starts from the last good one', async () => {
    const store = createDiskPartialStore(dir, () => 0);
    const partial = await store.open(key);
    await partial.write(Buffer.alloc(30, 1));
    expect(await partial.checkpoint()).toBe(30);
    await partial.write(Buffer.alloc(30, 2));
    const sample = await open(join(dir, 'sample'), 'w');
    const proto = Object.getPrototypeOf(sample) as { datasync: () => Promise<void> };
    await sample.close();
    jest
      .spyOn(proto, 'datasync')
      .mockRejectedValueOnce(
        Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }),
      );
    const failed = await partial.checkpoint().catch((err: unknown) => err);
    expect(failed).toBeInstanceOf(StorageError);
    expect((failed as StorageError).code).toBe(StorageErrorCode.FILESYSTEM);
    // The next sync would pass: it must not be taken as covering the lost pages.
    await expect(partial.checkpoint()).rejects.toMatchObject({ code: StorageErrorCode.FILESYSTEM });
    await expect(partial.close()).rejects.toMatchObject({ code: StorageErrorCode.FILESYSTEM });
    expect((await store.open(key)).offset).toBe(30);
  });
});
