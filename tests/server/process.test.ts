/**
 * The built `sft-server` as a real process: CLI, restart on the same data directory, SIGKILL in
 * the middle of an upload, graceful shutdown with an upload in flight.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { cksum } from '../../shared/cksum';
import {
  Code,
  RawClient,
  Reply,
  checksum,
  fileReceived,
  reconnect,
  uploadPackets,
} from '../helpers/raw-client';
import {
  SERVER_MAIN,
  spawnServer,
  startServerProcess,
  type ServerProcess,
} from '../helpers/server-process';
import { expectBytes, registerWithKey, removeDir, tempDir, testKeys, unwrapWith } from './harness';

jest.setTimeout(120000);

function data(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

const running: ServerProcess[] = [];
const dirs: string[] = [];
const clients: RawClient[] = [];

async function start(dataDir: string, args: string[] = []): Promise<ServerProcess> {
  const p = await startServerProcess(dataDir, { args });
  running.push(p);
  return p;
}

async function connect(port: number): Promise<RawClient> {
  const c = await RawClient.connect(port);
  clients.push(c);
  return c;
}

async function newDir(): Promise<string> {
  const d = await tempDir();
  dirs.push(d);
  return d;
}

interface FatalLine {
  readonly level: number;
  readonly msg: string;
  readonly err?: { readonly code?: string };
}

/** Starts a server on `dataDir` that must refuse to start (exit 1); its fatal log line. */
function failedStart(dataDir: string): FatalLine | undefined {
  const r = spawnSync(
    process.execPath,
    [SERVER_MAIN, '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir],
    { encoding: 'utf8', timeout: 30000 },
  );
  expect(r.status).toBe(1);
  return r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as FatalLine)
    .find((l) => l.level === 60);
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const p of running.splice(0)) await p.stop('SIGKILL');
  for (const d of dirs.splice(0)) await removeDir(d);
});

