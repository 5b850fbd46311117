/**
 * "Every refusal is counted in the log", on the real `sft-server` process: refusals
 * for the per-address cap, evictions and refusals at the global cap, and idle closes each log
 * a line whose counter (a structured field, not text) goes up by one.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawClient, Reply, register, uploadPackets } from '../helpers/raw-client';
import type { LogLine, ServerProcess } from '../helpers/server-process';
import { loopbackAddress, patternBytes, spawnHardened } from '../helpers/hardening-server';
import { registerWithKey } from '../server/harness';

const PINO_WARN = 40;
const PINO_DEBUG = 20;

let root: string;
let server: ServerProcess | undefined;
const sockets: RawClient[] = [];

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'sft-refusals-'));
});

afterEach(async () => {
  for (const c of sockets.splice(0)) c.destroy();
  await server?.stop('SIGKILL');
  server = undefined;
  await rm(root, { recursive: true, force: true });
});

async function start(flags: readonly string[]): Promise<ServerProcess> {
  const dataDir = join(root, 'data');
  await mkdir(dataDir, { recursive: true });
  server = await spawnHardened(dataDir, flags);
  return server;
}

/** Own 127.32.x.y addresses, apart from the other hardening suites. */
function from(i: number): string {
  return loopbackAddress(32, i);
}

async function open(s: ServerProcess, address: string): Promise<RawClient> {
  const c = await RawClient.connect(s.port, '127.0.0.1', address);
  sockets.push(c);
  return c;
}

async function served(c: RawClient, name: string): Promise<void> {
  expect((await c.request(register(name))).code).toBe(Reply.REGISTERED);
}

/** The log line whose `field` has reached `count` (counters only go up). */
function counted(s: ServerProcess, field: string, count: number): Promise<LogLine> {
  return s.waitForLine((l) => l[field] === count, 20000);
}

describe('refusals and closes are counted in the log', () => {
  it('per-address cap: each refused connection raises refusedPerIp; others are served', async () => {
    const s = await start(['--max-connections-per-ip', '2']);
    const [a, b] = [await open(s, from(0)), await open(s, from(0))];
    await served(a, 'a');
    await served(b, 'b');
    for (let n = 1; n <= 3; n++) {
      const over = await open(s, from(0));
      await over.closed;
      const line = await counted(s, 'refusedPerIp', n);
      expect({ level: line.level, remote: line.remote }).toEqual({
        level: PINO_WARN,
        remote: from(0),
      });
    }
    await served(await open(s, from(1)), 'elsewhere');
    // Still exactly three such lines: one per refusal, none for served connections.
    expect(s.lines.filter((l) => typeof l.refusedPerIp === 'number')).toHaveLength(3);
  });

  it('global cap: the idlest connection is evicted (evictedIdle), with none idle the new one is refused (refusedFull)', async () => {
    const s = await start(['--max-connections', '3', '--log-level', 'debug']);
    const idle = await open(s, from(10));
    await served(idle, 'idle-first');
    const busy: RawClient[] = [];
    for (let i = 0; i < 2; i++) busy.push(await open(s, from(11 + i)));
    const newcomer = await open(s, from(13));
    await idle.closed; // made room
    expect((await counted(s, 'evictedIdle', 1)).level).toBe(PINO_WARN);
    busy.push(newcomer);
    // All three now hold an upload in progress (packet 1 of several): none is idle.
    for (const [i, c] of busy.entries()) {
      const me = await registerWithKey(c, `busy-${i}`);
      await c.write(uploadPackets(me.id, 'part.bin', me.aesKey, patternBytes(5000, i))[0]);
    }
    // Packet 1 gets no answer (§5.4): the server's debug line says each upload is open.
    const started = (): number =>
      s.lines.filter((l) => l.level === PINO_DEBUG && l.file === 'part.bin' && 'packets' in l)
        .length;
    await s.waitForLine(() => started() === busy.length, 20000);
    let refused = 0;
    for (let n = 1; n <= 2; n++) {
      const late = await open(s, from(20 + n));
      await late.closed;
      refused = (await counted(s, 'refusedFull', n)).refusedFull as number;
    }
    expect(refused).toBe(2);
    expect(busy.every((c) => c.isOpen)).toBe(true);
    expect(s.lines.filter((l) => typeof l.evictedIdle === 'number')).toHaveLength(1);
  });

  it('idle timeout: each idle connection closed raises closedIdle', async () => {
    const s = await start(['--idle-timeout', '0.3']);
    for (let n = 1; n <= 2; n++) {
      const c = await open(s, from(30 + n));
      await served(c, `idle-${n}`);
      await c.closed;
      expect((await counted(s, 'closedIdle', n)).reason).toBe('idle');
    }
  });
});
