/**
 * The v4 server's answers to each kind of request, right and wrong (docs/protocol-v4.md §4–§6),
 * through a real listener and TLS, with bare frames from a test peer.
 */
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';

import { type Backends } from '../../server/storage/open-backends';
import { type SftServer } from '../../server/transport/listener';
import {
  encodeFrameHeader,
  IdentityStatus,
  migrationStatement,
  RequestCode,
  ResponseCode,
  WireErrorCode,
  type Response,
} from '../../protocol/v4';
import { generateIdentityKey, issueCertificate, type Identity } from '../../shared/identity';
import { removeDirs, tempDir } from './helpers';
import { startMemoryServer } from './memory-server';
import { connectRaw, rawTcp, type RawV4 } from './raw-v4';

const sources = { now: Date.now, random: randomBytes };
const sha = (data: Buffer): Buffer => createHash('sha256').update(data).digest();
const hello = { code: RequestCode.HELLO, version: 4, maxChunk: 65536 } as const;

async function newIdentity(): Promise<Identity> {
  return issueCertificate(await generateIdentityKey(), 'test', sources);
}

function expectError(response: Response, error: number, fatal = false): void {
  expect(response.code).toBe(ResponseCode.ERROR);
  if (response.code !== ResponseCode.ERROR) return;
  expect({ error: response.error, fatal: response.fatal }).toEqual({ error, fatal });
}

