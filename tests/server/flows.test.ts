/**
 * Every flow of docs/protocol.md §5 against a real server (SQLite + files in a temp data directory)
 * on loopback, through the byte-level test client: exact answers, then the database and the
 * file system after.
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cksum } from '../../shared/cksum';
import {
  Code,
  Reply,
  checksum,
  encrypt,
  fileReceived,
  nameField,
  reconnect,
  register,
  sendFilePacket,
  sendPublicKey,
  uploadPackets,
  type RawClient,
} from '../helpers/raw-client';
import {
  expectBytes,
  QueuedSources,
  registerWithKey,
  removeDir,
  startRealServer,
  testKeys,
  unwrapWith,
  type RealServer,
} from './harness';
import { patternBytes } from '../helpers/hardening-server';

const ID_A = Buffer.from('11112222333344445555666677778888', 'hex');
const ID_B = Buffer.from('aaaabbbbccccddddeeeeffff00001111', 'hex');
const KEY_1 = Buffer.alloc(32, 0x41);
const KEY_2 = Buffer.alloc(32, 0x42);
const KEY_3 = Buffer.alloc(32, 0x43);

/** Response header bytes: version 3, code, payload size (§1). */
function responseHeader(code: number, size: number): string {
  const h = Buffer.alloc(7);
  h[0] = 3;
  h.writeUInt16LE(code, 1);
  h.writeUInt32LE(size, 3);
  return h.toString('hex');
}

let server: RealServer;
let client: RawClient;
let sources: QueuedSources;

beforeEach(async () => {
  sources = new QueuedSources([ID_A, ID_B], [KEY_1, KEY_2, KEY_3]);
  server = await startRealServer({ sources });
  client = await server.connect();
});

afterEach(async () => {
  await server.close();
  await removeDir(server.dataDir);
});

async function storedFile(id: Buffer, name: string): Promise<Buffer> {
  return readFile(join(server.dataDir, id.toString('hex'), name));
}

async function upload(
  id: Buffer,
  aesKey: Buffer,
  name: string,
  data: Buffer,
  chunk = 1024,
): Promise<ReturnType<typeof fileReceived>> {
  const r = await client.request(uploadPackets(id, name, aesKey, data, chunk));
  expect(r.code).toBe(Reply.FILE_RECEIVED);
  return fileReceived(r);
}

describe('§5.1 register', () => {
  it('a free name gets 1600 with the new id; the client is stored without a key', async () => {
    const r = await client.request(register('alice'));
    expect(r.bytes.toString('hex')).toBe(responseHeader(1600, 16) + ID_A.toString('hex'));
    const row = await server.store.findClientById(ID_A);
    expect(row).toMatchObject({ name: 'alice', publicKey: null, aesKey: null });
    const audit = await server.store.listAudit();
    expect(audit.map((e) => [e.requestCode, e.outcome, e.name])).toEqual([
      [1025, 'registered', 'alice'],
    ]);
    expect(audit[0].remoteAddress).toBe('127.0.0.1');
  });

  it('the header id of a 1025 is ignored: zeros, ASCII zeros or anything', async () => {
    const r = await client.request(register('bob', Buffer.from('0'.repeat(16))));
    expect(r.code).toBe(Reply.REGISTERED);
    expect(r.payload).toEqual(ID_A);
  });

  it('a name owned by a client with a key gets 1601', async () => {
    await registerWithKey(client, 'alice');
    const r = await client.request(register('alice'));
    expect(r.bytes.toString('hex')).toBe(responseHeader(1601, 0));
    expect((await server.store.listClients()).length).toBe(1);
    const outcomes = (await server.store.listAudit()).map((e) => e.outcome);
    expect(outcomes).toEqual(['registered', 'key_set', 'name_taken']);
  });

  it('a keyless record of the name is replaced: new id, old row and folder gone', async () => {
    expect((await client.request(register('carol'))).payload).toEqual(ID_A);
    const oldFolder = join(server.dataDir, ID_A.toString('hex'));
    await mkdir(oldFolder);
    await writeFile(join(oldFolder, 'left-over'), 'x');
    const r = await client.request(register('carol'));
    expect(r.code).toBe(Reply.REGISTERED);
    expect(r.payload).toEqual(ID_B);
    expect(await server.store.findClientById(ID_A)).toBeUndefined();
    expect(await server.store.findClientById(ID_B)).toMatchObject({ name: 'carol' });
    expect(existsSync(oldFolder)).toBe(false);
  });

  it('an invalid name (no NUL, empty, control characters) gets 1601', async () => {
    for (const field of [
      Buffer.alloc(255, 0x61), // 255 letters, no terminating NUL
      Buffer.alloc(255), // empty text
      nameField(Buffer.from('bad\x01name')),
    ]) {
      const r = await client.request(Buffer.concat([header1025(), field]));
      expect(r.bytes.toString('hex')).toBe(responseHeader(1601, 0));
    }
    expect(await server.store.listClients()).toEqual([]);
    const outcomes = (await server.store.listAudit()).map((e) => e.outcome);
    expect(outcomes).toEqual(['invalid_name', 'invalid_name', 'invalid_name']);
  });
});

