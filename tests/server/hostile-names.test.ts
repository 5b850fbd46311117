/**
 * Hostile file names (§9: plain base names only) against a real server with real storage:
 * every one is refused with 1607 and nothing appears, or disappears, outside the client's folder.
 */
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import {
  Code,
  Reply,
  checksum,
  fileReceived,
  uploadPackets,
  type RawClient,
} from '../helpers/raw-client';
import {
  registerWithKey,
  removeDir,
  startRealServer,
  tempDir,
  type RealServer,
  type Registered,
} from './harness';

const HOSTILE: Array<[string, Buffer]> = [
  ['../x', Buffer.from('../x')],
  ['/etc/passwd', Buffer.from('/etc/passwd')],
  ['a\\b', Buffer.from('a\\b')],
  ['..', Buffer.from('..')],
  ['.', Buffer.from('.')],
  ['../../outside', Buffer.from('../../outside')],
  ['sub/dir', Buffer.from('sub/dir')],
  ['..\\..\\win', Buffer.from('..\\..\\win')],
  ['a\\x01b (control byte)', Buffer.from('a\x01b')],
  ['ESC sequence', Buffer.from('\x1b[31mred')],
  ['DEL', Buffer.from('a\x7f')],
  ['newline', Buffer.from('a\nb')],
  ['C1 control (U+0085)', Buffer.from('a\u0085b', 'utf8')],
  ['invalid UTF-8', Buffer.from([0x61, 0xff, 0x62])],
  ['no NUL in 255 bytes', Buffer.alloc(255, 0x61)],
  ['empty', Buffer.alloc(0)],
];

/** Every path under `root`, relative, with its size: a snapshot of the file system. */
async function tree(root: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string): Promise<void> {
    for (const name of await readdir(dir)) {
      const p = join(dir, name);
      const s = await stat(p);
      out.push(`${relative(root, p)}${s.isDirectory() ? '/' : ` ${s.size}`}`);
      if (s.isDirectory()) await walk(p);
    }
  }
  await walk(root);
  return out.sort();
}

let outer: string;
let server: RealServer;
let client: RawClient;
let me: Registered;

beforeEach(async () => {
  // The data directory sits inside `outer`, next to files a traversal would reach.
  outer = await tempDir('sft-hostile-');
  await writeFile(join(outer, 'x'), 'sentinel');
  await writeFile(join(outer, 'outside'), 'sentinel');
  server = await startRealServer({ dataDir: join(outer, 'data') });
  client = await server.connect();
  me = await registerWithKey(client, 'hostile');
});

afterEach(async () => {
  await server.close();
  await removeDir(outer);
});

describe('hostile file names', () => {
  for (const [label, name] of HOSTILE) {
    it(`1028 named ${label}: 1607, nothing created outside the client folder`, async () => {
      const before = await tree(outer);
      const packets = uploadPackets(
        me.id,
        name,
        me.aesKey,
        Buffer.from('payload of a hostile upload'),
      );
      packets.push(...uploadPackets(me.id, name, me.aesKey, Buffer.alloc(3000, 1)));
      // Two attempts (1 packet, then 3 packets): one 1607 each, the rest dropped.
      await client.write(packets);
      expect((await client.next()).code).toBe(Reply.ERROR);
      expect((await client.next()).code).toBe(Reply.ERROR);
      const ok = await client.request(
        uploadPackets(me.id, 'fine.txt', me.aesKey, Buffer.from('ok')),
      );
      expect(fileReceived(ok).fileName).toBe('fine.txt');
      const after = await tree(outer);
      const folder = relative(outer, join(server.dataDir, me.id.toString('hex')));
      // Allowed changes: the database files, the (empty) temp folder, the client's own folder.
      const allowed = new RegExp(
        `^(data/defensive\\.db(-wal|-shm)? \\d+|data/\\.incoming/|${folder}/.*)$`,
      );
      expect(after.filter((p) => !before.includes(p) && !allowed.test(p))).toEqual([]);
      expect(before.filter((p) => !after.includes(p) && !allowed.test(p))).toEqual([]);
      expect(await readdir(join(server.dataDir, '.incoming'))).toEqual([]);
      expect(await readdir(join(server.dataDir, me.id.toString('hex')))).toEqual(['fine.txt']);
      expect(await readFile(join(outer, 'x'), 'utf8')).toBe('sentinel');
      const audit = await server.store.listAudit();
      expect(
        audit.filter((e) => e.outcome === 'rejected_name' || e.outcome === 'file_rejected').length,
      ).toBe(2);
    });
  }

  it('1029/1031 with a traversal name touch nothing of other clients or outside', async () => {
    const victimClient = await server.connect();
    const victim = await registerWithKey(victimClient, 'victim');
    await victimClient.request(uploadPackets(victim.id, 'secret', victim.aesKey, Buffer.from('s')));
    const victimHex = victim.id.toString('hex');
    await mkdir(join(server.dataDir, me.id.toString('hex')), { recursive: true });
    const before = await tree(outer);
    for (const name of [`../${victimHex}/secret`, '../../x', '..', '/etc/passwd']) {
      for (const code of [Code.CRC_OK, Code.CRC_RETRY, Code.CRC_ABORT] as const) {
        const r = await client.request(checksum(code, me.id, name));
        expect(r.code).toBe(Reply.ERROR);
      }
    }
    expect(await tree(outer)).toEqual(before);
    expect(await server.store.findFile(victim.id, 'secret')).toMatchObject({ status: 'received' });
  });

  it('a NUL ends the name (§2): "safe\\0../../x" is the file "safe" in the client folder', async () => {
    const name = Buffer.concat([Buffer.from('safe'), Buffer.from([0]), Buffer.from('../../x')]);
    const r = await client.request(uploadPackets(me.id, name, me.aesKey, Buffer.from('data')));
    expect(fileReceived(r).fileName).toBe('safe');
    expect(await readdir(join(server.dataDir, me.id.toString('hex')))).toEqual(['safe']);
    expect(await readFile(join(outer, 'x'), 'utf8')).toBe('sentinel');
  });
});
