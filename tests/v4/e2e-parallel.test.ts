/**
 * `--parallel` over version 4, real server and client processes on loopback: the files go over
 * several connections of one client (the extra ones pinned to the first one's fingerprint and
 * known by its certificate), the summary follows the arguments, a server that refuses extra
 * connections gets the files over fewer, and an extra connection to another server ends the run.
 */
import { readdir, writeFile } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type ServerProcess } from '../helpers/server-process';
import { patternBytes, runClient, sha256File, TestProxy, e2eFixture } from './helpers';

const MIB = 1024 * 1024;

/** Sends the first connection to `first`, every later one to `later`. */
async function splitProxy(first: number, later: number): Promise<net.Server> {
  let connections = 0;
  const server = net.createServer((client) => {
    const upstream = net.connect(connections++ === 0 ? first : later, '127.0.0.1');
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      a.on('error', () => undefined);
      a.on('close', () => b.destroy());
      a.pipe(b);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

describe('v4 end to end: --parallel', () => {
  const fx = e2eFixture();
  const dir = fx.dir;
  const server = (data: string, args: string[] = []): Promise<ServerProcess> =>
    fx.server(data, ['--log-level', 'info', ...args]);
  const proxy = async (port: number, bytesPerSecond?: number): Promise<TestProxy> => {
    const p = await TestProxy.start(port, { bytesPerSecond });
    fx.onCleanup(() => p.close());
    return p;
  };
  /** `count` files named f00.bin…, `size` bytes each, different contents. */
  const files = async (count: number, size: number): Promise<string[]> => {
    const d = await dir('files');
    const paths: string[] = [];
    for (let i = 0; i < count; i++) {
      const path = join(d, `f${String(i).padStart(2, '0')}.bin`);
      await writeFile(path, patternBytes(size, 40 + i));
      paths.push(path);
    }
    return paths;
  };
  it('sends over 4 connections; every file stored and verified; the summary in argument order', async () => {
    const data = await dir('srv');
    const conf = await dir('cli');
    const s = await server(data);
    // Slowed, so that each connection is open while files are left to take.
    const p = await proxy(s.port, 16 * MIB);
    const paths = (await files(20, MIB + 7)).reverse();
    const run = await runClient(conf, [
      '--server',
      `127.0.0.1:${p.port}`,
      '--name',
      'par',
      '--parallel',
      '4',
      ...paths,
    ]);
    expect(run.stderr).not.toContain('refused');
    expect(run.code).toBe(0);
    // One first contact, nothing from the extra connections.
    expect(run.stderr.match(/first contact/g)).toHaveLength(1);
    expect(p.upstreamBytes).toHaveLength(4);
    for (const bytes of p.upstreamBytes) expect(bytes).toBeGreaterThan(MIB);
    const summary = run.json?.files ?? [];
    expect(summary.map((f) => f.name)).toEqual(paths.map((f) => f.slice(-7)));
    const id = run.json?.clientId as string;
    for (const [i, path] of paths.entries()) {
      const sha = await sha256File(path);
      expect(summary[i]).toMatchObject({ verified: true, bytes: MIB + 7, sha256: sha });
      expect(await sha256File(join(data, id, path.slice(-7)))).toBe(sha);
    }
    // One client: the extra connections registered nothing.
    expect((await readdir(data)).filter((n) => /^[0-9a-f]{32}$/.test(n))).toEqual([id]);
  });

  it('--e2e and --compress on every connection: ciphertext stored, plaintext back with get', async () => {
    const data = await dir('srv');
    const conf = await dir('cli');
    const s = await server(data);
    const p = await proxy(s.port, 8 * MIB);
    const paths = await files(8, 512 * 1024);
    const addr = ['--server', `127.0.0.1:${p.port}`];
    const run = await runClient(conf, [...addr, '--name', 'enc', '--e2e', '--compress', ...paths]);
    expect(run.code).toBe(0);
    expect(p.upstreamBytes.filter((b) => b > 512 * 1024).length).toBeGreaterThanOrEqual(3);
    expect(run.json?.files.map((f) => f.name)).toEqual(paths.map((f) => f.slice(-7)));
    const id = run.json?.clientId as string;
    for (const path of paths) {
      const name = path.slice(-7);
      expect(await sha256File(join(data, id, name))).not.toBe(await sha256File(path));
      const out = join(conf, `${name}.back`);
      const got = await runClient(conf, [...addr, 'get', name, '-o', out]);
      expect(got.code).toBe(0);
      expect(await sha256File(out)).toBe(await sha256File(path));
    }
  });

  it('goes on over fewer connections when the server takes 2 per address, with a note', async () => {
    const data = await dir('srv');
    const conf = await dir('cli');
    const s = await server(data, ['--max-connections-per-ip', '2']);
    const paths = await files(10, MIB);
    const run = await runClient(conf, [
      '--server',
      `127.0.0.1:${s.port}`,
      '--name',
      'few',
      '--parallel',
      '4',
      ...paths,
    ]);
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(
      /the server refused 2 of 3 extra connections \(.+\); the files went over 2 connections/,
    );
    const id = run.json?.clientId as string;
    expect(run.json?.files.map((f) => [f.name, f.verified])).toEqual(
      paths.map((f) => [f.slice(-7), true]),
    );
    for (const path of paths) {
      expect(await sha256File(join(data, id, path.slice(-7)))).toBe(await sha256File(path));
    }
  });

  it('an upload refused on one connection ends the run as one after the other would', async () => {
    const data = await dir('srv');
    const conf = await dir('cli');
    const s = await server(data, ['--max-file-size', '200K']);
    const paths = await files(12, 150 * 1024);
    const big = join(await dir('big'), 'big.bin');
    await writeFile(big, patternBytes(300 * 1024, 7));
    const args = [...paths.slice(0, 6), big, ...paths.slice(6)];
    const run = await runClient(conf, [
      '--server',
      `127.0.0.1:${s.port}`,
      '--name',
      'big',
      ...args,
    ]);
    expect(run.code).toBe(4);
    expect(run.json?.error?.message).toContain('big.bin');
    // Every file before it, in order; none after it.
    expect(run.json?.files.map((f) => [f.name, f.verified])).toEqual(
      paths.slice(0, 6).map((f) => [f.slice(-7), true]),
    );
  });

  it('an extra connection that meets another server ends the run with exit 6, nothing sent there', async () => {
    const dataA = await dir('a');
    const dataB = await dir('b');
    const conf = await dir('cli');
    const a = await server(dataA);
    const b = await server(dataB);
    const split = await splitProxy(a.port, b.port);
    fx.onCleanup(() => new Promise<void>((resolve) => split.close(() => resolve())));
    const port = (split.address() as AddressInfo).port;
    const paths = await files(6, MIB);
    const run = await runClient(conf, [
      '--server',
      `127.0.0.1:${port}`,
      '--name',
      'pin',
      '--parallel',
      '3',
      ...paths,
    ]);
    expect(run.code).toBe(6);
    expect(run.json?.error?.code).toBe('IDENTITY_MISMATCH');
    expect(run.json?.error?.message).toContain('extra connection');
    expect(run.stderr.match(/first contact/g)).toHaveLength(1);
    // Nothing began there: no partial and no client folder.
    expect((await readdir(dataB)).filter((n) => /^[0-9a-f]{32}$|^\.partial-v4$/.test(n))).toEqual(
      [],
    );
  });
});