function header1025(): Buffer {
  const h = Buffer.alloc(23);
  h[16] = 3;
  h.writeUInt16LE(1025, 17);
  h.writeUInt32LE(255, 19);
  return h;
}

describe('§5.2 key exchange', () => {
  it('1026 stores the key and answers 1602 with the new AES key wrapped for it', async () => {
    const keys = testKeys();
    await client.request(register('dave'));
    const r = await client.request(sendPublicKey(ID_A, 'dave', keys.publicKeyDer));
    expect(r.code).toBe(Reply.KEY_ACCEPTED);
    expect(r.payloadSize).toBe(144);
    expect(r.bytes.subarray(0, 7).toString('hex')).toBe(responseHeader(1602, 144));
    expect(r.payload.subarray(0, 16)).toEqual(ID_A);
    expect(unwrapWith(keys, r.payload.subarray(16))).toEqual(KEY_1);
    const row = await server.store.findClientById(ID_A);
    expect(row?.publicKey).toEqual(keys.publicKeyDer);
    expect(row?.aesKey).toEqual(KEY_1);
  });

  it('an unknown id gets 1601', async () => {
    const r = await client.request(sendPublicKey(ID_B, 'dave', testKeys().publicKeyDer));
    expect(r.bytes.toString('hex')).toBe(responseHeader(1601, 0));
    const audit = await server.store.listAudit();
    expect(audit.map((e) => e.outcome)).toEqual(['unknown_client']);
  });

  it('a name that is not the name of the id gets 1601, and the key is not stored', async () => {
    await client.request(register('erin'));
    const r = await client.request(sendPublicKey(ID_A, 'mallory', testKeys().publicKeyDer));
    expect(r.code).toBe(Reply.REGISTRATION_FAILED);
    expect((await server.store.findClientById(ID_A))?.publicKey).toBeNull();
  });

  it('a second key for the same client gets 1601 and the first key stays', async () => {
    const first = await registerWithKey(client, 'frank', testKeys(0));
    const r = await client.request(sendPublicKey(first.id, 'frank', testKeys(1).publicKeyDer));
    expect(r.code).toBe(Reply.REGISTRATION_FAILED);
    const row = await server.store.findClientById(first.id);
    expect(row?.publicKey).toEqual(testKeys(0).publicKeyDer);
    expect(row?.aesKey).toEqual(KEY_1);
  });

  it('an invalid key (garbage, bytes after the DER, 512 bits, e = 1, cut) gets 1601', async () => {
    await client.request(register('gina'));
    const der = testKeys().publicKeyDer;
    const small = generateKeyPairSync('rsa', {
      modulusLength: 512,
      publicExponent: 17,
    }).publicKey.export({ type: 'spki', format: 'der' });
    const trailing = Buffer.alloc(160);
    small.copy(trailing);
    trailing[159] = 1;
    const exponentOne = Buffer.from(der);
    exponentOne[159] = 1; // the last DER byte is the exponent (17 → 1)
    const garbage = Buffer.alloc(160, 0x30);
    const fields = [garbage, trailing, small, exponentOne, der.subarray(0, 100)];
    for (const field of fields) {
      const r = await client.request(sendPublicKey(ID_A, 'gina', field));
      expect(r.code).toBe(Reply.REGISTRATION_FAILED);
    }
    expect((await server.store.findClientById(ID_A))?.publicKey).toBeNull();
    const outcomes = (await server.store.listAudit()).map((e) => e.outcome);
    expect(outcomes).toEqual(['registered', ...fields.map(() => 'key_rejected')]);
  });
});

