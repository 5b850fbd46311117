/**
 * Version 3's connection limits hold for version 4 too (docs/protocol-v4.md §1): the idle
 * timeout, the handshake deadline, the per-address count; and `--partial-ttl` parses.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { RequestCode, ResponseCode } from '../../protocol/v4';
import { type Backends } from '../../server/storage/open-backends';
import { type SftServer } from '../../server/transport/listener';
import { parseDurationMs } from '../../server/transport/tls-cli';
import { removeDirs, sleep, tempDir } from './helpers';
import { startMemoryServer } from './memory-server';
import { connectRaw } from './raw-v4';

describe('v4 under the server limits', () => {
  let dir: string;
  let backends: Backends;
  let server: SftServer;
  let port: number;

  beforeEach(async () => {
    dir = await tempDir('limits');
    ({ server, backends, port } = await startMemoryServer(dir, {
      server: { limits: { idleTimeoutMs: 800, maxConnectionsPerIp: 3 } },
      v4: { handshakeTimeoutMs: 800, random: randomBytes },
    }));
  });
  afterEach(async () => {
    await server.close(0);
    await backends.close();
    await removeDirs(dir);
  });

  it('closes a v4 connection idle past --idle-timeout', async () => {
    const peer = await connectRaw(port);
    peer.send({ code: RequestCode.HELLO, version: 4, maxChunk: 65536 });
    expect((await peer.next()).code).toBe(ResponseCode.WELCOME);
    const started = Date.now();
    await peer.closed;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(server.stats.closedIdle).toBeGreaterThanOrEqual(1);
  });

  it('closes a TLS handshake that does not finish', async () => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])); // a record that never ends
    const started = Date.now();
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('counts v4 connections against the per-address limit', async () => {
    const open = await Promise.all([connectRaw(port), connectRaw(port), connectRaw(port)]);
    await sleep(50);
    await expect(connectRaw(port)).rejects.toThrow();
    for (const peer of open) peer.close();
  });
});

describe('--partial-ttl', () => {
  it.each([
    ['24h', 86_400_000],
    ['90m', 5_400_000],
    ['7d', 604_800_000],
    ['30', 30_000],
    ['1.5s', 1500],
  ])('parses %s', (text, ms) => expect(parseDurationMs(text)).toBe(ms));

  it.each(['', '0', '-1h', '1w', 'h', '1 h x'])('refuses %j', (text) =>
    expect(parseDurationMs(text)).toBeUndefined(),
  );
});
