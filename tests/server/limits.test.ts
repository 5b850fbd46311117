/**
 * Connection-level limits: connection caps with eviction of the longest-idle
 * connection, idle timeout, slow-trickle floor, registration rate, file size and quota.
 */
import {
  RawClient,
  Reply,
  fileReceived,
  header,
  register,
  uploadPackets,
  Code,
} from '../helpers/raw-client';
import { memoryBackends } from '../../server/storage/memory';
import { reconnectWithKey, registerWithKey, startServer, type TestServer } from './harness';
import type { ServerLimits } from '../../server/transport/limits';

let server: TestServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(
  limits: Partial<ServerLimits>,
  stores = memoryBackends(),
): Promise<TestServer> {
  server = await startServer({ ...stores, limits });
  return server;
}

async function until(check: () => boolean, timeoutMs = 20000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The server answered a request on this connection, so it is accepted and served. */
async function served(c: RawClient, name: string): Promise<void> {
  expect((await c.request(register(name))).code).toBe(Reply.REGISTERED);
}

describe('connection limits', () => {
  it('--max-connections-per-ip: the connection over the cap is closed, other addresses are served', async () => {
    const s = await start({ maxConnectionsPerIp: 2 });
    const a = await s.connect();
    const b = await s.connect();
    await served(a, 'a');
    await served(b, 'b');
    const c = await s.connect();
    await c.closed;
    expect(s.server.stats.refusedPerIp).toBe(1);
    const other = await s.connect('127.0.0.2');
    await served(other, 'other-address');
    a.destroy();
    await until(() => s.server.connectionCount === 2);
    await served(await s.connect(), 'after-room');
  });

  it('--max-connections: the longest-idle connection makes room for a new one', async () => {
    const s = await start({ maxConnections: 2 });
    const oldest = await s.connect();
    await served(oldest, 'oldest');
    const newer = await s.connect();
    await served(newer, 'newer');
    const third = await s.connect();
    await served(third, 'third');
    await oldest.closed;
    expect(newer.isOpen).toBe(true);
    expect(s.server.stats.evictedIdle).toBe(1);
    expect(s.server.connectionCount).toBe(2);
  });

  it('--max-connections: with no connection idle, the new one is refused', async () => {
    const stores = memoryBackends();
    const s = await start({ maxConnections: 2 }, stores);
    // Both connections are in the middle of an upload (packet 1 of 3 sent).
    const busy = [await s.connect(), await s.connect()];
    for (const [i, c] of busy.entries()) {
      const me = await registerWithKey(c, `busy-${i}`);
      await c.write(uploadPackets(me.id, 'part', me.aesKey, Buffer.alloc(3000))[0]);
    }
    await until(() => stores.bytes.temps.size === 2);
    const refused = await s.connect();
    await refused.closed;
    expect(s.server.stats.refusedFull).toBe(1);
    expect(busy.every((c) => c.isOpen)).toBe(true);
  });

  it('--idle-timeout: a connection with no complete request is closed', async () => {
    const s = await start({ idleTimeoutMs: 200 });
    const idle = await s.connect();
    await served(idle, 'then-idle');
    await idle.closed;
    expect(s.server.stats.closedIdle).toBe(1);
  });

  it('a request trickled under the rate floor is closed; a steady client is not', async () => {
    const s = await start({ slowRequestGraceMs: 200, minRequestRate: 1000, idleTimeoutMs: 60000 });
    const slow = await s.connect();
    const bytes = register('slowpoke');
    let at = 0;
    const trickle = setInterval(() => {
      if (at < bytes.length && slow.isOpen) slow.socket.write(bytes.subarray(at, ++at));
    }, 20);
    try {
      await slow.closed;
    } finally {
      clearInterval(trickle);
    }
    expect(s.server.stats.closedSlow).toBe(1);
    expect(at).toBeLessThan(bytes.length);
    await served(await s.connect(), 'fast');
  });

  it('1500 idle and half-sent sockets from many addresses do not stop a new client', async () => {
    const s = await start({ maxConnections: 1000, maxConnectionsPerIp: 50 });
    const sockets: RawClient[] = [];
    for (let i = 0; i < 1500; i++) {
      const address = `127.0.${1 + Math.floor(i / 40)}.${1 + (i % 40)}`;
      const c = await RawClient.connect(s.port, '127.0.0.1', address);
      if (i % 2 === 0) c.socket.write(header(Buffer.alloc(16), Code.REGISTER, 255).subarray(0, 7));
      sockets.push(c);
    }
    try {
      const fresh = await s.connect('127.0.0.99');
      const me = await registerWithKey(fresh, 'still-served');
      const data = Buffer.alloc(5000, 7);
      const r = await fresh.request(uploadPackets(me.id, 'f.bin', me.aesKey, data));
      expect(fileReceived(r).fileName).toBe('f.bin');
      expect(s.server.connectionCount).toBeLessThanOrEqual(1000);
      expect(s.server.stats.evictedIdle).toBeGreaterThan(0);
    } finally {
      for (const c of sockets) c.destroy();
    }
  });
});

describe('abuse limits', () => {
  it('--register-rate: over the burst → 1601 and a rate_limited audit row; other addresses unaffected', async () => {
    const stores = memoryBackends();
    // The injected clock stands still, so the bucket never refills during the test.
    const s = await start({ registerRate: { perSecond: 1, burst: 3 } }, stores);
    const c = await s.connect();
    const codes = [];
    for (let i = 0; i < 5; i++) codes.push((await c.request(register(`burst-${i}`))).code);
    expect(codes).toEqual([1600, 1600, 1600, 1601, 1601]);
    expect(stores.store.auditLog.filter((e) => e.outcome === 'rate_limited').length).toBe(2);
    expect(stores.store.clients.size).toBe(3);
    await served(await s.connect('127.0.0.3'), 'elsewhere');
    s.sources.time += 1000;
    await served(c, 'after-a-second');
  });

  it('--max-file-size: 1607 on packet 1 before anything is written; the rest is dropped', async () => {
    const stores = memoryBackends();
    const s = await start({ maxFileSize: 4096 }, stores);
    const c = await s.connect();
    const me = await registerWithKey(c, 'big');
    let opened = 0;
    const begin = stores.files.beginUpload.bind(stores.files);
    stores.files.beginUpload = (...args) => {
      opened++;
      return begin(...args);
    };
    await c.write(uploadPackets(me.id, 'too-big', me.aesKey, Buffer.alloc(4097)));
    expect((await c.next()).code).toBe(Reply.ERROR);
    expect(opened).toBe(0);
    const ok = await c.request(uploadPackets(me.id, 'fits', me.aesKey, Buffer.alloc(4096)));
    expect(ok.code).toBe(Reply.FILE_RECEIVED);
    expect(stores.store.auditLog.filter((e) => e.outcome === 'quota_exceeded').length).toBe(1);
  });

  it('--quota: a client cannot store more than its quota; replacing a file counts once', async () => {
    const stores = memoryBackends();
    const s = await start({ quota: 10_000 }, stores);
    const c = await s.connect();
    const me = await registerWithKey(c, 'quota');
    const up = async (name: string, size: number) =>
      (await c.request(uploadPackets(me.id, name, me.aesKey, Buffer.alloc(size, 1)))).code;
    expect(await up('a', 6000)).toBe(Reply.FILE_RECEIVED);
    expect(await up('b', 5000)).toBe(Reply.ERROR);
    expect(await up('a', 9000)).toBe(Reply.FILE_RECEIVED); // replaces the 6000 bytes
    expect(await up('b', 1000)).toBe(Reply.FILE_RECEIVED);
    expect(await up('c', 1)).toBe(Reply.ERROR);
    expect(stores.bytes.objects.has(`${me.id.toString('hex')}/c`)).toBe(false);
    expect(stores.store.auditLog.filter((e) => e.outcome === 'quota_exceeded').length).toBe(2);
  });

  it('--quota: uploads in flight on other connections of the same client count too', async () => {
    const stores = memoryBackends();
    const s = await start({ quota: 10_000 }, stores);
    const first = await s.connect();
    const second = await s.connect();
    const me = await registerWithKey(first, 'quota-parallel');
    // The second connection gets its own session, as every connection must (§9).
    const meThere = await reconnectWithKey(second, me);
    const a = uploadPackets(me.id, 'a', me.aesKey, Buffer.alloc(6000, 1));
    // All of 'a' but its last packet: the upload stays open on the first connection.
    await first.write(a.slice(0, -1));
    await until(() => stores.bytes.temps.size === 1);
    const b = (size: number) => uploadPackets(me.id, 'b', meThere.aesKey, Buffer.alloc(size, 2));
    expect((await second.request(b(5000))).code).toBe(Reply.ERROR);
    expect((await first.request(a.slice(-1))).code).toBe(Reply.FILE_RECEIVED);
    // 'a' is stored now and its reservation given back: 6000 + 4000 fits exactly.
    expect((await second.request(b(4000))).code).toBe(Reply.FILE_RECEIVED);
    expect((await second.request(b(4001))).code).toBe(Reply.ERROR);
  });

  it('--quota: an abandoned upload gives its reservation back', async () => {
    const stores = memoryBackends();
    const s = await start({ quota: 10_000 }, stores);
    const first = await s.connect();
    const me = await registerWithKey(first, 'quota-dropped');
    const a = uploadPackets(me.id, 'a', me.aesKey, Buffer.alloc(9000, 1));
    await first.write(a.slice(0, -1));
    await until(() => stores.bytes.temps.size === 1);
    first.destroy();
    await until(() => stores.bytes.temps.size === 0);
    const second = await s.connect();
    const meThere = await reconnectWithKey(second, me);
    const b = uploadPackets(me.id, 'b', meThere.aesKey, Buffer.alloc(10_000, 2));
    expect((await second.request(b)).code).toBe(Reply.FILE_RECEIVED);
  });
});