describe('§5.3 reconnect', () => {
  it('id and name of a client with a key: 1605 with a new AES key, stored', async () => {
    const me = await registerWithKey(client, 'hank');
    const r = await client.request(reconnect(me.id, 'hank'));
    expect(r.bytes.subarray(0, 7).toString('hex')).toBe(responseHeader(1605, 144));
    expect(r.payload.subarray(0, 16)).toEqual(me.id);
    expect(unwrapWith(me.keys, r.payload.subarray(16))).toEqual(KEY_2);
    expect((await server.store.findClientById(me.id))?.aesKey).toEqual(KEY_2);
  });

  it('an unknown id gets 1606 echoing the id', async () => {
    const r = await client.request(reconnect(ID_B, 'ivan'));
    expect(r.bytes.toString('hex')).toBe(responseHeader(1606, 16) + ID_B.toString('hex'));
    expect((await server.store.listAudit()).map((e) => e.outcome)).toEqual(['unknown_client']);
  });

  it('a wrong name gets 1606 and the key is unchanged', async () => {
    const me = await registerWithKey(client, 'judy');
    const r = await client.request(reconnect(me.id, 'not-judy'));
    expect(r.bytes.toString('hex')).toBe(responseHeader(1606, 16) + me.id.toString('hex'));
    expect((await server.store.findClientById(me.id))?.aesKey).toEqual(KEY_1);
  });

  it('a client that never sent a key gets 1606', async () => {
    await client.request(register('kate'));
    const r = await client.request(reconnect(ID_A, 'kate'));
    expect(r.code).toBe(Reply.RECONNECT_REFUSED);
    expect(r.payload).toEqual(ID_A);
  });
});

