/**
 * The error rows of docs/protocol.md §9 (server side), one test each, against a real server with
 * real storage: the exact answer, the connection state after, nothing stored.
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { cksum } from '../../shared/cksum';
import {
  Code,
  Reply,
  checksum,
  encrypt,
  fileReceived,
  frame,
  header,
  nameField,
  register,
  sendFilePacket,
  uploadPackets,
  type RawClient,
} from '../helpers/raw-client';
import {
  QueuedSources,
  registerWithKey,
  removeDir,
  startRealServer,
  type RealServer,
  type Registered,
} from './harness';

const ERROR_1607 = '03470600000000';

let server: RealServer;
let client: RawClient;
let me: Registered;

beforeEach(async () => {
  server = await startRealServer({ sources: new QueuedSources() });
  client = await server.connect();
  me = await registerWithKey(client, 'errors');
});

afterEach(async () => {
  await server.close();
  await removeDir(server.dataDir);
});

function data(size: number): Buffer {
  return Buffer.from(Array.from({ length: size }, (_, i) => (i * 7 + 3) & 0xff));
}

/** The client's folder holds exactly `names`, and no temp file is left anywhere. */
async function expectStoredNames(names: string[]): Promise<void> {
  const folder = join(server.dataDir, me.id.toString('hex'));
  const present = existsSync(folder) ? (await readdir(folder)).sort() : [];
  expect(present).toEqual([...names].sort());
  const incoming = join(server.dataDir, '.incoming');
  expect(existsSync(incoming) ? await readdir(incoming) : []).toEqual([]);
}

/** The connection still works: a complete upload right after gets its 1603. */
async function expectUsable(): Promise<void> {
  const payload = data(100);
  const r = await client.request(uploadPackets(me.id, 'after-error', me.aesKey, payload));
  expect(r.code).toBe(Reply.FILE_RECEIVED);
  expect(fileReceived(r).cksum).toBe(cksum(payload));
}

describe('§9 upload rules', () => {
  it('an out-of-order packet: one 1607, the rest of that upload is dropped without answers', async () => {
    const packets = uploadPackets(me.id, 'ooo.bin', me.aesKey, data(5000));
    expect(packets.length).toBe(5);
    // 1, 2, 4, 5: packet 3 is missing, so 4 is out of order and 5 continues the broken upload.
    await client.write([packets[0], packets[1], packets[3], packets[4]]);
    const r = await client.next();
    expect(r.bytes.toString('hex')).toBe(ERROR_1607);
    // Nothing else was answered: the next answer belongs to the next request.
    await expectUsable();
    expect(client.drainQueue()).toEqual([]);
    await expectStoredNames(['after-error']);
    expect(await server.store.findFile(me.id, 'ooo.bin')).toBeUndefined();
  });

  it('a packet whose repeated fields changed: 1607 and the upload is discarded', async () => {
    const payload = data(3000);
    const ct = encrypt(me.aesKey, payload);
    const f = { contentSize: ct.length, origSize: payload.length, total: 3, fileName: 'chg.bin' };
    const r = await client.request([
      sendFilePacket(me.id, { ...f, packet: 1 }, ct.subarray(0, 1024)),
      sendFilePacket(me.id, { ...f, fileName: 'other.bin', packet: 2 }, ct.subarray(1024, 2048)),
    ]);
    expect(r.bytes.toString('hex')).toBe(ERROR_1607);
    await expectUsable();
    await expectStoredNames(['after-error']);
  });

  it('packet k > 1 with no upload in progress: 1607', async () => {
    const packets = uploadPackets(me.id, 'late.bin', me.aesKey, data(3000));
    await client.write(packets.slice(1)); // 2 and 3 of 3: one answer for the attempt
    expect((await client.next()).bytes.toString('hex')).toBe(ERROR_1607);
    await expectUsable();
    expect(client.drainQueue()).toEqual([]);
  });

  it('packet 1 restarts an upload in progress (a re-send)', async () => {
    const payload = data(4000);
    const packets = uploadPackets(me.id, 'again.bin', me.aesKey, payload);
    const r = await client.request([packets[0], packets[1], ...packets]);
    expect(fileReceived(r).cksum).toBe(cksum(payload));
    expect(client.drainQueue()).toEqual([]);
    await expectStoredNames(['again.bin']);
  });

  it('content size that is not the PKCS#7 length of orig size: 1607', async () => {
    const cases = [
      { contentSize: 16, origSize: 16 }, // needs 32
      { contentSize: 20, origSize: 10 }, // not a multiple of 16
      { contentSize: 0, origSize: 0 }, // needs 16
      { contentSize: 48, origSize: 10 }, // too big
    ];
    for (const c of cases) {
      const r = await client.request(
        sendFilePacket(
          me.id,
          { ...c, packet: 1, total: 1, fileName: 'cs.bin' },
          Buffer.alloc(c.contentSize),
        ),
      );
      expect(r.bytes.toString('hex')).toBe(ERROR_1607);
    }
    await expectUsable();
    await expectStoredNames(['after-error']);
  });

  it('bad padding after decrypting (wrong key): 1607 at packet N, nothing stored', async () => {
    const r = await client.request(
      uploadPackets(me.id, 'pad.bin', Buffer.alloc(32, 9), data(3000)),
    );
    expect(r.bytes.toString('hex')).toBe(ERROR_1607);
    await expectUsable();
    await expectStoredNames(['after-error']);
    const audit = await server.store.listAudit();
    expect(audit.filter((e) => e.outcome === 'file_rejected').length).toBe(1);
  });

  it('fewer ciphertext bytes than content size by packet N: 1607', async () => {
    const payload = data(3000);
    const ct = encrypt(me.aesKey, payload);
    const f = { contentSize: ct.length, origSize: payload.length, total: 2, fileName: 'short.bin' };
    const r = await client.request([
      sendFilePacket(me.id, { ...f, packet: 1 }, ct.subarray(0, 1024)),
      sendFilePacket(me.id, { ...f, packet: 2 }, ct.subarray(1024, 2048)),
    ]);
    expect(r.bytes.toString('hex')).toBe(ERROR_1607);
    await expectUsable();
    await expectStoredNames(['after-error']);
  });

  it('packet number 0, total 0, packet over total: 1607 each', async () => {
    const f = { contentSize: 16, origSize: 1, fileName: 'num.bin' };
    for (const [packet, total] of [
      [0, 1],
      [1, 0],
      [3, 2],
    ]) {
      const r = await client.request(
        sendFilePacket(me.id, { ...f, packet, total }, Buffer.alloc(16)),
      );
      expect(r.bytes.toString('hex')).toBe(ERROR_1607);
    }
    await expectUsable();
  });
});