describe('sft-server CLI', () => {
  it('--help lists the flags and exits 0', () => {
    const r = spawnSync(process.execPath, [SERVER_MAIN, '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    for (const flag of [
      '--port',
      '--host',
      '--data-dir',
      '--log-level',
      '--max-connections',
      '--max-connections-per-ip',
      '--idle-timeout',
      '--max-chunk',
      '--max-file-size',
      '--quota',
      '--register-rate',
      '--master-key-file',
    ]) {
      expect(r.stdout).toContain(flag);
    }
  });

  it('an unknown flag or a bad value is a usage error (exit 2)', () => {
    const unknown = spawnSync(process.execPath, [SERVER_MAIN, '--no-such-flag'], {
      encoding: 'utf8',
    });
    expect(unknown.status).toBe(2);
    const bad = spawnSync(process.execPath, [SERVER_MAIN, '--port', '0', '--quota', 'lots'], {
      encoding: 'utf8',
    });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--quota');
  });

  it('takes the port from port.info in the working directory when --port is absent', async () => {
    const dir = await newDir();
    const port = await freePort();
    await writeFile(join(dir, 'port.info'), `${port}\n`);
    const p = await spawnServer([SERVER_MAIN, '--host', '127.0.0.1', '--data-dir', 'data'], {
      cwd: dir,
    });
    running.push(p);
    expect(p.port).toBe(port);
    expect(existsSync(join(dir, 'data', 'defensive.db'))).toBe(true);
    expect(p.lines.some((l) => l.level === 40 && /master key/.test(l.msg))).toBe(true);
  });

  it('a second daemon on a data folder in use refuses to start and changes nothing; a killed one leaves no lock', async () => {
    const dir = await newDir();
    const first = await start(dir);
    // An upload in flight of the first daemon: the second must not sweep it away.
    await mkdir(join(dir, '.incoming'), { recursive: true, mode: 0o700 });
    const inFlight = join(dir, '.incoming', 'in-flight.part');
    await writeFile(inFlight, 'half');
    const fatal = failedStart(dir);
    expect(fatal?.err?.code).toBe('IN_USE');
    expect(fatal?.msg).toContain(`pid ${first.child.pid}`);
    expect(existsSync(inFlight)).toBe(true);
    // The first one still serves.
    const c = await connect(first.port);
    await registerWithKey(c, 'still-here');

    await first.stop('SIGKILL');
    running.splice(running.indexOf(first), 1);
    const third = await start(dir);
    expect(third.port).toBeGreaterThan(0);
  });

  it('a --data-dir that is a file is a start error (exit 1) that touches nothing', async () => {
    const dir = await newDir();
    const file = join(dir, 'data');
    await writeFile(file, 'not a folder');
    for (const dataDir of [file, join(file, 'below')]) {
      expect(failedStart(dataDir)?.err?.code).toBe('FILESYSTEM');
    }
    expect(await readdir(dir)).toEqual(['data']);
    expect(await readFile(file, 'utf8')).toBe('not a folder');
  });

  it('a malformed port.info is a usage error naming the file', async () => {
    const dir = await newDir();
    await writeFile(join(dir, 'port.info'), 'eighty\n');
    const r = spawnSync(process.execPath, [SERVER_MAIN, '--data-dir', dir], {
      cwd: dir,
      encoding: 'utf8',
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('port.info');
  });

  it('a port in use is a fatal start error (exit 1)', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    const dir = await newDir();
    const r = spawnSync(
      process.execPath,
      [SERVER_MAIN, '--port', String(port), '--host', '127.0.0.1', '--data-dir', dir],
      { encoding: 'utf8' },
    );
    blocker.close();
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('EADDRINUSE');
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

describe('persistence', () => {
  it('restart: a client registered before reconnects (1605) and uploads again', async () => {
    const dir = await newDir();
    const first = await start(dir);
    const c1 = await connect(first.port);
    const me = await registerWithKey(c1, 'restart-client', testKeys(0));
    const v1 = data(100_000, 1);
    const r1 = await c1.request(uploadPackets(me.id, 'doc.bin', me.aesKey, v1));
    expect(fileReceived(r1).cksum).toBe(cksum(v1));
    expect((await c1.request(checksum(Code.CRC_OK, me.id, 'doc.bin'))).code).toBe(Reply.ACK);
    c1.destroy();
    expect(await first.stop('SIGTERM')).toBe(0);

    const second = await start(dir);
    const c2 = await connect(second.port);
    const r = await c2.request(reconnect(me.id, 'restart-client'));
    expect(r.code).toBe(Reply.RECONNECTED);
    const newKey = unwrapWith(me.keys, r.payload.subarray(16));
    expect(newKey).not.toEqual(me.aesKey);
    const v2 = data(70_000, 2);
    const r2 = await c2.request(uploadPackets(me.id, 'doc2.bin', newKey, v2));
    expect(fileReceived(r2).cksum).toBe(cksum(v2));
    expect((await c2.request(checksum(Code.CRC_OK, me.id, 'doc2.bin'))).code).toBe(Reply.ACK);
    const folder = join(dir, me.id.toString('hex'));
    expectBytes(await readFile(join(folder, 'doc.bin')), v1);
    expectBytes(await readFile(join(folder, 'doc2.bin')), v2);
    c2.destroy();
    expect(await second.stop('SIGINT')).toBe(0);
    // The admin command reads what the server stored.
    const listing = spawnSync(
      process.execPath,
      [SERVER_MAIN, 'admin', 'files', '--json', '--data-dir', dir],
      {
        encoding: 'utf8',
      },
    );
    expect(listing.status).toBe(0);
    const rows = JSON.parse(listing.stdout) as Array<{ fileName: string; verified: boolean }>;
    expect(rows.map((f) => [f.fileName, f.verified]).sort()).toEqual([
      ['doc.bin', true],
      ['doc2.bin', true],
    ]);
  });

  it('crash: SIGKILL mid-upload leaves no partial file; after restart the client finishes', async () => {
    const dir = await newDir();
    const first = await start(dir);
    const c1 = await connect(first.port);
    const me = await registerWithKey(c1, 'crash-client', testKeys(1));
    const payload = data(2_000_000, 3);
    const packets = uploadPackets(me.id, 'big.bin', me.aesKey, payload);
    await c1.write(packets.slice(0, Math.floor(packets.length / 2)));
    // Wait until the server has written part of it to its temp file.
    await waitFor(async () => {
      const incoming = join(dir, '.incoming');
      if (!existsSync(incoming)) return false;
      return (await readdir(incoming)).length > 0;
    });
    expect(await first.stop('SIGKILL')).toBe('SIGKILL');
    const folder = join(dir, me.id.toString('hex'));
    expect(existsSync(join(folder, 'big.bin'))).toBe(false);

    const second = await start(dir);
    expect(await readdir(join(dir, '.incoming'))).toEqual([]);
    expect(second.lines.some((l) => l.msg === 'removed temp files of interrupted uploads')).toBe(
      true,
    );
    const c2 = await connect(second.port);
    const r = await c2.request(reconnect(me.id, 'crash-client'));
    expect(r.code).toBe(Reply.RECONNECTED);
    const key = unwrapWith(me.keys, r.payload.subarray(16));
    const done = await c2.request(uploadPackets(me.id, 'big.bin', key, payload));
    expect(fileReceived(done).cksum).toBe(cksum(payload));
    expect((await c2.request(checksum(Code.CRC_OK, me.id, 'big.bin'))).code).toBe(Reply.ACK);
    expectBytes(await readFile(join(folder, 'big.bin')), payload);
  });

  it('SIGTERM lets an upload in flight finish, then exits 0', async () => {
    const dir = await newDir();
    const p = await start(dir, ['--shutdown-grace', '20']);
    const c = await connect(p.port);
    const me = await registerWithKey(c, 'graceful', testKeys(0));
    const payload = data(300_000, 4);
    const packets = uploadPackets(me.id, 'g.bin', me.aesKey, payload);
    await c.write(packets.slice(0, 10));
    p.child.kill('SIGTERM');
    await p.waitForLine((l) => l.msg === 'shutting down: no new connections');
    const r = await c.request(packets.slice(10));
    expect(fileReceived(r).cksum).toBe(cksum(payload));
    expect(await p.exited).toBe(0);
    expectBytes(await readFile(join(dir, me.id.toString('hex'), 'g.bin')), payload);
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