describe('§5.4 upload and §5.5 confirm', () => {
  it('one packet: 1603 with the request content size, name and the plaintext cksum', async () => {
    const me = await registerWithKey(client, 'leo');
    const data = Buffer.from('hello, world\n');
    const got = await upload(me.id, me.aesKey, 'hello.txt', data);
    expect(got).toEqual({
      clientId: me.id,
      contentSize: 16,
      fileName: 'hello.txt',
      cksum: cksum(data),
    });
    expectBytes(await storedFile(me.id, 'hello.txt'), data);
    expect(await server.store.findFile(me.id, 'hello.txt')).toMatchObject({
      objectKey: `${me.id.toString('hex')}/hello.txt`,
      verified: false,
      size: data.length,
    });
  });

  it('the 1603 bytes are exact', async () => {
    const me = await registerWithKey(client, 'mia');
    const data = Buffer.from('123456789');
    const r = await client.request(uploadPackets(me.id, 'n.txt', me.aesKey, data));
    const want = Buffer.alloc(7 + 279);
    Buffer.from(responseHeader(1603, 279), 'hex').copy(want);
    me.id.copy(want, 7);
    want.writeUInt32LE(16, 23);
    want.write('n.txt', 27);
    want.writeUInt32LE(930766865, 7 + 275);
    expect(r.bytes).toEqual(want);
  });

  it('many packets, a packet size that is not a multiple of 16, then 1029 → 1604 and verified', async () => {
    const me = await registerWithKey(client, 'nick');
    const data = patternBytes(50_000, 1);
    const got = await upload(me.id, me.aesKey, 'big.bin', data, 777);
    expect(got.cksum).toBe(cksum(data));
    expect(got.contentSize).toBe(50_016);
    const ack = await client.request(checksum(Code.CRC_OK, me.id, 'big.bin'));
    expect(ack.bytes.toString('hex')).toBe(responseHeader(1604, 16) + me.id.toString('hex'));
    expectBytes(await storedFile(me.id, 'big.bin'), data);
    expect(await server.store.findFile(me.id, 'big.bin')).toMatchObject({ verified: true });
    const outcomes = (await server.store.listAudit()).map((e) => e.outcome);
    expect(outcomes.slice(-2)).toEqual(['file_stored', 'checksum_ok']);
  });

  it('packets padded past content size (client-b style): the padding is dropped', async () => {
    const me = await registerWithKey(client, 'olga');
    const data = patternBytes(70_000, 2);
    const ct = encrypt(me.aesKey, data);
    const chunk = 65269;
    const packets = [0, 1].map((i) => {
      const content = Buffer.alloc(chunk);
      ct.subarray(i * chunk, (i + 1) * chunk).copy(content);
      return sendFilePacket(
        me.id,
        {
          contentSize: ct.length,
          origSize: data.length,
          packet: i + 1,
          total: 2,
          fileName: 'p.bin',
        },
        content,
      );
    });
    const r = await client.request(packets);
    expect(fileReceived(r)).toMatchObject({ contentSize: ct.length, cksum: cksum(data) });
    expectBytes(await storedFile(me.id, 'p.bin'), data);
  });

  it('an empty last packet (client-a style) is accepted', async () => {
    const me = await registerWithKey(client, 'pete');
    const data = patternBytes(2032, 3); // ciphertext exactly 2048 bytes
    const ct = encrypt(me.aesKey, data);
    const fields = { contentSize: 2048, origSize: 2032, total: 3, fileName: 'e.bin' };
    const r = await client.request([
      sendFilePacket(me.id, { ...fields, packet: 1 }, ct.subarray(0, 1024)),
      sendFilePacket(me.id, { ...fields, packet: 2 }, ct.subarray(1024)),
      sendFilePacket(me.id, { ...fields, packet: 3 }, Buffer.alloc(0)),
    ]);
    expect(fileReceived(r).cksum).toBe(cksum(data));
    expectBytes(await storedFile(me.id, 'e.bin'), data);
  });

  it('an empty file: 16 bytes of padding, cksum of nothing', async () => {
    const me = await registerWithKey(client, 'quinn');
    const got = await upload(me.id, me.aesKey, 'empty', Buffer.alloc(0));
    expect(got).toMatchObject({ contentSize: 16, cksum: 4294967295 });
    expect(await storedFile(me.id, 'empty')).toEqual(Buffer.alloc(0));
  });

  it('1030 gets no answer; the re-send restarts the upload; 1029 then verifies it', async () => {
    const me = await registerWithKey(client, 'rita');
    const data = patternBytes(5000, 4);
    await upload(me.id, me.aesKey, 'r.bin', data);
    await client.write(checksum(Code.CRC_RETRY, me.id, 'r.bin'));
    // The next answer on the connection is the re-sent upload's 1603: 1030 had none.
    const again = await upload(me.id, me.aesKey, 'r.bin', data);
    expect(again.cksum).toBe(cksum(data));
    const ack = await client.request(checksum(Code.CRC_OK, me.id, 'r.bin'));
    expect(ack.code).toBe(Reply.ACK);
    expect(await server.store.findFile(me.id, 'r.bin')).toMatchObject({ verified: true });
    const outcomes = (await server.store.listAudit()).map((e) => e.outcome);
    expect(outcomes.slice(-4)).toEqual([
      'file_stored',
      'checksum_retry',
      'file_stored',
      'checksum_ok',
    ]);
  });

  it('1031 marks the file failed and removes its bytes; 1604', async () => {
    const me = await registerWithKey(client, 'sam');
    await upload(me.id, me.aesKey, 's.bin', patternBytes(3000, 5));
    const ack = await client.request(checksum(Code.CRC_ABORT, me.id, 's.bin'));
    expect(ack.bytes.toString('hex')).toBe(responseHeader(1604, 16) + me.id.toString('hex'));
    expect(existsSync(join(server.dataDir, me.id.toString('hex'), 's.bin'))).toBe(false);
    expect(await server.store.findFile(me.id, 's.bin')).toMatchObject({
      verified: false,
      status: 'failed',
    });
    const outcomes = (await server.store.listAudit()).map((e) => e.outcome);
    expect(outcomes.at(-1)).toBe('checksum_failed');
  });

  it('several uploads on one connection, and a new upload replaces the old file', async () => {
    const me = await registerWithKey(client, 'tina');
    await upload(me.id, me.aesKey, 'one', patternBytes(100, 6));
    await upload(me.id, me.aesKey, 'two', patternBytes(2000, 7));
    const newer = patternBytes(300, 8);
    await upload(me.id, me.aesKey, 'one', newer);
    expectBytes(await storedFile(me.id, 'one'), newer);
    expect((await readdir(join(server.dataDir, me.id.toString('hex')))).sort()).toEqual([
      'one',
      'two',
    ]);
    expect(await server.store.findFile(me.id, 'one')).toMatchObject({ size: 300 });
  });

  it('a reconnected client uploads with its new key', async () => {
    const me = await registerWithKey(client, 'uma');
    const r = await client.request(reconnect(me.id, 'uma'));
    const newKey = unwrapWith(me.keys, r.payload.subarray(16));
    const data = patternBytes(1500, 9);
    expect((await upload(me.id, newKey, 'after', data)).cksum).toBe(cksum(data));
  });

  it('LastSeen moves forward on requests of a known client', async () => {
    const me = await registerWithKey(client, 'vic');
    const before = (await server.store.findClientById(me.id))?.lastSeen ?? 0;
    sources.time += 60_000;
    await upload(me.id, me.aesKey, 'v', Buffer.from('v'));
    await client.request(checksum(Code.CRC_OK, me.id, 'v'));
    await server.daemon.store.flush();
    const after = (await server.store.findClientById(me.id))?.lastSeen ?? 0;
    expect(after).toBe(before + 60_000);
  });

  it('a 1028 from a client that never sent a key gets 1607', async () => {
    await client.request(register('walt'));
    const r = await client.request(uploadPackets(ID_A, 'w', KEY_1, Buffer.from('w')));
    expect(r.code).toBe(Reply.ERROR);
    expect(existsSync(join(server.dataDir, ID_A.toString('hex'), 'w'))).toBe(false);
  });
});
