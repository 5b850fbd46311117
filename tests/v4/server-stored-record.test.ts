/**
 * What the server verified of a v4 upload (docs/protocol-v4.md §7) is durable before STORED:
 * the SHA-256 and flags are written into the file's row, in the row's own commit, so STORED
 * waits for them and a failure to write them is a STORAGE refusal; no record file is written
 * beside the row. The disk record store (SHA-256s computed for files stored over v3) syncs,
 * renames and syncs its folder (a new folder synced into its parent) before it resolves.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ResponseCode, WireErrorCode, type Response } from '../../protocol/v4';
import { createDiskFileMetaStore, FILE_META_DIR } from '../../server/storage/disk/v4-file-meta';
import type { Catalog } from '../../server/storage/types';
import { sha256, storedUploadFixture, uploadWhole } from './stored-upload';
import type { RawV4 } from './raw-v4';
import { recordFsOrder } from '../helpers/fs-order';

const HEX = '5a'.repeat(16);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('v4: what the server verified of a stored file is durable before STORED', () => {
  const fx = storedUploadFixture('stored-record', { database: 'memory', storage: 'memory' });

  /** The fixture's catalog with its putFile replaced. */
  const withPutFile = (putFile: Catalog['putFile']): Catalog =>
    new Proxy(fx.backends.catalog, {
      get: (target, key, receiver) =>
        key === 'putFile' ? putFile : (Reflect.get(target, key, receiver) as unknown),
    });

  const upload = (peer: RawV4, fileName: string, data: Buffer): Promise<Response> =>
    uploadWhole(peer, fileName, data, randomBytes(32));

  it('answers STORED only once the row holding the SHA-256 and flags is committed, and writes no record file', async () => {
    const events: string[] = [];
    const catalog = fx.backends.catalog;
    const peer = await fx.start({
      store: withPutFile(async (file, audit, options) => {
        // A slow database: an answer that does not wait for the row comes first.
        await sleep(150);
        await catalog.putFile(file, audit, options);
        events.push(`row ${file.fileName}`);
      }),
    });
    const data = randomBytes(5000);
    const answer = await upload(peer, 'a.bin', data);
    events.push(`answer ${answer.code}`);
    expect(events).toEqual(['row a.bin', `answer ${ResponseCode.STORED}`]);
    const file = (await catalog.listFiles()).find((f) => f.fileName === 'a.bin');
    expect(file).toMatchObject({ status: 'verified', size: data.length });
    expect(file?.v4).toEqual({ sha256: sha256(data), flags: 0 });
    expect(existsSync(join(fx.dir, FILE_META_DIR))).toBe(false);
  });

  it('refuses with STORAGE, not STORED, when the row cannot be written, and keeps no SHA-256 of it', async () => {
    const peer = await fx.start({
      store: withPutFile(() =>
        Promise.reject(Object.assign(new Error('SQLITE_IOERR: disk I/O error'), { code: 'EIO' })),
      ),
    });
    const answer = await upload(peer, 'b.bin', randomBytes(3000));
    expect(answer.code).toBe(ResponseCode.ERROR);
    expect(answer.code === ResponseCode.ERROR ? answer.error : undefined).toBe(
      WireErrorCode.STORAGE,
    );
    expect(await fx.backends.catalog.listFiles()).toEqual([]);
    expect(existsSync(join(fx.dir, FILE_META_DIR))).toBe(false);
  });

  it('on disk: syncs the record, renames it, syncs its folder (a new one into its parent) before resolving', async () => {
    const log = await recordFsOrder(fx.dir);
    const store = createDiskFileMetaStore(fx.dir);
    const meta = { size: 3, updatedAt: 7, sha256: sha256(Buffer.from('abc')), flags: 1 };
    await store.put(HEX, 'c.txt', meta);
    const root = join(fx.dir, FILE_META_DIR);
    const folder = join(root, HEX);
    const at = (line: RegExp): number => log.findIndex((entry) => line.test(entry));
    const escaped = (path: string): string => path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    expect(log).toEqual(expect.arrayContaining([`sync ${fx.dir}`, `sync ${root}`]));
    const tempSynced = at(new RegExp(`^sync ${escaped(folder)}/\\..*\\.tmp$`));
    const renamed = at(new RegExp(`^rename .* -> ${escaped(folder)}/[0-9a-f]{64}\\.json$`));
    const folderSynced = log.lastIndexOf(`sync ${folder}`);
    expect(tempSynced).toBeGreaterThanOrEqual(0);
    expect(renamed).toBeGreaterThan(tempSynced);
    expect(folderSynced).toBeGreaterThan(renamed);
    expect(await store.get(HEX, 'c.txt')).toEqual(meta);
  });

  it('on disk: records of one client written together share their folder sync, each after its rename', async () => {
    const store = createDiskFileMetaStore(fx.dir);
    const meta = { size: 3, updatedAt: 7, sha256: sha256(Buffer.from('abc')), flags: 0 };
    await store.put(HEX, 'first', meta);
    const log = await recordFsOrder(fx.dir);
    const names = ['d1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7', 'd8'];
    await Promise.all(names.map((name) => store.put(HEX, name, meta)));
    const folder = join(fx.dir, FILE_META_DIR, HEX);
    const lastRename = Math.max(...log.flatMap((e, i) => (e.startsWith('rename ') ? [i] : [])));
    expect(log.filter((e) => e.startsWith('rename '))).toHaveLength(names.length);
    expect(log.lastIndexOf(`sync ${folder}`)).toBeGreaterThan(lastRename);
    expect(log.filter((e) => e === `sync ${folder}`).length).toBeLessThan(names.length);
    for (const name of names) expect(await store.get(HEX, name)).toEqual(meta);
  });
});
