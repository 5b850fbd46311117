/** shared/atomic-file: whole-or-nothing replacement with the asked mode, no temp left over. */
import {
  chmod,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { atomicTempPath, syncDirectory, writeFileAtomic } from '../../shared/atomic-file';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sft-atomic-'));
});
afterEach(async () => {
  await chmod(dir, 0o700).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

describe('writeFileAtomic', () => {
  it('creates a file with exactly the mode asked for, whatever the umask', async () => {
    const path = join(dir, 'secret');
    const old = process.umask(0o077);
    try {
      await writeFileAtomic(path, 'one', { mode: 0o640 });
    } finally {
      process.umask(old);
    }
    expect(await readFile(path, 'utf8')).toBe('one');
    expect((await stat(path)).mode & 0o777).toBe(0o640);
  });

  it('replaces an existing file (new inode, new mode) and leaves no temp file', async () => {
    const path = join(dir, 'me.info');
    await writeFile(path, 'old content', { mode: 0o644 });
    const before = await stat(path);
    await writeFileAtomic(path, Buffer.from('new'), { mode: 0o600 });
    const after = await stat(path);
    expect(await readFile(path, 'utf8')).toBe('new');
    expect(after.mode & 0o777).toBe(0o600);
    expect(after.ino).not.toBe(before.ino);
    expect(await readdir(dir)).toEqual(['me.info']);
  });

  it('fails with the errno of the cause and leaves the old file and no temp', async () => {
    const path = join(dir, 'kept');
    await writeFile(path, 'kept');
    if (process.getuid?.() !== 0) {
      await chmod(dir, 0o500);
      await expect(writeFileAtomic(path, 'x', { mode: 0o600 })).rejects.toMatchObject({
        code: 'EACCES',
      });
      await chmod(dir, 0o700);
    }
    await expect(
      writeFileAtomic(join(dir, 'missing', 'f'), 'x', { mode: 0o600 }),
    ).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readFile(path, 'utf8')).toBe('kept');
    expect(await readdir(dir)).toEqual(['kept']);
  });

  it('names its temp file from the injected randomness, hidden beside the target', () => {
    const path = join(dir, 'me.info');
    const temp = atomicTempPath(path, (n) => Buffer.alloc(n, 0xab));
    expect(temp).toBe(join(dir, `.me.info.${process.pid}.abababababab.tmp`));
  });

  it('refuses to write through a symlink planted at a temp name', async () => {
    const path = join(dir, 'target');
    const random = (n: number): Buffer => Buffer.alloc(n, 1);
    await symlink(join(dir, 'elsewhere'), atomicTempPath(path, random));
    await expect(writeFileAtomic(path, 'x', { mode: 0o600, random })).rejects.toMatchObject({
      code: 'EEXIST',
    });
    expect(await readdir(dir)).toHaveLength(1);
  });
});

describe('syncDirectory', () => {
  it('syncs a directory; a symlink to one only when asked to follow it', async () => {
    await mkdir(join(dir, 'real'));
    await symlink(join(dir, 'real'), join(dir, 'link'));
    await expect(syncDirectory(join(dir, 'real'))).resolves.toBeUndefined();
    const refused = await syncDirectory(join(dir, 'link')).catch((err: unknown) => err);
    // Linux says ENOTDIR for O_DIRECTORY | O_NOFOLLOW on a symlink, other systems ELOOP.
    expect(['ENOTDIR', 'ELOOP']).toContain((refused as { code?: string }).code);
    await expect(
      syncDirectory(join(dir, 'link'), { followSymlink: true }),
    ).resolves.toBeUndefined();
    await expect(syncDirectory(join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