describe('§9 request rules', () => {
  it('an unknown code: 1607, the connection stays usable', async () => {
    const r = await client.request(frame(me.id, 1099, Buffer.alloc(10)));
    expect(r.bytes.toString('hex')).toBe(ERROR_1607);
    await expectUsable();
  });

  it('a wrong fixed payload size: 1607, the connection stays usable', async () => {
    // Sizes under the exact size; over it is over the code's limit (next tests).
    for (const [code, size] of [
      [Code.REGISTER, 254],
      [Code.RECONNECT, 0],
      [Code.PUBLIC_KEY, 255],
      [Code.CRC_OK, 1],
    ]) {
      const r = await client.request(frame(me.id, code, Buffer.alloc(size, 0x61)));
      expect(r.bytes.toString('hex')).toBe(ERROR_1607);
    }
    await expectUsable();
    expect((await server.store.listClients()).length).toBe(1);
  });

  it('a request from an unknown client id: 1607 for 1028 and 1029-1031', async () => {
    const stranger = Buffer.alloc(16, 0x5a);
    const r1 = await client.request(uploadPackets(stranger, 'x.bin', me.aesKey, data(3000)));
    expect(r1.bytes.toString('hex')).toBe(ERROR_1607);
    for (const code of [Code.CRC_OK, Code.CRC_RETRY, Code.CRC_ABORT] as const) {
      const r = await client.request(checksum(code, stranger, 'x.bin'));
      expect(r.bytes.toString('hex')).toBe(ERROR_1607);
    }
    await expectUsable();
    expect(existsSync(join(server.dataDir, stranger.toString('hex')))).toBe(false);
  });

  it('1029/1031 for a file the client never uploaded: 1607', async () => {
    for (const code of [Code.CRC_OK, Code.CRC_ABORT] as const) {
      const r = await client.request(checksum(code, me.id, 'never.bin'));
      expect(r.bytes.toString('hex')).toBe(ERROR_1607);
    }
    await expectUsable();
  });

  it('a payload size over the limit: 1607, then the server closes the connection', async () => {
    // 1025 declares 4 GiB - 1: refused as soon as the header is complete (no payload sent).
    await client.write(header(Buffer.alloc(16), Code.REGISTER, 0xffffffff));
    const answers = await client.untilClosed();
    expect(answers.map((r) => r.bytes.toString('hex'))).toEqual([ERROR_1607]);
    expect(client.leftover.length).toBe(0);
  });

  it('a fixed-size request declaring more than its size is over its limit: 1607, close', async () => {
    await client.write(frame(me.id, Code.RECONNECT, Buffer.alloc(256, 0x61)));
    const answers = await client.untilClosed();
    expect(answers.map((r) => r.bytes.toString('hex'))).toEqual([ERROR_1607]);
  });

  it('a 1028 over --max-chunk: answers before it still come, then 1607 and close', async () => {
    const big = 65552 + 267 + 1;
    await client.write([register('late-answer'), header(me.id, Code.SEND_FILE, big)]);
    const answers = await client.untilClosed();
    expect(answers.map((r) => r.code)).toEqual([Reply.REGISTERED, Reply.ERROR]);
  });

  it('any version byte is accepted and answered with version 3', async () => {
    const r = await client.request(frame(Buffer.alloc(16), Code.REGISTER, nameField('v7'), 7));
    expect(r.version).toBe(3);
    expect(r.code).toBe(Reply.REGISTERED);
  });

  it('requests split across many writes and many requests in one write are answered in order', async () => {
    const names = ['o1', 'o2', 'o3', 'o4'];
    const all = Buffer.concat(names.map((n) => register(n)));
    await client.writeSplit(all, () => 5);
    const codes = [];
    for (let i = 0; i < names.length; i++) codes.push((await client.next()).code);
    expect(codes).toEqual(names.map(() => Reply.REGISTERED));
    const ids = await Promise.all(names.map((n) => server.store.findClientByName(n)));
    expect(ids.every((c) => c !== undefined)).toBe(true);
  });
});
