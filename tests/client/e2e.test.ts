/**
 * End to end: the built `sft-client` against the built `sft-server`, as separate processes on
 * loopback (docs/protocol.md §5, §7, §8). Files must arrive byte for byte under
 * <data>/<client id hex>/<name> and be marked verified in defensive.db.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sqlite3 from 'sqlite3';
import { ExitCode } from '../../client/errors';
import { removeDir, runCli, startRealServer, tempDir, testBytes, type RealServer } from './helpers';

interface Summary {
  ok: boolean;
  clientId: string;
  registered: boolean;
  files: { name: string; bytes: number; cksum: number; verified: boolean }[];
}

/** These runs check v3 (me.info, 1025/1027); the v4 path has its own end-to-end tests. */
const V3 = ['--protocol', 'v3'];
let server: RealServer | undefined;
const dirs: string[] = [];

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await Promise.all(dirs.splice(0).map(removeDir));
});

async function newDir(): Promise<string> {
  const dir = await tempDir();
  dirs.push(dir);
  return dir;
}

async function configDir(address: string, files: Record<string, Buffer>): Promise<string> {
  const dir = await newDir();
  await writeFile(
    join(dir, 'transfer.info'),
    `${address}\nE2E Client ${dirs.length}\n${Object.keys(files)[0]}\n`,
  );
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  return dir;
}

async function upload(dir: string, args: string[] = []): Promise<Summary> {
  const result = await runCli([...V3, '--config-dir', dir, '--json', ...args]);
  if (result.code !== ExitCode.OK) {
    throw new Error(`client exited ${result.code}: ${result.stderr}`);
  }
  return JSON.parse(result.stdout) as Summary;
}

/** Rows of the files table (§7), read after the server has stopped. */
function verifiedFlags(dataDir: string): Promise<Map<string, number>> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(join(dataDir, 'defensive.db'), sqlite3.OPEN_READONLY, (err) => {
      if (err) reject(err);
    });
    db.all(
      'SELECT hex(ID) AS id, FileName AS name, Verified AS verified FROM files',
      (err, rows: { id: string; name: string; verified: number }[]) => {
        db.close();
        if (err) reject(err);
        else resolve(new Map(rows.map((r) => [`${r.id.toLowerCase()}/${r.name}`, r.verified])));
      },
    );
  });
}

async function stored(dataDir: string, clientId: string, name: string): Promise<Buffer> {
  return readFile(join(dataDir, clientId, name));
}

describe('sft-client against sft-server', () => {
  it('first run registers and uploads; the second run reconnects', async () => {
    const data = await newDir();
    server = await startRealServer(data);
    const first = testBytes(300_000, 11);
    const dir = await configDir(server.address, { 'report.bin': first });

    const run1 = await upload(dir);
    expect(run1.registered).toBe(true);
    expect(run1.files).toEqual([
      expect.objectContaining({ name: 'report.bin', bytes: first.length, verified: true }),
    ]);
    expect((await readFile(join(dir, 'me.info'), 'utf8')).split('\n')[1]).toBe(run1.clientId);
    expect((await stored(data, run1.clientId, 'report.bin')).equals(first)).toBe(true);

    const second = testBytes(5000, 12);
    await writeFile(join(dir, 'report.bin'), second);
    const run2 = await upload(dir);
    expect(run2.registered).toBe(false);
    expect(run2.clientId).toBe(run1.clientId);
    expect((await stored(data, run1.clientId, 'report.bin')).equals(second)).toBe(true);

    await server.stop();
    expect((await verifiedFlags(data)).get(`${run1.clientId}/report.bin`)).toBe(1);
  });

  it('registers anew when the server has lost the client (fresh data dir)', async () => {
    const firstData = await newDir();
    server = await startRealServer(firstData);
    const input = testBytes(10_000, 21);
    const dir = await configDir(server.address, { 'a.bin': input });
    const run1 = await upload(dir);
    await server.stop();

    const secondData = await newDir();
    server = await startRealServer(secondData);
    const run2 = await upload(dir, ['--server', server.address]);
    expect(run2.registered).toBe(true);
    expect(run2.clientId).not.toBe(run1.clientId);
    expect((await readFile(join(dir, 'me.info'), 'utf8')).split('\n')[1]).toBe(run2.clientId);
    expect((await stored(secondData, run2.clientId, 'a.bin')).equals(input)).toBe(true);
  });

  it('uploads several files of edge sizes on one connection', async () => {
    const data = await newDir();
    server = await startRealServer(data);
    const files: Record<string, Buffer> = {
      'one.bin': testBytes(1, 31),
      'sixteen.bin': testBytes(16, 32),
      'k4.bin': testBytes(4096, 33),
      'empty.bin': Buffer.alloc(0),
      'multi-block.bin': testBytes(2_500_000, 34),
    };
    const dir = await configDir(server.address, files);
    const names = Object.keys(files);
    const run = await upload(
      dir,
      names.map((n) => join(dir, n)),
    );
    expect(run.files.map((f) => [f.name, f.bytes, f.verified])).toEqual(
      names.map((n) => [n, files[n].length, true]),
    );
    for (const name of names) {
      expect((await stored(data, run.clientId, name)).equals(files[name])).toBe(true);
    }
    expect(run.files.find((f) => f.name === 'empty.bin')?.cksum).toBe(4294967295);
    await server.stop();
    const flags = await verifiedFlags(data);
    for (const name of names) expect(flags.get(`${run.clientId}/${name}`)).toBe(1);
  });

  it('prints plain progress lines when stdout is not a terminal', async () => {
    const data = await newDir();
    server = await startRealServer(data);
    const dir = await configDir(server.address, { 'p.bin': testBytes(2000, 41) });
    const result = await runCli([...V3, '--config-dir', dir]);
    expect(result.code).toBe(ExitCode.OK);
    expect(result.stdout).toMatch(/^registered as "E2E Client \d+" \(client id [0-9a-f]{32}\)/m);
    expect(result.stdout).toMatch(/^sending p\.bin \(2\.0 kB\)$/m);
    expect(result.stdout).toMatch(/^sent p\.bin: 2\.0 kB in .*cksum \d+, verified$/m);
    expect(result.stderr).toBe('');
    const quiet = await runCli([...V3, '--config-dir', dir, '--quiet']);
    expect(quiet.code).toBe(ExitCode.OK);
    expect(quiet.stdout).toBe('');
  });
});
