/**
 * The data folder's space reserve (server/storage/space-reserve.ts): written when there is
 * room, given up on a failure that says the disk is full, uploads refused while it is given up
 * and admitted again once it fits. The free space is injected; the file is real.
 */
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger } from '../../shared/logger';
import { RESERVE_FILE_NAME, SpaceReserve, isDiskFull } from '../../server/storage/space-reserve';
import { StorageError, StorageErrorCode } from '../../server/storage/types';
import { tempDirs } from './temp-dir';

const BYTES = 3 * 1024 * 1024 + 5;

function errno(code: string): Error {
  return Object.assign(new Error(`${code}: injected`), { code });
}

describe('space reserve', () => {
  const dirs = tempDirs('reserve');
  let dir: string;
  let free: number;
  let checks: number;
  const open = (): Promise<SpaceReserve> =>
    SpaceReserve.open({
      dir,
      bytes: BYTES,
      log: silentLogger(),
      freeSpace: () => {
        checks += 1;
        return Promise.resolve(free);
      },
    });
  const reserveSize = (): Promise<number | undefined> =>
    stat(join(dir, RESERVE_FILE_NAME)).then(
      (s) => s.size,
      () => undefined,
    );

  beforeEach(async () => {
    dir = await dirs.make();
    free = 100 * BYTES;
    checks = 0;
  });
  afterEach(() => dirs.cleanup());

  it('writes the reserve at open when there is room, and admits uploads without a check', async () => {
    const reserve = await open();
    expect(reserve.holding).toBe(true);
    expect(await reserveSize()).toBe(BYTES);
    const before = checks;
    await reserve.admit(0);
    expect(checks).toBe(before);
  });

  it('keeps a reserve of the right size that is already there', async () => {
    await writeFile(join(dir, RESERVE_FILE_NAME), Buffer.alloc(BYTES, 7));
    free = 0;
    const reserve = await open();
    expect(reserve.holding).toBe(true);
    expect(checks).toBe(0);
  });

  it('without room at open, refuses uploads with DISK_FULL and writes nothing', async () => {
    free = 2 * BYTES - 1;
    const reserve = await open();
    expect(reserve.holding).toBe(false);
    expect(await reserveSize()).toBeUndefined();
    await expect(reserve.admit(0)).rejects.toMatchObject({ code: StorageErrorCode.DISK_FULL });
  });

  it('is given up on a full disk only, then admits again once it fits', async () => {
    const reserve = await open();
    await reserve.failed(
      new StorageError(StorageErrorCode.FILESYSTEM, 'x', { cause: errno('EIO') }),
    );
    expect(reserve.holding).toBe(true);

    await reserve.failed(
      new StorageError(StorageErrorCode.DATABASE, 'commit', { cause: errno('SQLITE_FULL') }),
    );
    expect(reserve.holding).toBe(false);
    expect(await reserveSize()).toBeUndefined();

    free = BYTES;
    await expect(reserve.admit(0)).rejects.toMatchObject({ code: StorageErrorCode.DISK_FULL });
    free = 10 * BYTES;
    await reserve.admit(0);
    expect(reserve.holding).toBe(true);
    expect(await reserveSize()).toBe(BYTES);
  });

  it('while given up, admits an upload only with room for it and twice the reserve', async () => {
    const reserve = await open();
    await reserve.failed(errno('ENOSPC'));
    free = 2 * BYTES + 1000;
    await expect(reserve.admit(1001)).rejects.toMatchObject({ code: StorageErrorCode.DISK_FULL });
    expect(reserve.holding).toBe(false);
    await reserve.admit(1000);
    expect(reserve.holding).toBe(true);
    // Held: admitted without looking, whatever the size (the write itself finds a full disk).
    const looked = checks;
    await reserve.admit(Number.MAX_SAFE_INTEGER);
    expect(checks).toBe(looked);
  });

  it('uploads that arrive together share one free-space check and one write', async () => {
    const reserve = await open();
    await reserve.failed(errno('ENOSPC'));
    const looked = checks;
    await Promise.all([reserve.admit(0), reserve.admit(0), reserve.admit(0)]);
    expect(checks).toBe(looked + 1);
    expect(await reserveSize()).toBe(BYTES);
  });

  it('tells a full disk from other failures, through causes and in every spelling', () => {
    expect(isDiskFull(errno('ENOSPC'))).toBe(true);
    expect(isDiskFull(errno('EDQUOT'))).toBe(true);
    expect(isDiskFull(errno('53100'))).toBe(true);
    expect(isDiskFull(new StorageError(StorageErrorCode.DISK_FULL, 'x'))).toBe(true);
    expect(
      isDiskFull(new Error('outer', { cause: new Error('mid', { cause: errno('SQLITE_FULL') }) })),
    ).toBe(true);
    expect(isDiskFull(errno('EIO'))).toBe(false);
    expect(isDiskFull(new StorageError(StorageErrorCode.FILESYSTEM, 'x'))).toBe(false);
    expect(isDiskFull(undefined)).toBe(false);
  });
});
