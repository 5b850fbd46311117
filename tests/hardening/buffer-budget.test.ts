/**
 * The server-wide buffer budget (docs/protocol.md §9): many connections each holding about a
 * megabyte of a declared 4 GB upload, then waiting, must not take the server's memory with them.
 * Peak RSS is read from /proc while the load is on; a normal client is still served.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawClient, Reply, reconnect, sendFilePacket } from '../helpers/raw-client';
import type { ServerProcess } from '../helpers/server-process';
import {
  LOOSE_ADDRESS_FLAGS,
  completeSession,
  loopbackAddress,
  openFileSoftLimit,
  rssBytes,
  sleep,
  spawnHardened,
} from '../helpers/hardening-server';
import { registerWithKey, testKeys } from '../server/harness';

const MIB = 1024 * 1024;
const BUDGET = 64 * MIB;
/** Per-connection fixed costs (one frame, one decipher batch, socket state) and the runtime. */
const OVERHEAD = 256 * MIB;
/** A declared 4 GB upload in the fewest packets the u16 total allows. */
const ORIG = 4_000_000_000;
const TOTAL = 65535;
const CHUNK = Math.ceil(ORIG / TOTAL / 16) * 16;
/** Just under one write group of ciphertext per connection: without the budget, all of it waits. */
const PACKETS_HELD = 16;

let root: string;
let server: ServerProcess | undefined;
const sockets: RawClient[] = [];

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'sft-budget-'));
});

afterEach(async () => {
  for (const c of sockets.splice(0)) c.destroy();
  await server?.stop('SIGKILL');
  server = undefined;
  await rm(root, { recursive: true, force: true });
});

it('1000 connections each holding ~1 MiB of an upload stay near the budget', async () => {
  const connections = Math.min(1000, Math.floor((openFileSoftLimit() - 200) / 2));
  const dataDir = join(root, 'data');
  await mkdir(dataDir, { recursive: true });
  server = await spawnServer(dataDir);
  const s = server;
  const first = await RawClient.connect(s.port, '127.0.0.1', loopbackAddress(43, 0));
  sockets.push(first);
  const me = await registerWithKey(first, 'holder', testKeys());
  const content = randomBytes(CHUNK);
  let peak = rssBytes(s.child.pid as number);
  const sample = setInterval(() => {
    peak = Math.max(peak, rssBytes(s.child.pid as number));
  }, 50);
  try {
    for (let i = 0; i < connections; i += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, connections - i) }, async (_, k) => {
          const c = await RawClient.connect(s.port, '127.0.0.1', loopbackAddress(43, 1 + i + k));
          sockets.push(c);
          expect((await c.request(reconnect(me.id, me.name))).code).toBe(Reply.RECONNECTED);
          const packets = [];
          for (let p = 1; p <= PACKETS_HELD; p++) {
            packets.push(
              sendFilePacket(
                me.id,
                {
                  contentSize: ORIG + 16 - (ORIG % 16),
                  origSize: ORIG,
                  packet: p,
                  total: TOTAL,
                  fileName: `held-${i + k}.bin`,
                },
                content,
              ),
            );
          }
          await c.write(packets);
        }),
      );
    }
    // Let the server take in what the sockets hold.
    await sleep(2000);
    peak = Math.max(peak, rssBytes(s.child.pid as number));
  } finally {
    clearInterval(sample);
  }
  expect(peak).toBeLessThan(BUDGET + OVERHEAD);
  // The server took the uploads (no refusals, no closes): it held them within the budget.
  const held = sockets.slice(1);
  expect(held).toHaveLength(connections);
  expect(held.every((c) => c.isOpen && c.drainQueue().length === 0)).toBe(true);
  // A normal client is served while all of them hold their uploads open.
  const result = await completeSession(s.port, dataDir, {
    name: 'normal',
    size: 200_000,
    localAddress: loopbackAddress(43, 2000),
  });
  expect(result.fileName).toBe('normal.bin');
}, 240_000);

function spawnServer(dataDir: string): Promise<ServerProcess> {
  return spawnHardened(dataDir, [
    ...LOOSE_ADDRESS_FLAGS,
    '--max-buffered-bytes',
    String(BUDGET),
    '--max-connections',
    '5000',
    '--idle-timeout',
    '600',
  ]);
}
