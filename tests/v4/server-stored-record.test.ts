/**
 * The record of what the server verified of an upload (docs/protocol-v4.md §7) is durable
 * before STORED: the session waits for it, a failure to write it is a STORAGE refusal, and the
 * disk store's record is synced, renamed and its folder synced (a new folder synced into its
 * parent) before it resolves.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ResponseCode, WireErrorCode, type Response } from '../../protocol/v4';
import type { V4FileMetaStore } from '../../server/session/v4/file-meta';
import { createDiskFileMetaStore, FILE_META_DIR } from '../../server/storage/disk/v4-file-meta';
import { sha256, storedUploadFixture, uploadWhole } from './stored-upload';
import type { RawV4 } from './raw-v4';
import { recordFsOrder } from '../helpers/fs-order';

const HEX = '5a'.repeat(16);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('v4: the record of a stored file is durable before STORED', () => {
  const fx = storedUploadFixture('stored-record', { database: 'memory', storage: 'memory' });
  const start = (fileMeta: V4FileMetaStore): Promise<RawV4> => fx.start({ fileMeta });

  const upload = (peer: RawV4, fileName: string, data: Buffer): Promise<Response> =>
    uploadWhole(peer, fileName, data, randomBytes(32));

  it('answers STORED only once the record is written, with the SHA-256 and the row it belongs to', async () => {
    const events: string[] = [];
    const disk = createDiskFileMetaStore(fx.dir);
    const peer = await start({
      ...disk,
      async put(clientIdHex, fileName, meta) {
        // A slow disk: an answer that does not wait for the record comes first.
        await sleep(150);
        await disk.put(clientIdHex, fileName, meta);
        events.push(`recorded ${fileName}`);
      },
    });
    const data = randomBytes(5000);
    const answer = await upload(peer, 'a.bin', data);
    events.push(`answer ${answer.code}`);
    expect(events).toEqual(['recorded a.bin', `answer ${ResponseCode.STORED}`]);
    const file = (await fx.backends.catalog.listFiles()).find((f) => f.fileName === 'a.bin');
    const clientIdHex = file?.clientId.toString('hex') ?? '';
    expect(await disk.get(clientIdHex, 'a.bin')).toEqual({
      size: data.length,
      updatedAt: file?.updatedAt,
      sha256: sha256(data),
      flags: 0,
    });
  });

  it('refuses with STORAGE, not STORED, when the record cannot be written', async () => {
    const peer = await start({
      ...createDiskFileMetaStore(fx.dir),
      put: () => Promise.reject(Object.assign(new Error('EIO: i/o error'), { code: 'EIO' })),
    });
    const answer = await upload(peer, 'b.bin', randomBytes(3000));
    expect(answer.code).toBe(ResponseCode.ERROR);
    expect(answer.code === ResponseCode.ERROR ? answer.error : undefined).toBe(
      WireErrorCode.STORAGE,
    );
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
