/**
 * Durability before the answer (docs/protocol.md §5.4, §7): when a client reads 1603, its file's
 * bytes, the file's directory entry and its row must already be on stable storage. A SIGKILL
 * cannot show a missing flush (the page cache outlives the process), so this test watches the
 * flushes themselves, in the real server (SQLite + disk) running in this process: every fsync
 * and fdatasync, rename, folder creation, SQLite statement and COMMIT, and every answer the
 * server writes to a socket, in one ordered log. For each answered upload it then requires:
 * - the temp file was synced after its last write and before its rename;
 * - the rename was done, and then its folder synced, before the answer;
 * - a new client folder's entry in the data directory was synced before the answer;
 * - the row was written and a COMMIT (with synchronous = FULL) followed it before the answer.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Cksum } from '../../shared/cksum';
import { INCOMING_DIR } from '../../server/storage/disk/byte-store';
import { handlesOpenedOn, installProbe, Probe } from './durability-probe';
import { brokenRules } from './durability-rules';
import {
  fileReceived,
  reconnect,
  Reply,
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
  unwrapWith,
} from '../server/harness';

function data(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 131 + seed * 7) & 0xff;
  return b;
}

function cksum(b: Buffer): number {
  const c = new Cksum();
  c.update(b);
  return c.digest();
}

let probe: Probe;
let scratch: string;
let server: RealServer;

beforeEach(async () => {
  probe = new Probe();
  scratch = await tempDir('sft-durability-');
  await installProbe(probe, scratch);
  server = await startRealServer();
});

afterEach(async () => {
  await server.close();
  probe.restore();
  await removeDir(server.dataDir);
  await removeDir(scratch);
});

async function connected(): Promise<RawClient> {
  const client = await server.connect();
  probe.clientSockets.add(client.socket);
  return client;
}

async function upload(
  client: RawClient,
  me: Registered,
  name: string,
  plaintext: Buffer,
): Promise<void> {
  const r = await client.request(uploadPackets(me.id, name, me.aesKey, plaintext));
  expect(r.code).toBe(Reply.FILE_RECEIVED);
  expect(fileReceived(r).cksum).toBe(cksum(plaintext));
}

describe('an answered upload is on stable storage before its 1603', () => {
  it('the SQLite connection commits with synchronous = FULL', async () => {
    // The probe went in before the server opened its database.
    const pragmas = probe.events.filter(
      (e) => e.kind === 'sql' && /PRAGMA\s+synchronous/i.test(e.sql),
    );
    expect(
      pragmas.map((e) => (e.kind === 'sql' ? e.sql.replace(/\s+/g, ' ').toUpperCase() : '')).at(-1),
    ).toMatch(/SYNCHRONOUS = (FULL|EXTRA|2|3)$/);
  });

  it('one upload after another on one connection: file, folder entry and row', async () => {
    const client = await connected();
    const me = await registerWithKey(client, 'durable one');
    const names = ['first.bin', 'second.bin', 'large.bin'];
    await upload(client, me, names[0], data(10_000, 1));
    await upload(client, me, names[1], data(1, 2));
    // Over the writer's background-sync threshold: the last sync must still follow the last write.
    await upload(client, me, names[2], data(9 * 1024 * 1024 + 5, 3));
    const hex = me.id.toString('hex');
    expect(names.flatMap((name) => brokenRules(probe, server.dataDir, hex, name))).toEqual([]);
  });

  it('uploads that finish together on many connections of many clients: every one', async () => {
    const clients = await Promise.all(Array.from({ length: 6 }, () => connected()));
    const people = await Promise.all(
      clients.map((c, i) => registerWithKey(c, `durable many ${i}`)),
    );
    await Promise.all(
      clients.map(async (c, i) => {
        for (let k = 0; k < 3; k++)
          await upload(c, people[i], `f-${k}.bin`, data(100 * 1024, i * 3 + k));
      }),
    );
    const broken = people.flatMap((person) =>
      [0, 1, 2].flatMap((k) =>
        brokenRules(probe, server.dataDir, person.id.toString('hex'), `f-${k}.bin`),
      ),
    );
    expect(broken).toEqual([]);
  });

  it('connections of one client that finish together share its folder fsync, each upload durable', async () => {
    const first = await connected();
    const me = await registerWithKey(first, 'durable shared folder');
    const hex = me.id.toString('hex');
    await upload(first, me, 'opens-the-folder.bin', data(10, 9));
    const clients = await Promise.all(Array.from({ length: 8 }, () => connected()));
    // Each connection binds itself (1027) and gets its own session key (§9).
    const keys = await Promise.all(
      clients.map(async (c) => {
        const r = await c.request(reconnect(me.id, me.name));
        expect(r.code).toBe(Reply.RECONNECTED);
        return unwrapWith(me.keys, r.payload.subarray(16, 16 + 128));
      }),
    );
    const from = probe.next();
    const names = clients.map((_, i) => `together-${i}.bin`);
    await Promise.all(
      clients.map((c, i) => upload(c, { ...me, aesKey: keys[i] }, names[i], data(50_000, i))),
    );
    expect(names.flatMap((name) => brokenRules(probe, server.dataDir, hex, name))).toEqual([]);
    const folder = handlesOpenedOn(probe, join(server.dataDir, hex));
    const folderSyncs = probe.events.filter(
      (e) => e.kind === 'sync' && e.seq > from && folder.has(e.handle),
    );
    expect(folderSyncs.length).toBeGreaterThan(0);
    expect(folderSyncs.length).toBeLessThan(names.length);
  });

  it('a failing file fsync fails only the upload it belongs to', async () => {
    const clients = await Promise.all(Array.from({ length: 3 }, () => connected()));
    const people = await Promise.all(
      clients.map((c, i) => registerWithKey(c, `durable failing ${i}`)),
    );
    const [failing, ...others] = people.map((person) => person.id.toString('hex'));
    probe.failSyncOf = (path) => path.includes(`${INCOMING_DIR}/${failing}-`);
    const answers = await Promise.all(
      clients.map((c, i) =>
        c.request(uploadPackets(people[i].id, 'batch.bin', people[i].aesKey, data(80_000, i))),
      ),
    );
    expect(answers.map((r) => r.code)).toEqual([
      Reply.ERROR,
      Reply.FILE_RECEIVED,
      Reply.FILE_RECEIVED,
    ]);
    expect(others.flatMap((hex) => brokenRules(probe, server.dataDir, hex, 'batch.bin'))).toEqual(
      [],
    );
    // Nothing of the failed upload: no row, no file, no temp file.
    expect(await server.store.findFile(people[0].id, 'batch.bin')).toBeUndefined();
    const failedFolder = await readdir(join(server.dataDir, failing)).catch(() => []);
    expect(failedFolder).toEqual([]);
    const incoming = await readdir(join(server.dataDir, INCOMING_DIR));
    expect(incoming.filter((name) => name.startsWith(failing))).toEqual([]);
    // The disk recovers: the same client's next upload on the same connection is stored.
    probe.failSyncOf = () => false;
    await upload(clients[0], people[0], 'batch.bin', data(80_000, 0));
  });
});
