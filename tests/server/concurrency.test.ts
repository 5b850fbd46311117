/**
 * 100 sessions at once against one server with real storage: each registers, sends its key,
 * uploads a different file and confirms it. All must end verified with the right bytes.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cksum } from '../../shared/cksum';
import {
  Code,
  RawClient,
  Reply,
  checksum,
  fileReceived,
  uploadPackets,
} from '../helpers/raw-client';
import {
  expectBytes,
  registerWithKey,
  removeDir,
  startRealServer,
  testKeys,
  type RealServer,
} from './harness';

const SESSIONS = 100;
const KEY_PAIRS = 4;

function fileFor(i: number): Buffer {
  // Different sizes, including block and packet boundaries.
  const size = [0, 1, 15, 16, 1023, 1024, 1025, 4096, 20_000, 65_536][i % 10] + i * 37;
  const out = Buffer.alloc(size);
  for (let j = 0; j < size; j++) out[j] = (i * 31 + j * 7) & 0xff;
  return out;
}

let server: RealServer;

beforeAll(async () => {
  for (let k = 0; k < KEY_PAIRS; k++) testKeys(k);
  server = await startRealServer();
});

afterAll(async () => {
  await server.close();
  await removeDir(server.dataDir);
});

it(`${SESSIONS} concurrent sessions all end verified with the right bytes`, async () => {
  const sessions = Array.from({ length: SESSIONS }, async (_, i) => {
    const client = await RawClient.connect(server.port);
    try {
      const me = await registerWithKey(client, `concurrent-${i}`, testKeys(i % KEY_PAIRS));
      const data = fileFor(i);
      const name = `file-${i}.bin`;
      const r = await client.request(
        uploadPackets(me.id, name, me.aesKey, data, 1024 + (i % 3) * 16),
      );
      expect(fileReceived(r)).toMatchObject({ fileName: name, cksum: cksum(data) });
      const ack = await client.request(checksum(Code.CRC_OK, me.id, name));
      expect(ack.code).toBe(Reply.ACK);
      return { id: me.id, name, data };
    } finally {
      client.destroy();
    }
  });
  const done = await Promise.all(sessions);
  const files = await server.store.listFiles();
  expect(files.length).toBe(SESSIONS);
  expect(files.every((f) => f.verified)).toBe(true);
  for (const { id, name, data } of done) {
    expectBytes(await readFile(join(server.dataDir, id.toString('hex'), name)), data);
  }
  expect(new Set(done.map((d) => d.id.toString('hex'))).size).toBe(SESSIONS);
});
