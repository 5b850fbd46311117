import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsPromises } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import {
  createDiskByteStore,
  INCOMING_DIR,
  TEMP_SUFFIX,
} from '../../server/storage/disk/byte-store';
import { DEFAULT_KEEP_VERSIONS, FileVault } from '../../server/storage/file-vault';
import { MemoryCatalog } from '../../server/storage/memory';
import { StorageError, StorageErrorCode, type FileStore } from '../../server/storage/types';
import { runningAsRoot, tempDirs } from './temp-dir';

const dirs = tempDirs('files');
afterEach(() => dirs.cleanup());

const HEX = '0123456789abcdef0123456789abcdef';

/** The disk ByteStore as sessions use it: through a FileVault (with an empty catalog). */
function createFileStore(data: string): FileStore & { sweepTemp(): Promise<number> } {
  const bytes = createDiskByteStore(data);
  const vault = new FileVault({
    bytes,
    catalog: new MemoryCatalog(),
    keepVersions: DEFAULT_KEEP_VERSIONS,
    now: () => 0,
  });
  return {
    beginUpload: (hex, name) => vault.beginUpload(hex, name),
    remove: (hex, name) => vault.remove(hex, name),
    removeClient: (hex) => vault.removeClient(hex),
    sweepTemp: () => bytes.sweepIncomplete(),
  };
}

/** Every path under `root`, relative, sorted (symlinks listed, never followed). */
async function tree(root: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const name of await readdir(dir)) {
      const full = path.join(dir, name);
      found.push(path.relative(root, full));
      const stats = await lstat(full);
      if (stats.isDirectory()) await walk(full);
    }
  };
  await walk(root);
  return found.sort();
}

/** A data directory inside a parent folder, so escapes into the parent can be seen. */
async function layout(): Promise<{ parent: string; data: string }> {
  const parent = await dirs.make();
  const data = path.join(parent, 'data');
  await mkdir(data);
  return { parent, data };
}

async function expectCode(promise: Promise<unknown>, code: StorageErrorCode): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(StorageError);
  expect((error as StorageError).code).toBe(code);
}

