/**
 * A full disk, for real: the data folder on a small tmpfs that the test fills beside the
 * server. An upload that runs out of room is refused (v4 STORAGE saying the disk is full, v3
 * 1607), stores nothing and leaves nothing behind; the server gives up its space reserve, so a
 * v4 DELETE still commits, and uploads are admitted again once there is room
 * (server/storage/space-reserve.ts, docs/protocol-v4.md §5.4).
 *
 * Mounting needs root (or CAP_SYS_ADMIN); elsewhere the suite says so and skips.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RESERVE_FILE_NAME } from '../../server/storage/space-reserve';
import { startServerProcess, type ServerProcess } from '../helpers/server-process';
import { patternBytes, runClient, sha256File } from '../v4/helpers';

const MIB = 1024 * 1024;
const FS_BYTES = 16 * MIB;

/** Mounts a tmpfs of `bytes` at a new folder; undefined when this process may not mount. */
function mountTmpfs(bytes: number): string | undefined {
  const at = mkdtempSync(join(tmpdir(), 'sft-full-'));
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'tmpfs', at]);
  if (mounted.status === 0) return at;
  rmSync(at, { recursive: true, force: true });
  return undefined;
}

const probe = mountTmpfs(FS_BYTES);
if (probe === undefined) {
  console.warn('disk-full tests skipped: mounting a tmpfs needs root (or CAP_SYS_ADMIN)');
} else {
  spawnSync('umount', [probe]);
  rmSync(probe, { recursive: true, force: true });
}
const describeMounted = probe === undefined ? describe.skip : describe;

/** Free bytes of the file system at `dir`, as a writer sees them. */
function freeBytes(dir: string): number {
  const out = spawnSync('stat', ['-f', '-c', '%a %S', dir], { encoding: 'utf8' }).stdout;
  const [blocks, size] = out.trim().split(' ').map(Number);
  return (blocks ?? 0) * (size ?? 0);
}

/** Fills the file system of `dir` until `leave` bytes are free. */
async function fillTo(dir: string, leave: number): Promise<string> {
  const filler = join(dir, 'filler');
  await writeFile(filler, Buffer.alloc(Math.max(0, freeBytes(dir) - leave)));
  return filler;
}

/** Files under `dir`, recursively, as relative paths. */
async function filesBelow(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

describeMounted('a full disk', () => {
  let mnt: string;
  let data: string;
  let conf: string;
  let server: ServerProcess | undefined;

  beforeEach(async () => {
    mnt = mountTmpfs(FS_BYTES) as string;
    data = join(mnt, 'data');
    conf = mkdtempSync(join(tmpdir(), 'sft-full-cli-'));
    server = await startServerProcess(data, { args: ['--disk-reserve', '1M'] });
  });
  afterEach(async () => {
    await server?.stop('SIGKILL');
    server = undefined;
    spawnSync('umount', ['-l', mnt]);
    await rm(mnt, { recursive: true, force: true });
    await rm(conf, { recursive: true, force: true });
  });

  const client = (args: readonly string[]) =>
    runClient(conf, ['--server', `127.0.0.1:${(server as ServerProcess).port}`, ...args]);

  it('v4: refuses the upload that runs out of room, keeps no partial, deletes, then stores again', async () => {
    const small = join(conf, 'small.bin');
    const big = join(conf, 'big.bin');
    await writeFile(small, patternBytes(2 * MIB, 1));
    await writeFile(big, patternBytes(4 * MIB, 2));
    expect((await client(['--name', 'full', small])).code).toBe(0);
    expect((await stat(join(data, RESERVE_FILE_NAME))).size).toBe(MIB);
    const filler = await fillTo(mnt, 3.5 * MIB);
    const before = await filesBelow(data);

    const refused = await client([big]);
    expect(refused.code).toBe(4);
    expect(refused.json?.error?.code).toBe('SERVER_ERROR');
    // Nothing of big.bin stays: no partial to resume, no file, no row; the reserve is given up.
    expect(await filesBelow(data)).toEqual(before.filter((f) => f !== RESERVE_FILE_NAME));
    const listed = await client(['list']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).not.toContain('big.bin');

    // Short of room for big.bin and twice the reserve: refused before anything is written.
    const early = await client([big]);
    expect(early.code).toBe(4);
    expect(early.json?.error?.code).toBe('SERVER_ERROR');
    expect(await filesBelow(data)).toEqual(before.filter((f) => f !== RESERVE_FILE_NAME));

    // The delete commits although the disk was full when it came, and makes room.
    expect((await client(['delete', 'small.bin'])).code).toBe(0);
    const stored = await client([big]);
    expect(stored.code).toBe(0);
    expect(stored.json?.files[0]?.sha256).toBe(await sha256File(big));
    expect((await stat(join(data, RESERVE_FILE_NAME))).size).toBe(MIB);
    await rm(filler);
    expect(server?.child.exitCode).toBeNull();
  });

  it('v4: a DELETE commits at its first try on a disk filled to the last byte', async () => {
    const small = join(conf, 'small.bin');
    await writeFile(small, patternBytes(2 * MIB, 5));
    expect((await client(['--name', 'brim', small])).code).toBe(0);
    const filler = await fillTo(mnt, 0);
    expect(freeBytes(mnt)).toBe(0);
    const deleted = await client(['delete', 'small.bin']);
    expect(deleted.code).toBe(0);
    const listed = await client(['list']);
    expect(listed.stdout).not.toContain('small.bin');
    expect(await filesBelow(data)).not.toContain(expect.stringMatching(/small\.bin$/));
    await rm(filler);
  });

  it('v3: answers 1607 and stores nothing; once there is room the same upload is stored', async () => {
    const big = join(conf, 'big.bin');
    await writeFile(big, patternBytes(4 * MIB, 3));
    const seed = join(conf, 'seed.bin');
    await writeFile(seed, patternBytes(1000, 4));
    expect((await client(['--protocol', 'v3', '--name', 'old', seed])).code).toBe(0);
    const filler = await fillTo(mnt, 2 * MIB);
    const before = await filesBelow(data);

    const refused = await client(['--protocol', 'v3', big]);
    expect(refused.code).not.toBe(0);
    const after = await filesBelow(data);
    expect(after).toEqual(before.filter((f) => f !== RESERVE_FILE_NAME));
    expect(after.some((f) => f.endsWith('big.bin'))).toBe(false);

    await rm(filler);
    const stored = await client(['--protocol', 'v3', big]);
    expect(stored.code).toBe(0);
    expect((await stat(join(data, RESERVE_FILE_NAME))).size).toBe(MIB);
    expect(server?.child.exitCode).toBeNull();
  });
});
