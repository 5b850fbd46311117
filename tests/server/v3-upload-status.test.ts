/**
 * Version 3 keeps its two steps (docs/protocol.md §5.5): the row of an upload is written
 * `received` with 1603, and only the client's 1029 makes it `verified` (1604), each step with
 * its own audit row. Version 4 writes its rows verified at once; this must not leak into v3.
 */
import { memoryBackends } from '../../server/storage/memory';
import type { PutFileOptions } from '../../server/storage/types';
import { patternBytes } from '../helpers/hardening-server';
import { checksum, Code, Reply, uploadPackets } from '../helpers/raw-client';
import { registerWithKey, startServer, type TestServer } from './harness';

let server: TestServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('v3 upload: received with 1603, verified with 1604', () => {
  it('writes the row received, then verified on 1029, with file_stored then checksum_ok', async () => {
    const { store, files } = memoryBackends();
    const puts: Array<PutFileOptions | undefined> = [];
    const putFile = store.putFile.bind(store);
    store.putFile = (file, audit, options) => {
      puts.push(options);
      return putFile(file, audit, options);
    };
    server = await startServer({ store, files });
    const c = await server.connect();
    const me = await registerWithKey(c, 'three');
    const data = patternBytes(5000, 3);

    const received = await c.request(uploadPackets(me.id, 'v3.bin', me.aesKey, data));
    expect(received.code).toBe(Reply.FILE_RECEIVED);
    expect(puts).toEqual([undefined]);
    expect(await store.findFile(me.id, 'v3.bin')).toMatchObject({
      status: 'received',
      verified: false,
    });

    expect((await c.request(checksum(Code.CRC_OK, me.id, 'v3.bin'))).code).toBe(Reply.ACK);
    expect(await store.findFile(me.id, 'v3.bin')).toMatchObject({
      status: 'verified',
      verified: true,
    });
    const trail = (await store.listAudit())
      .filter((row) => row.outcome === 'file_stored' || row.outcome === 'checksum_ok')
      .map((row) => [row.requestCode, row.outcome]);
    expect(trail).toEqual([
      [Code.SEND_FILE, 'file_stored'],
      [Code.CRC_OK, 'checksum_ok'],
    ]);
  });
});