describe('uploads', () => {
  it('makes the file visible under <client-id-hex>/<name> only after commit', async () => {
    const { data } = await layout();
    const store = createFileStore(data);
    const content = randomBytes(3 * 1024 * 1024 + 17);
    const sink = await store.beginUpload(HEX, 'report.pdf');
    for (let offset = 0; offset < content.length; offset += 1024 * 1024) {
      await sink.write(content.subarray(offset, offset + 1024 * 1024));
    }
    expect(await tree(data)).toEqual([INCOMING_DIR, expect.stringMatching(/\.part$/)]);
    expect((await sink.commit()).objectKey).toBe(`${HEX}/report.pdf`);
    // Buffer.equals: jest's deep equality walks megabytes byte by byte.
    expect((await readFile(path.join(data, HEX, 'report.pdf'))).equals(content)).toBe(true);
    expect(await tree(data)).toEqual([INCOMING_DIR, HEX, `${HEX}/report.pdf`]);
  });

  it('creates owner-only folders and files', async () => {
    const { data } = await layout();
    const store = createFileStore(data);
    const sink = await store.beginUpload(HEX, 'a');
    const [temp] = await readdir(path.join(data, INCOMING_DIR));
    expect((await stat(path.join(data, INCOMING_DIR, temp as string))).mode & 0o777).toBe(0o600);
    await sink.write(Buffer.from('x'));
    await sink.commit();
    expect((await stat(path.join(data, HEX))).mode & 0o777).toBe(0o700);
    expect((await stat(path.join(data, HEX, 'a'))).mode & 0o777).toBe(0o600);
  });

  it('keeps byte order when writes overlap', async () => {
    const { data } = await layout();
    const sink = await createFileStore(data).beginUpload(HEX, 'f');
    const parts = Array.from({ length: 64 }, () => randomBytes(70 * 1024));
    await Promise.all(parts.map((part) => sink.write(part)));
    await sink.commit();
    expect((await readFile(path.join(data, HEX, 'f'))).equals(Buffer.concat(parts))).toBe(true);
  });

  it('replaces an earlier upload of the same name atomically', async () => {
    const { data } = await layout();
    const store = createFileStore(data);
    const first = await store.beginUpload(HEX, 'same');
    await first.write(Buffer.from('old content'));
    await first.commit();
    const second = await store.beginUpload(HEX, 'same');
    await second.write(Buffer.from('new'));
    expect(await readFile(path.join(data, HEX, 'same'), 'utf8')).toBe('old content');
    await second.commit();
    expect(await readFile(path.join(data, HEX, 'same'), 'utf8')).toBe('new');
  });

  it('opens the file it replaces only when the catalog has a live row of its name', async () => {
    const { data } = await layout();
    const catalog = new MemoryCatalog();
    await catalog.registerClient(Buffer.from(HEX, 'hex'), 'alice', 0);
    const vault = new FileVault({
      bytes: createDiskByteStore(data),
      catalog,
      keepVersions: DEFAULT_KEEP_VERSIONS,
      now: () => 0,
    });
    const live = path.join(data, HEX, 'f');
    const open = jest.spyOn(fsPromises, 'open');
    const opensOfLive = (): number => open.mock.calls.filter(([file]) => file === live).length;
    try {
      const first = await vault.beginUpload(HEX, 'f');
      await first.write(Buffer.from('one'));
      await first.commit();
      expect(opensOfLive()).toBe(0);
      await catalog.putFile({
        clientId: Buffer.from(HEX, 'hex'),
        fileName: 'f',
        objectKey: `${HEX}/f`,
        size: 3,
        cksum: 0,
        updatedAt: 0,
      });
      const second = await vault.beginUpload(HEX, 'f');
      await second.write(Buffer.from('two'));
      await second.commit();
      expect(opensOfLive()).toBe(1);
    } finally {
      open.mockRestore();
    }
    expect(await readFile(live, 'utf8')).toBe('two');
  });

  it('a commit told nothing is replaced still replaces a file that is there', async () => {
    const { data } = await layout();
    const bytes = createDiskByteStore(data);
    const first = await bytes.begin(`${HEX}/g`);
    await first.write(Buffer.from('old'));
    await first.commit();
    const second = await bytes.begin(`${HEX}/g`);
    await second.write(Buffer.from('new'));
    await second.commit({ replacesNothing: true });
    expect(await readFile(path.join(data, HEX, 'g'), 'utf8')).toBe('new');
    expect(await readdir(path.join(data, INCOMING_DIR))).toEqual([]);
  });

  it('abort leaves nothing, is idempotent, and is a no-op after commit', async () => {
    const { data } = await layout();
    const store = createFileStore(data);
    const sink = await store.beginUpload(HEX, 'gone');
    await sink.write(randomBytes(1000));
    await sink.abort();
    await sink.abort();
    expect(await tree(data)).toEqual([INCOMING_DIR]);
    await expectCode(sink.write(Buffer.from('late')), StorageErrorCode.FILESYSTEM);
    await expectCode(sink.commit(), StorageErrorCode.FILESYSTEM);
    expect(await tree(data)).toEqual([INCOMING_DIR]);

    const kept = await store.beginUpload(HEX, 'kept');
    await kept.write(Buffer.from('data'));
    await kept.commit();
    await kept.abort();
    expect(await readFile(path.join(data, HEX, 'kept'), 'utf8')).toBe('data');
  });

  it('an abort during commit lets the commit finish consistently', async () => {
    const { data } = await layout();
    const sink = await createFileStore(data).beginUpload(HEX, 'race');
    await sink.write(Buffer.from('complete'));
    const committing = sink.commit();
    await sink.abort();
    await expect(committing).resolves.toMatchObject({ objectKey: `${HEX}/race` });
    expect(await readFile(path.join(data, HEX, 'race'), 'utf8')).toBe('complete');
    expect(await readdir(path.join(data, INCOMING_DIR))).toEqual([]);
  });

  it('sweepTemp removes leftover temp files and nothing else', async () => {
    const { data } = await layout();
    const store = createFileStore(data);
    expect(await store.sweepTemp()).toBe(0);
    const stored = await store.beginUpload(HEX, 'stored');
    await stored.write(Buffer.from('keep me'));
    await stored.commit();
    // Uploads cut off by a crash: their temp files stay behind.
    const crashed = [
      await store.beginUpload(HEX, 'crashed-1'),
      await store.beginUpload(HEX, 'crashed-2'),
    ];
    await crashed[1]?.write(randomBytes(100));
    expect(await store.sweepTemp()).toBe(2);
    expect(await tree(data)).toEqual([INCOMING_DIR, HEX, `${HEX}/stored`]);
    // (Closes the handles this process still holds; the files are already gone.)
    for (const sink of crashed) await sink.abort();
  });

  it('remove and removeClient delete stored files and tolerate missing ones', async () => {
    const { data } = await layout();
    const store = createFileStore(data);
    for (const name of ['a', 'b']) {
      const sink = await store.beginUpload(HEX, name);
      await sink.write(Buffer.from(name));
      await sink.commit();
    }
    await store.remove(HEX, 'a');
    await store.remove(HEX, 'a');
    expect(await readdir(path.join(data, HEX))).toEqual(['b']);
    await store.removeClient(HEX);
    await store.removeClient(HEX);
    await store.remove(HEX, 'b');
    expect(await tree(data)).toEqual([INCOMING_DIR]);
  });
});