describe('v4 server session', () => {
  let dir: string;
  let backends: Backends;
  let server: SftServer;
  let port: number;
  const peers: RawV4[] = [];

  async function start(v3 = true): Promise<void> {
    dir = await tempDir('session');
    ({ server, backends, port } = await startMemoryServer(dir, {
      server: {
        limits: {
          maxFileSize: 100_000,
          quota: 150_000,
          registerRate: { perSecond: 0.01, burst: 4 },
        },
        v3,
      },
    }));
  }

  async function peer(identity?: Identity): Promise<RawV4> {
    const p = await connectRaw(port, identity);
    peers.push(p);
    return p;
  }

  async function registered(
    name: string,
  ): Promise<{ peer: RawV4; id: Buffer; identity: Identity }> {
    const identity = await newIdentity();
    const p = await peer(identity);
    p.send(hello);
    expect((await p.next()).code).toBe(ResponseCode.WELCOME);
    p.send({ code: RequestCode.REGISTER, name });
    const answer = await p.next();
    if (answer.code !== ResponseCode.REGISTERED) throw new Error(`not registered: ${answer.code}`);
    return { peer: p, id: answer.clientId, identity };
  }

  beforeEach(() => start());
  afterEach(async () => {
    for (const p of peers.splice(0)) p.close();
    await server.close(0);
    await backends.close();
    await removeDirs(dir);
  });

  it('wants HELLO first, version 4, and a sane chunk size', async () => {
    const first = await peer(await newIdentity());
    first.send({ code: RequestCode.REGISTER, name: 'x' });
    expectError(await first.next(), WireErrorCode.UNEXPECTED, true);
    await first.closed;
    const old = await peer();
    old.send({ ...hello, version: 3 });
    expectError(await old.next(), WireErrorCode.UNSUPPORTED_VERSION, true);
    const tiny = await peer();
    tiny.send({ ...hello, maxChunk: 100 });
    expectError(await tiny.next(), WireErrorCode.BAD_MESSAGE, true);
  });

  it('negotiates the chunk size down to 1 MiB', async () => {
    const p = await peer();
    p.send({ ...hello, maxChunk: 8 << 20 });
    const welcome = await p.next();
    expect(welcome).toMatchObject({ code: ResponseCode.WELCOME, chunkSize: 1 << 20, status: 0 });
  });

  it('registers by certificate, knows it again, and refuses what is not allowed', async () => {
    const noCert = await peer();
    noCert.send(hello);
    await noCert.next();
    noCert.send({ code: RequestCode.REGISTER, name: 'anon' });
    expectError(await noCert.next(), WireErrorCode.NOT_AUTHENTICATED);

    const { peer: p, id, identity } = await registered('alice');
    expect(id[0]).not.toBe(0x16);
    p.send({ code: RequestCode.REGISTER, name: 'alice2' });
    expectError(await p.next(), WireErrorCode.ALREADY_REGISTERED);

    const again = await peer(identity);
    again.send(hello);
    expect(await again.next()).toMatchObject({
      code: ResponseCode.WELCOME,
      status: IdentityStatus.KNOWN,
      clientId: id,
      name: 'alice',
    });

    const other = await peer(await newIdentity());
    other.send(hello);
    await other.next();
    other.send({ code: RequestCode.REGISTER, name: 'alice' });
    expectError(await other.next(), WireErrorCode.NAME_TAKEN);
    other.send({ code: RequestCode.REGISTER, name: 'x'.repeat(255) });
    expectError(await other.next(), WireErrorCode.INVALID_NAME);
  });

  it('limits the rate of registrations per address', async () => {
    const outcomes: number[] = [];
    for (let i = 0; i < 6; i++) {
      const p = await peer(await newIdentity());
      p.send(hello);
      await p.next();
      p.send({ code: RequestCode.REGISTER, name: `r${i}` });
      const answer = await p.next();
      outcomes.push(answer.code === ResponseCode.ERROR ? answer.error : 0);
    }
    expect(outcomes.filter((o) => o === WireErrorCode.RATE_LIMITED).length).toBeGreaterThan(0);
  });

  it('stores a verified upload, empty files too, and answers its SHA-256', async () => {
    const { peer: p, id } = await registered('bob');
    const data = randomBytes(70_000);
    p.send({
      code: RequestCode.UPLOAD_BEGIN,
      fileName: 'a.bin',
      size: data.length,
      check: sha(data),
    });
    expect(await p.next()).toEqual({ code: ResponseCode.UPLOAD_OFFSET, offset: 0 });
    p.send({ code: RequestCode.UPLOAD_DATA, data: data.subarray(0, 65536) });
    p.send({ code: RequestCode.UPLOAD_DATA, data: data.subarray(65536) });
    p.send({ code: RequestCode.UPLOAD_END, sha256: sha(data) });
    expect(await p.next()).toMatchObject({
      code: ResponseCode.STORED,
      size: data.length,
      sha256: sha(data),
    });
    expect(await backends.catalog.findFile(id, 'a.bin')).toMatchObject({
      status: 'verified',
      size: 70_000,
    });

    p.send({
      code: RequestCode.UPLOAD_BEGIN,
      fileName: 'empty',
      size: 0,
      check: sha(Buffer.alloc(0)),
    });
    expect(await p.next()).toEqual({ code: ResponseCode.UPLOAD_OFFSET, offset: 0 });
    p.send({ code: RequestCode.UPLOAD_END, sha256: sha(Buffer.alloc(0)) });
    expect(await p.next()).toMatchObject({ code: ResponseCode.STORED, size: 0 });
  });

  it('refuses uploads that break the rules with coded errors, storing nothing', async () => {
    const { peer: p, id } = await registered('carl');
    const check = Buffer.alloc(32);
    p.send({ code: RequestCode.UPLOAD_DATA, data: Buffer.from('x') });
    expectError(await p.next(), WireErrorCode.UNEXPECTED);
    p.send({ code: RequestCode.UPLOAD_BEGIN, fileName: 'big', size: 100_001, check });
    expectError(await p.next(), WireErrorCode.FILE_TOO_LARGE);

    p.send({ code: RequestCode.UPLOAD_BEGIN, fileName: 'f', size: 10, check });
    await p.next();
    p.send({ code: RequestCode.UPLOAD_DATA, data: Buffer.alloc(11) });
    expectError(await p.next(), WireErrorCode.SIZE_MISMATCH);

    p.send({ code: RequestCode.UPLOAD_BEGIN, fileName: 'f', size: 10, check });
    await p.next();
    p.send({ code: RequestCode.UPLOAD_DATA, data: Buffer.alloc(5) });
    p.send({ code: RequestCode.UPLOAD_END, sha256: sha(Buffer.alloc(10)) });
    expectError(await p.next(), WireErrorCode.SIZE_MISMATCH);

    p.send({ code: RequestCode.UPLOAD_BEGIN, fileName: 'f', size: 10, check });
    expect(await p.next()).toEqual({ code: ResponseCode.UPLOAD_OFFSET, offset: 0 });
    p.send({ code: RequestCode.UPLOAD_DATA, data: Buffer.alloc(10, 1) });
    p.send({ code: RequestCode.UPLOAD_END, sha256: sha(Buffer.alloc(10, 2)) });
    expectError(await p.next(), WireErrorCode.DIGEST_MISMATCH);
    expect(await backends.catalog.findFile(id, 'f')).toBeUndefined();

    // The connection is still usable after every one of those.
    p.send({ code: RequestCode.UPLOAD_BEGIN, fileName: 'f', size: 1, check });
    expect(await p.next()).toEqual({ code: ResponseCode.UPLOAD_OFFSET, offset: 0 });
  });

  it('applies the quota, counting uploads in flight, and one upload per name at a time', async () => {
    const { peer: a, identity } = await registered('dana');
    const b = await peer(identity);
    b.send(hello);
    await b.next();
    const check = Buffer.alloc(32);
    a.send({ code: RequestCode.UPLOAD_BEGIN, fileName: 'one', size: 90_000, check });
    await a.next();
    b.send({ code: RequestCode.UPLOAD_BEGIN, fileName: 'one', size: 10, check });
    expectError(await b.next(), WireErrorCode.BUSY);
    b.send({ code: RequestCode.UPLOAD_BEGIN, fileName: 'two', size: 90_000, check });
    expectError(await b.next(), WireErrorCode.QUOTA_EXCEEDED);
  });

  it('closes on a frame over its limit or an unknown code', async () => {
    const p = await peer();
    p.send(hello);
    await p.next();
    p.sendBytes(encodeFrameHeader(RequestCode.UPLOAD_DATA, 65537));
    expectError(await p.next(), WireErrorCode.FRAMING, true);
    await p.closed;
    const q = await peer();
    q.sendBytes(Buffer.from('7777' + '00000000', 'hex'));
    expectError(await q.next(), WireErrorCode.FRAMING, true);
    await q.closed;
  });

  it('moves a v3 client with a signature bound to the channel, and only once', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024, publicExponent: 17 });
    const spki = rsa.publicKey.export({ type: 'spki', format: 'der' });
    const id = Buffer.from('11'.repeat(16), 'hex');
    expect((await backends.catalog.registerClient(id, 'old', Date.now())).ok).toBe(true);
    expect(await backends.catalog.setPublicKey(id, spki, randomBytes(32), Date.now())).toBe(true);

    const identity = await newIdentity();
    const p = await peer(identity);
    p.send(hello);
    const welcome = await p.next();
    if (welcome.code !== ResponseCode.WELCOME) throw new Error('no WELCOME');
    const statement = (exporter: Buffer): Buffer =>
      migrationStatement(exporter, welcome.challenge, id, 'old', identity.fingerprint);
    // Signed for another channel: refused.
    const elsewhere = sign('sha256', statement(randomBytes(32)), rsa.privateKey);
    p.send({ code: RequestCode.MIGRATE, clientId: id, name: 'old', signature: elsewhere });
    expectError(await p.next(), WireErrorCode.MIGRATION_REFUSED);
    const good = sign('sha256', statement(p.exporter()), rsa.privateKey);
    p.send({ code: RequestCode.MIGRATE, clientId: id, name: 'old', signature: good });
    expect(await p.next()).toEqual({ code: ResponseCode.REGISTERED, clientId: id });

    const second = await newIdentity();
    const q = await peer(second);
    q.send(hello);
    const w2 = await q.next();
    if (w2.code !== ResponseCode.WELCOME) throw new Error('no WELCOME');
    const sig = sign(
      'sha256',
      migrationStatement(q.exporter(), w2.challenge, id, 'old', second.fingerprint),
      rsa.privateKey,
    );
    q.send({ code: RequestCode.MIGRATE, clientId: id, name: 'old', signature: sig });
    expectError(await q.next(), WireErrorCode.MIGRATION_REFUSED);
  });

  it('keeps v3 on the same port, and closes it with --v3 off', async () => {
    const v3register = Buffer.concat([
      Buffer.alloc(16),
      Buffer.from([3, 0x01, 0x04, 0xff, 0x00, 0x00, 0x00]),
      Buffer.concat([Buffer.from('v3 client\0'), Buffer.alloc(255 - 10)]),
    ]);
    const answer = await rawTcp(port, v3register);
    expect(answer.readUInt16LE(1)).toBe(1600);
    await server.close(0);
    await backends.close();
    await removeDirs(dir);
    await start(false);
    expect((await rawTcp(port, v3register)).length).toBe(0);
    const p = await peer();
    p.send(hello);
    expect((await p.next()).code).toBe(ResponseCode.WELCOME);
  });
});
