/**
 * The v4 server's answers to the file and key-set requests, right and wrong
 * (docs/protocol-v4.md §4.8–§4.14, §5.6–§5.8), through a real listener and TLS with bare frames.
 */
import { createHash, randomBytes } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';
import {
  FileFlag,
  RequestCode,
  ResponseCode,
  WireErrorCode,
  type Response,
} from '../../protocol/v4';
import { checkKeySet } from '../../client/v4/key-rotation';
import { type Backends } from '../../server/storage/open-backends';
import { liveKey } from '../../server/storage/object-keys';
import { type SftServer } from '../../server/transport/listener';
import { generateIdentityKey, issueCertificate } from '../../shared/identity';
import { removeDirs, tempDir } from './helpers';
import { startMemoryServer } from './memory-server';
import { connectRaw, type RawV4 } from './raw-v4';

const CHUNK = 65536;
const hello = { code: RequestCode.HELLO, version: 4, maxChunk: CHUNK } as const;
const sha = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

function errorOf(response: Response): number | undefined {
  return response.code === ResponseCode.ERROR ? response.error : undefined;
}

describe('v4 server: files and key set', () => {
  let dir: string;
  let backends: Backends;
  let server: SftServer;
  let port: number;
  let fingerprint: string;
  const peers: RawV4[] = [];

  beforeEach(async () => {
    dir = await tempDir('files');
    let identity;
    ({ server, backends, port, identity } = await startMemoryServer(dir, {
      server: { limits: { maxFileSize: 10_000_000, quota: 50_000_000 } },
      files: true,
    }));
    fingerprint = identity.fingerprint;
  });
  afterEach(async () => {
    for (const p of peers.splice(0)) p.close();
    await server.close(0);
    await backends.close();
    await removeDirs(dir);
  });

  async function client(name?: string): Promise<{ peer: RawV4; id: Buffer | undefined }> {
    const identity = await issueCertificate(await generateIdentityKey(), 'test', {
      now: Date.now,
      random: randomBytes,
    });
    const peer = await connectRaw(port, identity);
    peers.push(peer);
    peer.send(hello);
    expect((await peer.next()).code).toBe(ResponseCode.WELCOME);
    if (name === undefined) return { peer, id: undefined };
    peer.send({ code: RequestCode.REGISTER, name });
    const answer = await peer.next();
    if (answer.code !== ResponseCode.REGISTERED) throw new Error('not registered');
    return { peer, id: answer.clientId };
  }

  async function upload(peer: RawV4, fileName: string, data: Buffer, deflate: boolean, flags = 0) {
    const check = randomBytes(32);
    peer.send(
      flags === 0
        ? { code: RequestCode.UPLOAD_BEGIN, fileName, size: data.length, check }
        : { code: RequestCode.UPLOAD_BEGIN_FLAGS, fileName, size: data.length, check, flags },
    );
    expect((await peer.next()).code).toBe(ResponseCode.UPLOAD_OFFSET);
    for (let at = 0; at < data.length; at += CHUNK) {
      const chunk = data.subarray(at, at + CHUNK);
      // Every other chunk deflated: both kinds may alternate in one upload.
      if (deflate && (at / CHUNK) % 2 === 0) {
        peer.send({ code: RequestCode.UPLOAD_DATA_DEFLATE, data: deflateRawSync(chunk) });
      } else {
        peer.send({ code: RequestCode.UPLOAD_DATA, data: chunk });
      }
    }
    peer.send({ code: RequestCode.UPLOAD_END, sha256: sha(data) });
    return peer.next();
  }

  it('refuses file requests before the client is bound, and READ without GET', async () => {
    const { peer } = await client();
    for (const request of [
      { code: RequestCode.LIST, start: 0 } as const,
      { code: RequestCode.GET, fileName: 'a', offset: 0 } as const,
      { code: RequestCode.DELETE, fileName: 'a' } as const,
      { code: RequestCode.READ } as const,
    ]) {
      peer.send(request);
      expect(errorOf(await peer.next())).toBe(WireErrorCode.NOT_AUTHENTICATED);
    }
    const bound = (await client('reader')).peer;
    bound.send({ code: RequestCode.READ });
    expect(errorOf(await bound.next())).toBe(WireErrorCode.UNEXPECTED);
    bound.send({ code: RequestCode.GET, fileName: 'nothing', offset: 0 });
    expect(errorOf(await bound.next())).toBe(WireErrorCode.NOT_FOUND);
  });

  it('stores deflated chunks as the original bytes, lists them, serves pipelined READs from an offset', async () => {
    const { peer, id } = await client('writer');
    const data = Buffer.from('abcdefgh'.repeat(40_000));
    const stored = await upload(peer, 'text.txt', data, true);
    expect(stored).toMatchObject({ code: ResponseCode.STORED, size: data.length });
    const onDisk = await backends.bytes.read(liveKey((id as Buffer).toString('hex'), 'text.txt'));
    const parts: Buffer[] = [];
    for await (const part of onDisk as AsyncIterable<Buffer>) parts.push(part);
    expect(Buffer.concat(parts).equals(data)).toBe(true);

    peer.send({ code: RequestCode.LIST, start: 0 });
    const list = await peer.next();
    expect(list).toMatchObject({ code: ResponseCode.FILE_LIST, total: 1 });
    if (list.code !== ResponseCode.FILE_LIST) return;
    expect(list.files[0]?.sha256.equals(sha(data))).toBe(true);
    expect(list.files[0]?.flags).toBe(FileFlag.VERIFIED | FileFlag.COMPRESSED);

    peer.send({ code: RequestCode.GET, fileName: 'text.txt', offset: data.length + 1 });
    expect(errorOf(await peer.next())).toBe(WireErrorCode.SIZE_MISMATCH);
    const offset = 100_000;
    peer.send({ code: RequestCode.GET, fileName: 'text.txt', offset });
    expect(await peer.next()).toMatchObject({ code: ResponseCode.FILE_INFO, size: data.length });
    const reads = Math.ceil((data.length - offset) / CHUNK);
    for (let i = 0; i < reads; i++) peer.send({ code: RequestCode.READ });
    const got: Buffer[] = [];
    for (let i = 0; i < reads; i++) {
      const answer = await peer.next();
      if (answer.code !== ResponseCode.FILE_DATA) throw new Error(`answer ${answer.code}`);
      expect(answer.data.length).toBe(Math.min(CHUNK, data.length - offset - i * CHUNK));
      got.push(answer.data);
    }
    expect(Buffer.concat(got).equals(data.subarray(offset))).toBe(true);
    peer.send({ code: RequestCode.READ });
    expect(errorOf(await peer.next())).toBe(WireErrorCode.UNEXPECTED);
  });

  it("pages one listing from one snapshot of the client's own rows, read once per listing", async () => {
    const { peer: other } = await client('other');
    for (let i = 0; i < 3; i++) {
      expect((await upload(other, `theirs-${i}`, Buffer.from('x'), false)).code).toBe(
        ResponseCode.STORED,
      );
    }
    const { peer, id } = await client('lister');
    const names = Array.from({ length: 70 }, (_, i) => `f${String(i).padStart(2, '0')}`);
    for (const name of names) {
      expect((await upload(peer, name, Buffer.from(name), false)).code).toBe(ResponseCode.STORED);
    }
    const reads = jest.spyOn(backends.catalog, 'listFiles');
    const page = async (start: number) => {
      peer.send({ code: RequestCode.LIST, start });
      const answer = await peer.next();
      if (answer.code !== ResponseCode.FILE_LIST) throw new Error(`answer ${answer.code}`);
      return answer;
    };
    const first = await page(0);
    expect(first.total).toBe(70);
    // Deleted after the listing began: the later pages are still those of its snapshot.
    peer.send({ code: RequestCode.DELETE, fileName: first.files[0]?.fileName ?? '' });
    expect((await peer.next()).code).toBe(ResponseCode.DELETED);
    const second = await page(32);
    const third = await page(64);
    const listed = [first, second, third].flatMap((p) => p.files.map((f) => f.fileName));
    expect([second.total, third.total]).toEqual([70, 70]);
    expect([...listed].sort()).toEqual(names);
    expect(listed).toHaveLength(70);
    expect(reads).toHaveBeenCalledTimes(1);
    expect(reads).toHaveBeenCalledWith(id);

    // The last page let the snapshot go: any page now reads afresh and sees the deletion;
    // the other client's rows are never read for this one.
    expect((await page(32)).total).toBe(69);
    expect(reads).toHaveBeenCalledTimes(2);
    expect((await page(0)).total).toBe(69);
    expect(reads).toHaveBeenCalledTimes(3);
    expect(reads.mock.calls.every(([who]) => who?.equals(id as Buffer))).toBe(true);
    reads.mockRestore();
  });

  it('ends an upload whose deflated chunk does not inflate, or inflates past the chunk size', async () => {
    const { peer } = await client('bomber');
    for (const bad of [Buffer.from([1, 2, 3, 4]), deflateRawSync(Buffer.alloc(CHUNK * 4))]) {
      peer.send({
        code: RequestCode.UPLOAD_BEGIN,
        fileName: 'x',
        size: CHUNK * 4,
        check: randomBytes(32),
      });
      expect((await peer.next()).code).toBe(ResponseCode.UPLOAD_OFFSET);
      peer.send({ code: RequestCode.UPLOAD_DATA_DEFLATE, data: bad });
      expect(errorOf(await peer.next())).toBe(WireErrorCode.BAD_MESSAGE);
      peer.send({ code: RequestCode.UPLOAD_DATA, data: Buffer.alloc(10) });
      expect(errorOf(await peer.next())).toBe(WireErrorCode.UNEXPECTED);
    }
    peer.send({ code: RequestCode.LIST, start: 0 });
    expect(await peer.next()).toMatchObject({ total: 0 });
  });

  it('marks E2E uploads; delete is per client and refused while the name is being uploaded', async () => {
    const a = await client('ann');
    const b = await client('ben');
    expect((await upload(a.peer, 'same', Buffer.from('ann'), false, FileFlag.E2E)).code).toBe(
      ResponseCode.STORED,
    );
    expect((await upload(b.peer, 'same', Buffer.from('ben!'), false)).code).toBe(
      ResponseCode.STORED,
    );
    a.peer.send({ code: RequestCode.GET, fileName: 'same', offset: 0 });
    expect(await a.peer.next()).toMatchObject({ flags: FileFlag.VERIFIED | FileFlag.E2E, size: 3 });

    // While ben uploads `same` again, his delete of it is BUSY.
    b.peer.send({
      code: RequestCode.UPLOAD_BEGIN,
      fileName: 'same',
      size: 10,
      check: randomBytes(32),
    });
    expect((await b.peer.next()).code).toBe(ResponseCode.UPLOAD_OFFSET);
    b.peer.send({ code: RequestCode.DELETE, fileName: 'same' });
    expect(errorOf(await b.peer.next())).toBe(WireErrorCode.BUSY);

    a.peer.send({ code: RequestCode.DELETE, fileName: 'same' });
    expect(await a.peer.next()).toEqual({ code: ResponseCode.DELETED, size: 3 });
    a.peer.send({ code: RequestCode.DELETE, fileName: 'same' });
    expect(errorOf(await a.peer.next())).toBe(WireErrorCode.NOT_FOUND);
    expect((await backends.catalog.findFile(b.id as Buffer, 'same'))?.size).toBe(4);
  });

  it('answers KEYS with a set signed by the key it presents', async () => {
    const { peer } = await client();
    peer.send({ code: RequestCode.KEYS });
    const set = await peer.next();
    if (set.code !== ResponseCode.KEY_SET) throw new Error(`answer ${set.code}`);
    expect(checkKeySet(set, fingerprint, Date.now(), 'test')).toEqual({ next: [], retired: [] });
  });
});