describe('containment', () => {
  const hostileIds = [
    '../../../../../../tmp/x',
    '..',
    '',
    '0123456789abcdef0123456789abcde',
    '0123456789abcdef0123456789abcdef0',
    '0123456789abcdef/123456789abcdef',
    '0123456789abcdeg0123456789abcdef',
    `${HEX}\u0000`,
  ];
  const hostileNames = [
    '../x',
    '../../etc/passwd',
    '/etc/passwd',
    'a\\b',
    'a//b',
    'a/../b',
    'a/',
    '..',
    '.',
    '',
    'nul\u0000byte',
    'line\nbreak',
    'esc\u001b[31m',
    'x'.repeat(256),
  ];

  it.each(hostileIds)('rejects client id %j with PATH_ESCAPE and creates nothing', async (id) => {
    const { parent, data } = await layout();
    const store = createFileStore(data);
    await expectCode(store.beginUpload(id, 'file'), StorageErrorCode.PATH_ESCAPE);
    await expectCode(store.remove(id, 'file'), StorageErrorCode.PATH_ESCAPE);
    await expectCode(store.removeClient(id), StorageErrorCode.PATH_ESCAPE);
    expect(await tree(parent)).toEqual(['data']);
  });

  it.each(hostileNames)(
    'rejects file name %j with PATH_ESCAPE and creates nothing',
    async (name) => {
      const { parent, data } = await layout();
      const store = createFileStore(data);
      await expectCode(store.beginUpload(HEX, name), StorageErrorCode.PATH_ESCAPE);
      await expectCode(store.remove(HEX, name), StorageErrorCode.PATH_ESCAPE);
      expect(await tree(parent)).toEqual(['data']);
    },
  );

  it('keeps a name with folders (v4) as one file of the client folder, apart from its base name', async () => {
    const { parent, data } = await layout();
    const store = createFileStore(data);
    for (const [name, body] of [
      ['a/b/c.txt', 'nested'],
      ['c.txt', 'plain'],
      ['a', 'a file named like the folder'],
    ] as const) {
      const sink = await store.beginUpload(HEX, name);
      await sink.write(Buffer.from(body));
      expect((await sink.commit()).objectKey).toBe(`${HEX}/${name.replaceAll('/', '\\')}`);
    }
    expect((await tree(parent)).filter((p) => p.startsWith(`data/${HEX}`))).toEqual([
      `data/${HEX}`,
      `data/${HEX}/a`,
      `data/${HEX}/a\\b\\c.txt`,
      `data/${HEX}/c.txt`,
    ]);
    await store.remove(HEX, 'a/b/c.txt');
    expect(await readFile(path.join(data, HEX, 'c.txt'), 'utf8')).toBe('plain');
    expect(await readFile(path.join(data, HEX, 'a'), 'utf8')).toBe('a file named like the folder');
  });

  it('accepts an uppercase client id as the same (lowercase) folder', async () => {
    const { data } = await layout();
    const sink = await createFileStore(data).beginUpload(HEX.toUpperCase(), 'up');
    expect((await sink.commit()).objectKey).toBe(`${HEX}/up`);
  });

  it('does not follow a symlink planted as the client folder', async () => {
    const { parent, data } = await layout();
    const outside = path.join(parent, 'outside');
    await mkdir(outside);
    await symlink(outside, path.join(data, HEX));
    const store = createFileStore(data);
    const sink = await store.beginUpload(HEX, 'evil');
    await sink.write(Buffer.from('payload'));
    await expectCode(sink.commit(), StorageErrorCode.PATH_ESCAPE);
    await expectCode(store.remove(HEX, 'evil'), StorageErrorCode.PATH_ESCAPE);
    await expectCode(store.removeClient(HEX), StorageErrorCode.PATH_ESCAPE);
    expect(await readdir(outside)).toEqual([]);
    expect(await readdir(path.join(data, INCOMING_DIR))).toEqual([]);
    expect((await lstat(path.join(data, HEX))).isSymbolicLink()).toBe(true);
  });

  it('does not follow a symlink planted as the temp folder', async () => {
    const { parent, data } = await layout();
    const outside = path.join(parent, 'outside');
    await mkdir(outside);
    await writeFile(path.join(outside, `victim${TEMP_SUFFIX}`), 'precious');
    await symlink(outside, path.join(data, INCOMING_DIR));
    const store = createFileStore(data);
    await expectCode(store.beginUpload(HEX, 'x'), StorageErrorCode.PATH_ESCAPE);
    await expectCode(store.sweepTemp(), StorageErrorCode.PATH_ESCAPE);
    expect(await readdir(outside)).toEqual([`victim${TEMP_SUFFIX}`]);
  });

  it('refuses to keep a copy of a symlink or a FIFO planted as a live file', async () => {
    const { parent, data } = await layout();
    const victim = path.join(parent, 'victim');
    await writeFile(victim, 'precious');
    await mkdir(path.join(data, HEX));
    await symlink(victim, path.join(data, HEX, 'link'));
    execFileSync('mkfifo', [path.join(data, HEX, 'fifo')]);
    const bytes = createDiskByteStore(data);
    await expectCode(bytes.copy(`${HEX}/link`, `${HEX}/kept`), StorageErrorCode.PATH_ESCAPE);
    await expectCode(bytes.copy(`${HEX}/fifo`, `${HEX}/kept`), StorageErrorCode.PATH_ESCAPE);
    expect(await bytes.copy(`${HEX}/none`, `${HEX}/kept`)).toBe(false);
    expect((await readdir(path.join(data, HEX))).sort()).toEqual(['fifo', 'link']);
  });

  it('replaces a symlink planted as the destination file instead of writing through it', async () => {
    const { parent, data } = await layout();
    const victim = path.join(parent, 'victim');
    await writeFile(victim, 'precious');
    await mkdir(path.join(data, HEX));
    await symlink(victim, path.join(data, HEX, 'target'));
    const sink = await createFileStore(data).beginUpload(HEX, 'target');
    await sink.write(Buffer.from('upload'));
    await sink.commit();
    expect(await readFile(victim, 'utf8')).toBe('precious');
    expect((await lstat(path.join(data, HEX, 'target'))).isFile()).toBe(true);
    expect(await readFile(path.join(data, HEX, 'target'), 'utf8')).toBe('upload');
  });
});

describe('file-system failures', () => {
  (runningAsRoot ? it.skip : it)('reports a read-only data directory as FILESYSTEM', async () => {
    const { data } = await layout();
    await chmod(data, 0o500);
    try {
      await expectCode(createFileStore(data).beginUpload(HEX, 'x'), StorageErrorCode.FILESYSTEM);
    } finally {
      await chmod(data, 0o700);
    }
  });

  it('reports a destination that cannot be replaced as FILESYSTEM and keeps no temp file', async () => {
    const { data } = await layout();
    // A folder where the file should go: rename cannot replace it, whoever runs the test.
    await mkdir(path.join(data, HEX, 'taken'), { recursive: true });
    await writeFile(path.join(data, HEX, 'taken', 'inner'), 'x');
    const sink = await createFileStore(data).beginUpload(HEX, 'taken');
    await sink.write(Buffer.from('data'));
    await expectCode(sink.commit(), StorageErrorCode.FILESYSTEM);
    expect(await readdir(path.join(data, INCOMING_DIR))).toEqual([]);
    await sink.abort();
  });
});
