/**
 * Issued version-3 client ids never start like a TLS record (docs/protocol.md §9), so version 3
 * and version 4 can share a port: an id source that offers one is asked again.
 */
import { Reply, register } from '../helpers/raw-client';
import { QueuedSources, startServer, type TestServer } from './harness';

let server: TestServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

it('an id starting with 0x16 is never issued: the next one is', async () => {
  const tlsLike = Buffer.from('16030100000000000000000000000001', 'hex');
  const plain = Buffer.from('7a000000000000000000000000000002', 'hex');
  const sources = new QueuedSources([tlsLike, plain]);
  server = await startServer({ sources });
  const c = await server.connect();
  const r = await c.request(register('first-byte'));
  expect(r.code).toBe(Reply.REGISTERED);
  expect(r.payload.subarray(0, 16).equals(plain)).toBe(true);
  expect((await server.store.findClientById(tlsLike)) === undefined).toBe(true);
});

it('a source that only offers such ids makes the registration fail, nothing stored', async () => {
  const tlsLike = Array.from({ length: 8 }, (_, i) =>
    Buffer.concat([Buffer.from([0x16]), Buffer.alloc(15, i)]),
  );
  server = await startServer({ sources: new QueuedSources(tlsLike) });
  const c = await server.connect();
  const r = await c.request(register('never'));
  expect(r.code).not.toBe(Reply.REGISTERED);
  expect(await server.store.findClientByName('never')).toBeUndefined();
});
