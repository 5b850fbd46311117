/**
 * Disk and database failures, injected into an in-memory store: the request gets
 * 1607, no temp file or half row is left, and the server keeps serving.
 */
import { Writable } from 'node:stream';
import pino from 'pino';
import { cksum } from '../../shared/cksum';
import {
  Code,
  Reply,
  checksum,
  fileReceived,
  reconnect,
  register,
  uploadPackets,
  type RawClient,
} from '../helpers/raw-client';
import {
  memoryBackends,
  type FailureInjector,
  type MemoryByteStore,
  type MemoryCatalog,
} from '../../server/storage/memory';
import type { FileStore } from '../../server/storage/types';
import { registerWithKey, startServer, type Registered, type TestServer } from './harness';

let server: TestServer;
let store: MemoryCatalog;
let files: FileStore;
let bytes: MemoryByteStore;
let faults: FailureInjector;
let client: RawClient;
let me: Registered;
let logLines: Array<{ level: number; msg: string; reason?: string; err?: unknown }>;

beforeEach(async () => {
  ({ store, files, bytes, faults } = memoryBackends());
  logLines = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n'))
        if (line) logLines.push(JSON.parse(line));
      done();
    },
  });
  server = await startServer({ store, files, logger: pino({ level: 'info' }, sink) });
  client = await server.connect();
  me = await registerWithKey(client, 'faulty');
});

afterEach(async () => {
  await server.close();
});

const data = Buffer.alloc(10_000, 0x5c);

async function uploadOk(name = 'ok.bin'): Promise<void> {
  const r = await client.request(uploadPackets(me.id, name, me.aesKey, data));
  expect(fileReceived(r).cksum).toBe(cksum(data));
}

function expectNothingStored(name: string): void {
  expect(bytes.objects.has(`${me.id.toString('hex')}/${name}`)).toBe(false);
  expect(store.files.has(`${me.id.toString('hex')}/${name}`)).toBe(false);
  expect(bytes.temps.size).toBe(0);
}

describe('injected storage failures', () => {
  it('the database fails on register: 1607, then the next register works', async () => {
    faults.fail('registerClient');
    expect((await client.request(register('r1'))).code).toBe(Reply.ERROR);
    expect((await client.request(register('r1'))).code).toBe(Reply.REGISTERED);
    expect(logLines.some((l) => l.level === 50 && l.reason === 'STORAGE_DATABASE')).toBe(true);
  });

  it('the temp file cannot be created: one 1607 for the upload, then a retry succeeds', async () => {
    faults.fail('begin');
    await client.write(uploadPackets(me.id, 'f.bin', me.aesKey, data));
    expect((await client.next()).code).toBe(Reply.ERROR);
    expectNothingStored('f.bin');
    await uploadOk('f.bin');
    expect(client.drainQueue()).toEqual([]);
  });

  it('a write fails mid-upload (disk full): one 1607, temp file removed, no row', async () => {
    faults.fail('writer.write');
    await client.write(uploadPackets(me.id, 'w.bin', me.aesKey, data));
    expect((await client.next()).code).toBe(Reply.ERROR);
    expectNothingStored('w.bin');
    await uploadOk();
    expect(client.drainQueue()).toEqual([]);
  });

  it('the commit (fsync + rename) fails: 1607, temp file removed, no row', async () => {
    faults.fail('writer.commit');
    expect((await client.request(uploadPackets(me.id, 'c.bin', me.aesKey, data))).code).toBe(
      Reply.ERROR,
    );
    expectNothingStored('c.bin');
    await uploadOk();
  });

  it('recording the row fails: 1607 and the committed file is removed again', async () => {
    faults.fail('putFile');
    expect((await client.request(uploadPackets(me.id, 'p.bin', me.aesKey, data))).code).toBe(
      Reply.ERROR,
    );
    expectNothingStored('p.bin');
    await uploadOk();
  });

  it('the database fails on 1029: 1607; the retried 1029 verifies', async () => {
    await uploadOk('v.bin');
    faults.fail('setFileStatus');
    expect((await client.request(checksum(Code.CRC_OK, me.id, 'v.bin'))).code).toBe(Reply.ERROR);
    expect((await client.request(checksum(Code.CRC_OK, me.id, 'v.bin'))).code).toBe(Reply.ACK);
    expect((await store.findFile(me.id, 'v.bin'))?.verified).toBe(true);
  });

  it('the database fails on register: no registration, and no audit row of one', async () => {
    faults.fail('registerClient');
    expect((await client.request(register('r2'))).code).toBe(Reply.ERROR);
    expect(store.auditLog.some((row) => row.outcome === 'registered' && row.name === 'r2')).toBe(
      false,
    );
    expect(await store.findClientByName('r2')).toBeUndefined();
  });

  it('a failing audit trail is logged but does not fail the request', async () => {
    faults.fail('audit', { times: 5 });
    // A refusal's audit row is written on its own (a change's row commits with the change).
    expect((await client.request(register('faulty'))).code).toBe(Reply.REGISTRATION_FAILED);
    expect(
      logLines.some((l) => l.level === 50 && l.msg === 'could not write the audit trail'),
    ).toBe(true);
  });

  it('an unexpected error (not a storage error) answers 1607, logged at error with a stack', async () => {
    const original = store.findClientById.bind(store);
    let broken = true;
    store.findClientById = async (id) => {
      if (broken) {
        broken = false;
        throw new TypeError('a bug');
      }
      return original(id);
    };
    expect((await client.request(reconnect(me.id, me.name))).code).toBe(Reply.ERROR);
    const line = logLines.find((l) => l.reason === 'INTERNAL');
    expect(line?.level).toBe(50);
    expect(JSON.stringify(line?.err)).toContain('a bug');
    await uploadOk();
  });

  it('other clients are served while one keeps failing', async () => {
    const other = await server.connect();
    const them = await registerWithKey(other, 'healthy');
    faults.fail('writer.write', { times: 1000 });
    await client.write(uploadPackets(me.id, 'x.bin', me.aesKey, data));
    expect((await client.next()).code).toBe(Reply.ERROR);
    faults.clear();
    const r = await other.request(uploadPackets(them.id, 'y.bin', them.aesKey, data));
    expect(r.code).toBe(Reply.FILE_RECEIVED);
  });

  it('a connection that drops mid-upload leaves no temp file and no row', async () => {
    const packets = uploadPackets(me.id, 'drop.bin', me.aesKey, data);
    await client.write(packets.slice(0, 5));
    // Wait until the upload is open (a temp file exists), then vanish.
    while (bytes.temps.size === 0) await new Promise((r) => setTimeout(r, 5));
    client.destroy();
    while (server.server.connectionCount > 0) await new Promise((r) => setTimeout(r, 5));
    expectNothingStored('drop.bin');
  });
});
