import { readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createDiskPartialStore, PARTIALS_DIR } from '../../server/storage/disk/v4-partials';
import type { PartialUpload } from '../../server/session/v4/context';
import { removeDirs, tempDir } from './helpers';

const key = (check = 1) => ({
  clientIdHex: 'ab'.repeat(16),
  fileName: 'report.pdf',
  size: 100,
  check: Buffer.alloc(32, check),
});

type PartialStore = ReturnType<typeof createDiskPartialStore>;

/** The offset an upload of `k` would resume from, closing what it opened. */
async function offsetOf(
  store: PartialStore,
  k: Parameters<PartialStore['open']>[0],
): Promise<number> {
  const partial = await store.open(k);
  await partial.close();
  return partial.offset;
}

async function collect(partial: PartialUpload, end: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of partial.contents(end)) parts.push(chunk);
  return Buffer.concat(parts);
}

describe('disk partial uploads', () => {
  let dir: string;
  let now: number;
  beforeEach(async () => {
    dir = await tempDir('partials');
    now = 1_000_000;
  });
  afterEach(() => removeDirs(dir));

  it('resumes from the durable offset only, cutting back what was not checkpointed', async () => {
    const store = createDiskPartialStore(dir, () => now);
    const first = await store.open(key());
    expect(first.offset).toBe(0);
    await first.write(Buffer.alloc(40, 7));
    expect(await first.checkpoint()).toBe(40);
    await first.write(Buffer.alloc(20, 8)); // not checkpointed: as after a crash
    const files = await readdir(join(dir, PARTIALS_DIR, 'ab'.repeat(16)));
    expect(files.some((f) => f.includes('report'))).toBe(false);

    const again = await store.open(key());
    expect(again.offset).toBe(40);
    expect(await collect(again, 40)).toEqual(Buffer.alloc(40, 7));
    await again.write(Buffer.alloc(60, 9));
    await again.close();
    const third = await store.open(key());
    expect(third.offset).toBe(100);
    await third.remove();
    expect(await offsetOf(store, key())).toBe(0);
    await first.close();
  });

  it('starts over for another content check or size, and for a damaged record', async () => {
    const store = createDiskPartialStore(dir, () => now);
    const p = await store.open(key(1));
    await p.write(Buffer.alloc(30));
    await p.close();
    expect(await offsetOf(store, key(2))).toBe(0);
    const q = await store.open(key(2));
    await q.write(Buffer.alloc(30));
    await q.close();
    expect(await offsetOf(store, { ...key(2), size: 99 })).toBe(0);

    const r = await store.open(key(3));
    await r.write(Buffer.alloc(30));
    await r.close();
    const clientDir = join(dir, PARTIALS_DIR, 'ab'.repeat(16));
    const meta = (await readdir(clientDir)).find((f) => f.endsWith('.meta')) as string;
    await writeFile(join(clientDir, meta), '{not json');
    expect(await offsetOf(store, key(3))).toBe(0);
  });

  it('fresh (a pipelined upload) starts at 0 even when the record matches, and empties the file', async () => {
    const store = createDiskPartialStore(dir, () => now);
    const p = await store.open(key());
    await p.write(Buffer.alloc(30, 5));
    await p.close();
    const fresh = await store.open({ ...key(), fresh: true });
    expect(fresh.offset).toBe(0);
    await fresh.write(Buffer.alloc(10, 6));
    await fresh.close();
    const after = await store.open(key());
    expect(after.offset).toBe(10);
    expect(await collect(after, 10)).toEqual(Buffer.alloc(10, 6));
    await after.close();
  });

  it('never resumes past the bytes really on disk', async () => {
    const store = createDiskPartialStore(dir, () => now);
    const p = await store.open(key());
    await p.write(Buffer.alloc(50, 1));
    await p.close();
    const clientDir = join(dir, PARTIALS_DIR, 'ab'.repeat(16));
    const data = (await readdir(clientDir)).find((f) => f.endsWith('.data')) as string;
    await truncate(join(clientDir, data), 20);
    expect(await offsetOf(store, key())).toBe(20);
  });

  it('sweeps partials older than the TTL and leaves newer ones', async () => {
    const store = createDiskPartialStore(dir, () => now);
    const old = await store.open(key());
    await old.write(Buffer.alloc(10));
    await old.close();
    now += 10_000;
    const fresh = await store.open({ ...key(), fileName: 'other' });
    await fresh.write(Buffer.alloc(10));
    await fresh.close();
    expect(await store.sweep(now - 5_000)).toBe(1);
    expect(await offsetOf(store, key())).toBe(0);
    expect(await offsetOf(store, { ...key(), fileName: 'other' })).toBe(10);
  });

  it('refuses a client id that is not 32 hex digits', async () => {
    const store = createDiskPartialStore(dir, () => now);
    await expect(store.open({ ...key(), clientIdHex: '../x' })).rejects.toMatchObject({
      code: 'PATH_ESCAPE',
    });
  });

  it('writes its files owner-only', async () => {
    const store = createDiskPartialStore(dir, () => now);
    const p = await store.open(key());
    await p.write(Buffer.alloc(5));
    await p.close();
    const clientDir = join(dir, PARTIALS_DIR, 'ab'.repeat(16));
    for (const f of await readdir(clientDir)) {
      expect((await stat(join(clientDir, f))).mode & 0o777).toBe(0o600);
    }
    expect(
      JSON.parse(
        await readFile(
          join(clientDir, (await readdir(clientDir)).find((f) => f.endsWith('.meta')) as string),
          'utf8',
        ),
      ),
    ).toMatchObject({ fileName: 'report.pdf', durable: 5 });
  });
});
