/**
 * The ByteStore contract (server/storage/types.ts), the same for every backend in BACKENDS:
 * nothing visible before commit, atomic replace, abort leaves nothing, copies, removal, the
 * sweep of unfinished writes, and keys outside the grammar of object-keys.ts refused before
 * anything is written, so no key can reach outside the storage root.
 */
import { lstat, readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { clientPrefixes, liveKey, versionKey } from '../../../server/storage/object-keys';
import type { ByteStore } from '../../../server/storage/types';
import { BACKENDS, codeOf, readAll, useBackend } from './backends';

const HEX = '0123456789abcdef0123456789abcdef';
const OTHER = 'fedcba9876543210fedcba9876543210';

async function put(bytes: ByteStore, key: string, data: Buffer): Promise<void> {
  const writer = await bytes.begin(key);
  await writer.write(data);
  await writer.commit();
}

/** Whether `key` has an object; the stream opened to find out is closed again. */
async function exists(bytes: ByteStore, key: string): Promise<boolean> {
  const stream = await bytes.read(key);
  (stream as { destroy?: () => void } | undefined)?.destroy?.();
  return stream !== undefined;
}

/** Every path under `root`, relative, sorted (symlinks listed, never followed). */
async function tree(root: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const name of await readdir(dir)) {
      const full = path.join(dir, name);
      found.push(path.relative(root, full));
      if ((await lstat(full)).isDirectory()) await walk(full);
    }
  };
  await walk(root);
  return found.sort();
}

const HOSTILE_KEYS = [
  '',
  '/',
  `${HEX}`,
  `${HEX}/`,
  `${HEX}/../x`,
  `${HEX}/..`,
  `${HEX}/.`,
  `${HEX}/a/b`,
  // A name's folders are written \ in a key: one empty, dot or dot-dot part is refused.
  `${HEX}/\\a`,
  `${HEX}/a\\`,
  `${HEX}/a\\\\b`,
  `${HEX}/a\\..\\b`,
  `${HEX}/..\\a`,
  `${HEX}/nul\u0000byte`,
  `${HEX}/esc\u001b[31m`,
  `${HEX}/${'x'.repeat(256)}`,
  `../${HEX}/a`,
  `/etc/passwd`,
  `${HEX.toUpperCase()}/a`,
  `${HEX.slice(1)}/a`,
  `.incoming/${HEX}-x.part`,
  `.versions/${HEX}/a`,
  `.versions/${HEX}/a/0`,
  `.versions/${HEX}/a/01`,
  `.versions/${HEX}/../1`,
  `.versions/${HEX}/a/1/2`,
  `.versions/../../${HEX}/a/1`,
  'defensive.db',
];

const HOSTILE_PREFIXES = [
  '',
  '/',
  HEX,
  `${HEX}/a/`,
  `${HEX}/../`,
  '../',
  '.versions/',
  `.versions/${HEX}/../`,
  `.versions/${HEX}/a/1/`,
  '.incoming/',
  `${HEX.toUpperCase()}/`,
];

