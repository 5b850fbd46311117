/**
 * Slowloris against the real `sft-server` process with its DEFAULT limits (1000
 * connections, 50 per address, 60 s idle timeout, trickle floor after 10 s): 1500 sockets from
 * 30 loopback addresses, idle or stopped in the middle of a request, are held open while a
 * normal client registers, uploads and confirms on its first connection. Before the fix in
 * server.ts (evict a socket stalled mid-request when none is idle) 1000 half-sent sockets
 * locked every newcomer out until the trickle floor cut them 10 s later.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Code, RawClient, header, register, sendFilePacket } from '../helpers/raw-client';
import type { ServerProcess } from '../helpers/server-process';
import {
  completeSession,
  loopbackAddress,
  openFdCount,
  spawnHardened,
} from '../helpers/hardening-server';

const SOCKETS = 1500;
/** The default --max-connections-per-ip: the sockets spread over SOCKETS / 50 addresses. */
const PER_ADDRESS = 50;
const DEFAULT_MAX_CONNECTIONS = 1000;
/** Open files of the server besides its connections (database, log pipes, epoll, …). */
const FD_OVERHEAD = 64;

let root: string;
let server: ServerProcess;
const held: RawClient[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sft-slowloris-'));
  const dataDir = join(root, 'data');
  await mkdir(dataDir);
  server = await spawnHardened(dataDir);
});

afterAll(async () => {
  for (const c of held.splice(0)) c.destroy();
  await server?.stop('SIGKILL');
  if (root) await rm(root, { recursive: true, force: true });
});

/**
 * What socket `i` sends before it stops: part of a header, part of a payload, or part of a
 * 1028. The first 1000 (the whole default limit) are all half-sent, so no connection is idle
 * when the rest arrive; of the rest every other one sends nothing at all.
 */
function stalledBytes(i: number): Buffer {
  if (i >= DEFAULT_MAX_CONNECTIONS && i % 2 === 0) return Buffer.alloc(0);
  switch (i % 3) {
    case 0:
      return header(Buffer.alloc(16), Code.REGISTER, 255).subarray(0, 7);
    case 1:
      return register(`slow-${i}`).subarray(0, 23 + 100);
    default: {
      // A 1028 announcing 60 KiB of content, of which 10 bytes come.
      const packet = sendFilePacket(
        Buffer.alloc(16, 1),
        { contentSize: 61440, origSize: 61439, packet: 1, total: 1, fileName: 'x' },
        Buffer.alloc(61440),
      );
      return packet.subarray(0, 23 + 267 + 10);
    }
  }
}

describe('slowloris with the default limits', () => {
  it(`${SOCKETS} idle and half-sent sockets from many addresses do not stop a new client`, async () => {
    for (let i = 0; i < SOCKETS; i++) {
      const address = loopbackAddress(33, Math.floor(i / PER_ADDRESS));
      const c = await RawClient.connect(server.port, '127.0.0.1', address);
      held.push(c);
      const bytes = stalledBytes(i);
      if (bytes.length > 0) c.socket.write(bytes);
    }
    // A newcomer from yet another address is served on its first connection, at once: the
    // server makes room by closing a stalled socket instead of refusing the newcomer.
    const result = await completeSession(server.port, join(root, 'data'), {
      name: 'newcomer',
      size: 50_000,
      localAddress: loopbackAddress(33, 250),
    });
    expect(result.plaintext.length).toBe(50_000);
    // The server never held more than its limit of connections open.
    expect(await openFdCount(server.child.pid as number)).toBeLessThan(
      DEFAULT_MAX_CONNECTIONS + FD_OVERHEAD,
    );
    const evicted = server.lines.filter((l) => typeof l.evictedIdle === 'number');
    expect(evicted.length).toBeGreaterThan(0);
    expect(server.child.exitCode).toBeNull();
  });
});
