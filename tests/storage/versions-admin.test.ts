/**
 * `--keep-versions` end to end (docs/protocol.md §9: an upload never destroys a verified file):
 * uploads over the protocol to the real server on SQLite and disk replace a confirmed file,
 * then `sft-server admin versions` lists what was kept and `sft-server admin restore` brings it
 * back byte for byte, with an audit row.
 */
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import yargs from 'yargs';
import {
  createAdminCommand,
  runAdmin,
  EXIT_FAILURE,
  EXIT_OK,
  type AdminOptions,
} from '../../server/process/admin';
import { startDaemon, type Daemon } from '../../server/process/daemon';
import { DATABASE_FILE_NAME, openSqliteStore } from '../../server/storage/sqlite';
import { silentLogger } from '../../shared/logger';
import { Code, RawClient, Reply, checksum, uploadPackets } from '../helpers/raw-client';
import { QueuedSources, TEST_LIMITS, registerWithKey, type Registered } from '../server/harness';
import { tempDirs } from './temp-dir';

const dirs = tempDirs('versions');
const FILE = 'notes.txt';
const T0 = Date.parse('2024-05-01T12:00:00.000Z');

let dataDir: string;
let daemon: Daemon | undefined;
let client: RawClient | undefined;

afterEach(async () => {
  client?.destroy();
  await daemon?.close(0);
  daemon = undefined;
  await dirs.cleanup();
});

async function start(keepVersions: number): Promise<Registered> {
  dataDir = await dirs.make();
  const sources = new QueuedSources();
  sources.time = T0;
  daemon = await startDaemon({
    dataDir,
    port: 0,
    host: '127.0.0.1',
    logger: silentLogger(),
    limits: TEST_LIMITS,
    sources,
    keepVersions,
  });
  client = await RawClient.connect(daemon.port, '127.0.0.1');
  return registerWithKey(client, 'alice');
}

async function send(
  me: Registered,
  text: string,
  confirm: typeof Code.CRC_OK | typeof Code.CRC_ABORT = Code.CRC_OK,
): Promise<void> {
  const c = client as RawClient;
  expect((await c.request(uploadPackets(me.id, FILE, me.aesKey, Buffer.from(text)))).code).toBe(
    Reply.FILE_RECEIVED,
  );
  expect((await c.request(checksum(confirm, me.id, FILE))).code).toBe(Reply.ACK);
}

async function liveText(me: Registered): Promise<string | undefined> {
  return readFile(path.join(dataDir, me.id.toString('hex'), FILE), 'utf8').catch(() => undefined);
}

async function admin(
  options: Omit<AdminOptions, 'dataDir'>,
): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks: string[] = [];
  const errors: string[] = [];
  out.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
  err.on('data', (chunk: Buffer) => errors.push(chunk.toString()));
  const code = await runAdmin({ ...options, dataDir }, out, { err, now: () => T0 + 3_600_000 });
  return { code, out: chunks.join(''), err: errors.join('') };
}

async function versionsOf(): Promise<Array<{ version: number; size: number; status: string }>> {
  const { code, out } = await admin({ what: 'versions', client: 'alice', name: FILE, json: true });
  expect(code).toBe(EXIT_OK);
  return (JSON.parse(out) as Array<{ version: number; size: number; status: string }>).map(
    ({ version, size, status }) => ({ version, size, status }),
  );
}

it('a replaced verified file is kept, listed and restored byte for byte, with an audit row', async () => {
  const me = await start(3);
  await send(me, 'first version');
  await send(me, 'second, longer version');
  expect(await liveText(me)).toBe('second, longer version');
  await (daemon as Daemon).close(0);
  daemon = undefined;

  expect(await versionsOf()).toEqual([{ version: 1, size: 13, status: 'verified' }]);
  const table = await admin({ what: 'versions' });
  expect(table.out.split('\n')[0]).toMatch(/^OWNER ID +OWNER +FILE +VERSION +SIZE +CKSUM +STATUS/);
  expect(table.out).toContain('1 version\n');

  const restored = await admin({ what: 'restore', client: 'alice', name: FILE });
  expect(restored).toMatchObject({ code: EXIT_OK, err: '' });
  expect(await liveText(me)).toBe('first version');
  expect(await versionsOf()).toEqual([
    { version: 1, size: 13, status: 'verified' },
    { version: 2, size: 22, status: 'verified' },
  ]);

  const store = await openSqliteStore({ path: path.join(dataDir, DATABASE_FILE_NAME) });
  try {
    expect(await store.findFile(me.id, FILE)).toMatchObject({ size: 13, status: 'verified' });
    const rows = (await store.listAudit()).filter((row) => row.outcome === 'file_restored');
    expect(rows).toEqual([
      expect.objectContaining({ remoteAddress: 'admin', name: 'alice', clientId: me.id }),
    ]);
  } finally {
    await store.close();
  }
});

it('keeps at most --keep-versions; a failed or given-up replacement leaves the last verified file restorable', async () => {
  const me = await start(2);
  for (const text of ['v1', 'v2', 'v3', 'v4']) await send(me, text);
  const c = client as RawClient;
  // Bad padding (another key): refused before anything is replaced.
  const wrongKey = Buffer.alloc(32, 0x42);
  expect((await c.request(uploadPackets(me.id, FILE, wrongKey, Buffer.from('evil')))).code).toBe(
    Reply.ERROR,
  );
  expect(await liveText(me)).toBe('v4');
  // A replacement the client gives up with 1031: its bytes go, v4 is kept.
  await send(me, 'garbled', Code.CRC_ABORT);
  expect(await liveText(me)).toBeUndefined();
  await (daemon as Daemon).close(0);
  daemon = undefined;

  expect((await versionsOf()).map((version) => version.version)).toEqual([3, 4]);
  expect(await admin({ what: 'restore', client: 'alice', name: FILE })).toMatchObject({
    code: EXIT_OK,
  });
  expect(await liveText(me)).toBe('v4');
  // The given-up file had no bytes left: nothing new was kept.
  expect((await versionsOf()).map((version) => version.version)).toEqual([3, 4]);

  const older = await admin({
    what: 'restore',
    client: me.id.toString('hex'),
    name: FILE,
    version: 3,
    keepVersions: 2,
    json: true,
  });
  expect(older.code).toBe(EXIT_OK);
  expect(JSON.parse(older.out)).toMatchObject({ restored: { version: 3 }, previousKeptAs: 5 });
  expect(await liveText(me)).toBe('v3');
  expect((await versionsOf()).map((version) => version.version)).toEqual([4, 5]);

  // The same through the command line: `--version` is the restore's, not yargs' own.
  const out = new PassThrough();
  const codes: number[] = [];
  await yargs([])
    .command(createAdminCommand({ out, setExitCode: (code) => codes.push(code) }))
    .strict()
    .exitProcess(false)
    .parseAsync(['admin', 'restore', 'alice', FILE, '--version', '4', '--data-dir', dataDir]);
  expect(codes).toEqual([EXIT_OK]);
  expect(await liveText(me)).toBe('v4');

  const missing = await admin({ what: 'restore', client: 'alice', name: FILE, version: 1 });
  expect(missing.code).toBe(EXIT_FAILURE);
  expect(missing.err).toMatch(/no version 1 of/);
  const nobody = await admin({ what: 'versions', client: 'mallory' });
  expect(nobody.code).toBe(EXIT_FAILURE);
});