describe.each(BACKENDS)('byte store contract: $name', (factory) => {
  const backend = useBackend(factory);

  it('shows an object only after commit, whole, and replaces it atomically', async () => {
    const { bytes } = backend();
    const key = liveKey(HEX, 'report.pdf');
    const content = randomBytes(256 * 1024 + 17);
    const writer = await bytes.begin(key);
    await Promise.all([
      writer.write(content.subarray(0, 1000)),
      writer.write(content.subarray(1000)),
    ]);
    expect(await bytes.read(key)).toBeUndefined();
    await writer.commit();
    expect((await readAll(await bytes.read(key)))?.equals(content)).toBe(true);

    const second = await bytes.begin(key);
    await second.write(Buffer.from('new'));
    expect((await readAll(await bytes.read(key)))?.equals(content)).toBe(true);
    await second.commit();
    expect((await readAll(await bytes.read(key)))?.toString()).toBe('new');
  });

  it('abort leaves nothing, can be repeated, and refuses later writes and commits', async () => {
    const { bytes } = backend();
    const key = liveKey(HEX, 'gone');
    const writer = await bytes.begin(key);
    await writer.write(randomBytes(1000));
    await writer.abort();
    await writer.abort();
    expect(await codeOf(writer.write(Buffer.from('late')))).toBe('FILESYSTEM');
    expect(await codeOf(writer.commit())).toBe('FILESYSTEM');
    expect(await bytes.read(key)).toBeUndefined();
    expect(await bytes.sweepIncomplete()).toBe(0);

    const kept = await bytes.begin(liveKey(HEX, 'kept'));
    await kept.write(Buffer.from('data'));
    await kept.commit();
    await kept.abort();
    expect((await readAll(await bytes.read(liveKey(HEX, 'kept'))))?.toString()).toBe('data');
  });

  it('copies an object (later changes of the source leave the copy), false when there is none', async () => {
    const { bytes } = backend();
    const live = liveKey(HEX, 'a');
    const kept = versionKey(HEX, 'a', 1);
    expect(await bytes.copy(live, kept)).toBe(false);
    await put(bytes, live, Buffer.from('first'));
    expect(await bytes.copy(live, kept)).toBe(true);
    await put(bytes, live, Buffer.from('second'));
    expect((await readAll(await bytes.read(kept)))?.toString()).toBe('first');
    expect((await readAll(await bytes.read(live)))?.toString()).toBe('second');
    // A copy over an existing object replaces it.
    expect(await bytes.copy(kept, live)).toBe(true);
    expect((await readAll(await bytes.read(live)))?.toString()).toBe('first');
  });

  it('keeps a name with folders (v4) under one key, apart from its base name and its versions', async () => {
    const { bytes } = backend();
    const nested = liveKey(HEX, 'a/b/c.txt');
    expect(nested).toBe(`${HEX}/a\\b\\c.txt`);
    await put(bytes, nested, Buffer.from('nested'));
    await put(bytes, liveKey(HEX, 'c.txt'), Buffer.from('plain'));
    expect(await bytes.copy(nested, versionKey(HEX, 'a/b/c.txt', 1))).toBe(true);
    expect((await readAll(await bytes.read(nested)))?.toString()).toBe('nested');
    expect((await readAll(await bytes.read(liveKey(HEX, 'c.txt'))))?.toString()).toBe('plain');
    await bytes.remove(nested);
    expect(await bytes.read(nested)).toBeUndefined();
    expect((await readAll(await bytes.read(versionKey(HEX, 'a/b/c.txt', 1))))?.toString()).toBe(
      'nested',
    );
  });

  it('removes one object, or everything under a client prefix, and tolerates missing ones', async () => {
    const { bytes } = backend();
    for (const key of [liveKey(HEX, 'a'), liveKey(HEX, 'b'), versionKey(HEX, 'a', 1)]) {
      await put(bytes, key, Buffer.from(key));
    }
    await put(bytes, liveKey(OTHER, 'a'), Buffer.from('other'));
    await bytes.remove(liveKey(HEX, 'a'));
    await bytes.remove(liveKey(HEX, 'a'));
    await bytes.remove(liveKey(HEX, 'never'));
    expect(await bytes.read(liveKey(HEX, 'a'))).toBeUndefined();
    expect(await exists(bytes, liveKey(HEX, 'b'))).toBe(true);
    for (const prefix of clientPrefixes(HEX)) {
      await bytes.removePrefix(prefix);
      await bytes.removePrefix(prefix);
    }
    expect(await bytes.read(liveKey(HEX, 'b'))).toBeUndefined();
    expect(await bytes.read(versionKey(HEX, 'a', 1))).toBeUndefined();
    expect((await readAll(await bytes.read(liveKey(OTHER, 'a'))))?.toString()).toBe('other');
  });

  it('sweeps writes left unfinished, and only those', async () => {
    const { bytes } = backend();
    await put(bytes, liveKey(HEX, 'stored'), Buffer.from('keep me'));
    const cut = [
      await bytes.begin(liveKey(HEX, 'cut-1')),
      await bytes.begin(liveKey(HEX, 'cut-2')),
    ];
    await cut[1]?.write(randomBytes(100));
    expect(await bytes.sweepIncomplete()).toBe(2);
    expect(await bytes.sweepIncomplete()).toBe(0);
    expect(await exists(bytes, liveKey(HEX, 'stored'))).toBe(true);
    for (const writer of cut) await writer.abort();
  });

  it.each(HOSTILE_KEYS)(
    'refuses key %j with PATH_ESCAPE and writes nothing anywhere',
    async (key) => {
      const current = backend();
      const { bytes } = current;
      const before = current.confined === undefined ? [] : await tree(current.confined.parent);
      expect(await codeOf(bytes.begin(key))).toBe('PATH_ESCAPE');
      expect(await codeOf(bytes.read(key))).toBe('PATH_ESCAPE');
      expect(await codeOf(bytes.remove(key))).toBe('PATH_ESCAPE');
      expect(await codeOf(bytes.copy(key, liveKey(HEX, 'x')))).toBe('PATH_ESCAPE');
      expect(await codeOf(bytes.copy(liveKey(HEX, 'x'), key))).toBe('PATH_ESCAPE');
      if (current.confined !== undefined) {
        expect(await tree(current.confined.parent)).toEqual(before);
      }
    },
  );

  it.each(HOSTILE_PREFIXES)(
    'refuses prefix %j with PATH_ESCAPE and removes nothing',
    async (prefix) => {
      const { bytes } = backend();
      await put(bytes, liveKey(HEX, 'a'), Buffer.from('a'));
      expect(await codeOf(bytes.removePrefix(prefix))).toBe('PATH_ESCAPE');
      expect(await exists(bytes, liveKey(HEX, 'a'))).toBe(true);
    },
  );

  it('keeps every object of a client inside the storage root', async () => {
    const current = backend();
    const { bytes } = current;
    await put(bytes, liveKey(HEX, '.versions'), Buffer.from('a file named like the namespace'));
    await put(bytes, liveKey(HEX, '..a'), Buffer.from('dots'));
    await put(bytes, versionKey(HEX, '.versions', 1), Buffer.from('its version'));
    expect((await readAll(await bytes.read(liveKey(HEX, '.versions'))))?.toString()).toBe(
      'a file named like the namespace',
    );
    if (current.confined !== undefined) {
      const { parent, root } = current.confined;
      const outside = (await tree(parent)).filter(
        (entry) => entry !== 'data' && !entry.startsWith(`data${path.sep}`),
      );
      expect(outside).toEqual([]);
      expect(await tree(root)).toEqual(
        expect.arrayContaining([
          path.join(HEX, '.versions'),
          path.join(HEX, '..a'),
          path.join('.versions', HEX, '.versions', '1'),
        ]),
      );
    }
  });
});
