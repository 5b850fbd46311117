import { readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import yargs from 'yargs';
import {
  createAdminCommand,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  parseSince,
  runAdmin,
  type AdminOptions,
} from '../../server/process/admin';
import { DATABASE_FILE_NAME, openSqliteStore } from '../../server/storage/sqlite';
import { aesKeyOf, idOf, tempDirs } from './temp-dir';

const dirs = tempDirs('admin');
afterEach(() => dirs.cleanup());

const T0 = Date.parse('2024-05-01T12:00:00.000Z');
const MINUTE = 60 * 1000;
const MASTER = Buffer.alloc(32, 0x42);
const PUBLIC_KEY = Buffer.from('30819d300d06092a864886f70d0101010500', 'hex');
const ALICE = idOf(0xa1).toString('hex');
const BOB = idOf(0xb0).toString('hex');

/** A data directory with two clients, three files and an audit trail. */
async function seeded(): Promise<string> {
  const dir = await dirs.make();
  const store = await openSqliteStore({
    path: path.join(dir, DATABASE_FILE_NAME),
    masterKey: MASTER,
  });
  await store.registerClient(idOf(0xa1), 'alice', T0);
  await store.setPublicKey(idOf(0xa1), PUBLIC_KEY, aesKeyOf(0x11), T0 + MINUTE);
  await store.registerClient(idOf(0xb0), 'bob', T0 + 2 * MINUTE);
  const put = (id: Buffer, name: string, size: number, cksum: number, at: number) =>
    store.putFile({
      clientId: id,
      fileName: name,
      objectKey: `${id.toString('hex')}/${name}`,
      size,
      cksum,
      updatedAt: at,
    });
  await put(idOf(0xa1), 'notes.txt', 1234, 930766865, T0 + 3 * MINUTE);
  await put(idOf(0xa1), 'big.bin', 104857600, 4294967295, T0 + 4 * MINUTE);
  await store.setFileStatus(idOf(0xa1), 'notes.txt', 'verified', T0 + 5 * MINUTE);
  await store.setFileStatus(idOf(0xa1), 'big.bin', 'failed', T0 + 6 * MINUTE);
  await put(idOf(0xb0), 'b.dat', 5, 1, T0 + 7 * MINUTE);
  await store.audit({
    time: T0,
    remoteAddress: '127.0.0.1',
    clientId: null,
    name: 'alice',
    requestCode: 1025,
    outcome: 'registered',
  });
  await store.audit({
    time: T0 + 10 * MINUTE,
    remoteAddress: '::ffff:10.0.0.7',
    clientId: idOf(0xb0),
    name: 'bob',
    requestCode: 1028,
    outcome: 'rejected_name',
    detail: 'name "\u001b[2Jx" not a base name',
  });
  await store.close();
  return dir;
}

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

async function run(options: AdminOptions): Promise<{ code: number; out: string; err: string }> {
  const out = capture();
  const err = capture();
  const code = await runAdmin(options, out.stream, {
    err: err.stream,
    now: () => T0 + 60 * MINUTE,
  });
  return { code, out: out.text(), err: err.text() };
}

describe('sft-server admin', () => {
  it('lists clients as an aligned table without key material', async () => {
    const dataDir = await seeded();
    const { code, out, err } = await run({ what: 'clients', dataDir });
    expect({ code, err }).toEqual({ code: EXIT_OK, err: '' });
    expect(out).toBe(
      [
        'CLIENT ID                         NAME   PUBLIC KEY  AES KEY    LAST SEEN',
        `${ALICE}  alice  yes         encrypted  2024-05-01T12:01:00.000Z`,
        `${BOB}  bob    no          no         2024-05-01T12:02:00.000Z`,
        '2 clients',
        '',
      ].join('\n'),
    );
    expect(out).not.toContain(aesKeyOf(0x11).toString('hex'));
    expect(out).not.toContain(PUBLIC_KEY.toString('hex'));
  });

  it('lists files with owner, size, cksum and status', async () => {
    const dataDir = await seeded();
    const { code, out } = await run({ what: 'files', dataDir });
    expect(code).toBe(EXIT_OK);
    const lines = out.split('\n');
    expect(lines[0]).toBe(
      'OWNER ID                          OWNER  FILE       PATH' +
        ' '.repeat(45) +
        'SIZE       CKSUM  STATUS    UPDATED',
    );
    expect(lines[1]).toBe(
      `${ALICE}  alice  big.bin    ${ALICE}/big.bin    104857600  4294967295  failed    ` +
        '2024-05-01T12:06:00.000Z',
    );
    expect(lines[2]).toBe(
      `${ALICE}  alice  notes.txt  ${ALICE}/notes.txt       1234   930766865  verified  ` +
        '2024-05-01T12:05:00.000Z',
    );
    expect(lines[3]).toBe(
      `${BOB}  bob    b.dat      ${BOB}/b.dat              5           1  received  ` +
        '2024-05-01T12:07:00.000Z',
    );
    expect(lines.slice(4)).toEqual(['3 files', '']);
  });

  it('lists the audit trail and escapes control characters from the network', async () => {
    const dataDir = await seeded();
    const { code, out } = await run({ what: 'audit', dataDir });
    expect(code).toBe(EXIT_OK);
    expect(out).not.toContain('\u001b');
    expect(out.split('\n')).toEqual([
      'TIME                      REMOTE           CLIENT ID                         NAME   CODE  OUTCOME        DETAIL',
      '2024-05-01T12:00:00.000Z  127.0.0.1        -                                 alice  1025  registered',
      `2024-05-01T12:10:00.000Z  ::ffff:10.0.0.7  ${BOB}  bob    1028  rejected_name  name "\\x1b[2Jx" not a base name`,
      '2 audit entries',
      '',
    ]);
  });

  it('prints JSON with --json', async () => {
    const dataDir = await seeded();
    const clients = JSON.parse((await run({ what: 'clients', dataDir, json: true })).out);
    expect(clients).toEqual([
      {
        id: ALICE,
        name: 'alice',
        hasPublicKey: true,
        hasAesKey: true,
        aesKeyEncrypted: true,
        lastSeen: '2024-05-01T12:01:00.000Z',
      },
      {
        id: BOB,
        name: 'bob',
        hasPublicKey: false,
        hasAesKey: false,
        aesKeyEncrypted: false,
        lastSeen: '2024-05-01T12:02:00.000Z',
      },
    ]);
    const files = JSON.parse((await run({ what: 'files', dataDir, json: true })).out);
    expect(files[1]).toEqual({
      clientId: ALICE,
      owner: 'alice',
      fileName: 'notes.txt',
      pathName: `${ALICE}/notes.txt`,
      size: 1234,
      cksum: 930766865,
      status: 'verified',
      verified: true,
      updatedAt: '2024-05-01T12:05:00.000Z',
    });
    const audit = JSON.parse((await run({ what: 'audit', dataDir, json: true })).out);
    expect(audit[1]).toEqual({
      id: 2,
      time: '2024-05-01T12:10:00.000Z',
      remoteAddress: '::ffff:10.0.0.7',
      clientId: BOB,
      name: 'bob',
      requestCode: 1028,
      outcome: 'rejected_name',
      detail: 'name "\u001b[2Jx" not a base name',
    });
    expect(audit[0]).toMatchObject({ clientId: null, detail: null });
  });

  it('filters with --since (relative or ISO) and --limit', async () => {
    const dataDir = await seeded();
    // now = T0 + 60 min, so 55m means from T0 + 5 min on.
    const audit = JSON.parse((await run({ what: 'audit', dataDir, json: true, since: '55m' })).out);
    expect(audit.map((entry: { outcome: string }) => entry.outcome)).toEqual(['rejected_name']);
    const files = JSON.parse(
      (await run({ what: 'files', dataDir, json: true, since: '2024-05-01T12:06:00Z' })).out,
    );
    expect(files.map((file: { fileName: string }) => file.fileName)).toEqual(['big.bin', 'b.dat']);
    const clients = JSON.parse(
      (await run({ what: 'clients', dataDir, json: true, since: '2024-05-01T12:01:30Z' })).out,
    );
    expect(clients.map((client: { name: string }) => client.name)).toEqual(['bob']);
    const newest = JSON.parse((await run({ what: 'audit', dataDir, json: true, limit: 1 })).out);
    expect(newest.map((entry: { id: number }) => entry.id)).toEqual([2]);
  });

  it('fails clearly, with exit codes, on a bad --since or a missing database', async () => {
    const dataDir = await seeded();
    const bad = await run({ what: 'audit', dataDir, since: 'yesterday' });
    expect(bad.code).toBe(EXIT_USAGE);
    expect(bad.out).toBe('');
    expect(bad.err).toMatch(/^sft-server admin: --since "yesterday"/);

    const empty = await dirs.make();
    const missing = await run({ what: 'clients', dataDir: empty });
    expect(missing.code).toBe(EXIT_FAILURE);
    expect(missing.err).toContain(path.join(empty, DATABASE_FILE_NAME));
    expect(await readdir(empty)).toEqual([]);
  });

  it('leaves the data directory as it found it', async () => {
    const dataDir = await seeded();
    const before = await readdir(dataDir);
    for (const what of ['clients', 'files', 'audit'] as const) await run({ what, dataDir });
    expect(await readdir(dataDir)).toEqual(before);
  });

  it('runs as a yargs command', async () => {
    const dataDir = await seeded();
    const out = capture();
    const codes: number[] = [];
    await yargs([])
      .command(createAdminCommand({ out: out.stream, setExitCode: (code) => codes.push(code) }))
      .strict()
      .exitProcess(false)
      .parseAsync(['admin', 'clients', '--data-dir', dataDir, '--json']);
    expect(codes).toEqual([EXIT_OK]);
    expect(JSON.parse(out.text())).toHaveLength(2);
  });
});

describe('parseSince', () => {
  const now = T0;
  it.each([
    ['30s', now - 30 * 1000],
    ['15m', now - 15 * MINUTE],
    ['1h', now - 60 * MINUTE],
    ['2d', now - 2 * 24 * 60 * MINUTE],
    ['1w', now - 7 * 24 * 60 * MINUTE],
    ['2024-04-30T00:00:00Z', Date.parse('2024-04-30T00:00:00Z')],
    ['2024-04-30', Date.parse('2024-04-30')],
  ])('%s', (text, expected) => {
    expect(parseSince(text, now)).toBe(expected);
  });

  it.each(['', 'h', '1y', 'tomorrow', '12', '2024-13-45'])('rejects %j', (text) => {
    expect(() => parseSince(text, now)).toThrow(/--since/);
  });
});
