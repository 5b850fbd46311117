/**
 * Pipelined uploads on the server (docs/protocol-v4.md §5.10): uploads sent back to back
 * without waiting get their answers in request order; a pipelined UPLOAD_END's commit runs
 * while the next upload is read; a refused pipelined upload's remaining frames get no answer;
 * any other request waits for the commits before it.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  encodeRequest,
  RequestCode,
  ResponseCode,
  UploadFlag,
  WireErrorCode,
  type Request,
  type Response,
} from '../../protocol/v4';
import type { Backends } from '../../server/storage/open-backends';
import type { Catalog } from '../../server/storage/types';
import { removeDirs, tempDir } from './helpers';
import { openSqliteDisk, startMemoryServer, type MemoryServer } from './memory-server';
import { registeredPeer, type RawV4 } from './raw-v4';

const MAX_FILE = 100_000;
/** The chunk size HELLO asks for. */
const CHUNK = 65536;
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

let dir: string;
let backends: Backends;
let server: MemoryServer | undefined;
const peers: RawV4[] = [];

beforeEach(async () => {
  dir = await tempDir('pipelined');
  backends = await openSqliteDisk(dir);
});

afterEach(async () => {
  for (const peer of peers.splice(0)) peer.close();
  await server?.close();
  server = undefined;
  await backends.close();
  await removeDirs(dir);
});

/** A server over SQLite and disk (its catalog, or `store` in its place) and a registered peer. */
async function start(store?: Catalog): Promise<RawV4> {
  server = await startMemoryServer(dir, {
    backends,
    files: true,
    server: { limits: { maxFileSize: MAX_FILE } },
    ...(store === undefined ? {} : { store }),
  });
  const { peer } = await registeredPeer(server.port, 'piper', CHUNK);
  peers.push(peer);
  return peer;
}

/** The frames of one pipelined upload of `data`, all sent at once. */
function sendPipelined(peer: RawV4, fileName: string, data: Buffer, flags = 0): void {
  peer.send({
    code: RequestCode.UPLOAD_BEGIN_FLAGS,
    fileName,
    size: data.length,
    check: randomBytes(32),
    flags: flags | UploadFlag.PIPELINED,
  });
  for (let at = 0; at < data.length; at += CHUNK) {
    peer.send({ code: RequestCode.UPLOAD_DATA, data: data.subarray(at, at + CHUNK) });
  }
  peer.send({ code: RequestCode.UPLOAD_END, sha256: sha256(data) });
}

function describeAnswer(response: Response): string {
  switch (response.code) {
    case ResponseCode.UPLOAD_OFFSET:
      return `offset ${response.offset}`;
    case ResponseCode.STORED:
      return `stored ${response.size}`;
    case ResponseCode.ERROR:
      return `error ${response.error}`;
    default:
      return `code ${response.code}`;
  }
}

async function answers(peer: RawV4, count: number): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < count; i++) seen.push(describeAnswer(await peer.next()));
  return seen;
}

/** The catalog with putFile wrapped (a slow or observed database). */
function wrapPutFile(catalog: Catalog, putFile: Catalog['putFile']): Catalog {
  return new Proxy(catalog, {
    get: (target, key, receiver) =>
      key === 'putFile' ? putFile : (Reflect.get(target, key, receiver) as unknown),
  });
}

describe('v4 pipelined uploads (§5.10)', () => {
  it('answers three uploads sent back to back in request order and stores each', async () => {
    const peer = await start();
    const files = [randomBytes(3000), randomBytes(1), randomBytes(70_000)];
    files.forEach((data, i) => sendPipelined(peer, `f${i}.bin`, data));
    expect(await answers(peer, 6)).toEqual([
      'offset 0',
      'stored 3000',
      'offset 0',
      'stored 1',
      'offset 0',
      'stored 70000',
    ]);
    const rows = await backends.catalog.listFiles();
    expect(rows.map((row) => [row.fileName, row.status, row.v4?.sha256])).toEqual(
      files.map((data, i) => [`f${i}.bin`, 'verified', sha256(data)]),
    );
    for (const [i, data] of files.entries()) {
      const row = rows[i];
      const stream = row && (await backends.bytes.read(row.objectKey));
      const chunks: Buffer[] = [];
      for await (const chunk of stream ?? []) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
    }
  });

  it('reads the next upload while an UPLOAD_END commits, and still answers in order', async () => {
    const events: string[] = [];
    const peer = await start(
      wrapPutFile(backends.catalog, async (file, audit, options) => {
        events.push(`commit ${file.fileName}`);
        // A slow first commit: the second upload is read and begun meanwhile.
        if (file.fileName === 'slow.bin') await sleep(300);
        await backends.catalog.putFile(file, audit, options);
        events.push(`committed ${file.fileName}`);
      }),
    );
    sendPipelined(peer, 'slow.bin', randomBytes(2000));
    sendPipelined(peer, 'quick.bin', randomBytes(2000));
    for (let i = 0; i < 4; i++) events.push(`answer ${describeAnswer(await peer.next())}`);
    // STORED only after its own commit, and in request order.
    expect(events.filter((e) => /^(answer stored|committed)/.test(e))).toEqual([
      'committed quick.bin',
      'committed slow.bin',
      'answer stored 2000',
      'answer stored 2000',
    ]);
    expect(events.filter((e) => e.startsWith('answer'))).toEqual([
      'answer offset 0',
      'answer stored 2000',
      'answer offset 0',
      'answer stored 2000',
    ]);
    // Both commits ran at once; the quick one finished first, yet its answers came second.
    expect(events.indexOf('commit quick.bin')).toBeLessThan(events.indexOf('committed slow.bin'));
    expect(events.indexOf('committed quick.bin')).toBeLessThan(
      events.indexOf('committed slow.bin'),
    );
  });

  it('a refused pipelined UPLOAD_BEGIN gets one ERROR; its DATA and UPLOAD_END get none', async () => {
    const peer = await start();
    sendPipelined(peer, 'big.bin', randomBytes(MAX_FILE + 1));
    sendPipelined(peer, 'ok.bin', randomBytes(500));
    expect(await answers(peer, 3)).toEqual([
      `error ${WireErrorCode.FILE_TOO_LARGE}`,
      'offset 0',
      'stored 500',
    ]);
    expect((await backends.catalog.listFiles()).map((row) => row.fileName)).toEqual(['ok.bin']);
  });

  it('an ERROR to a pipelined DATA frame ends that upload: the rest of it gets no answer', async () => {
    const peer = await start();
    const data = randomBytes(1000);
    peer.send({
      code: RequestCode.UPLOAD_BEGIN_FLAGS,
      fileName: 'short.bin',
      size: 10,
      check: randomBytes(32),
      flags: UploadFlag.PIPELINED,
    });
    // 1000 bytes for a 10-byte file: SIZE_MISMATCH on the first DATA; the second and the END
    // belong to the refused upload.
    peer.send({ code: RequestCode.UPLOAD_DATA, data });
    peer.send({ code: RequestCode.UPLOAD_DATA, data });
    peer.send({ code: RequestCode.UPLOAD_END, sha256: sha256(data) });
    sendPipelined(peer, 'next.bin', data);
    expect(await answers(peer, 4)).toEqual([
      'offset 0',
      `error ${WireErrorCode.SIZE_MISMATCH}`,
      'offset 0',
      'stored 1000',
    ]);
    expect((await backends.catalog.listFiles()).map((row) => row.fileName)).toEqual(['next.bin']);
  });

  it('a pipelined UPLOAD_BEGIN that does not decode is BAD_MESSAGE, and its frames get no answer', async () => {
    const peer = await start();
    const begin: Request = {
      code: RequestCode.UPLOAD_BEGIN_FLAGS,
      fileName: 'x.bin',
      size: 4,
      check: randomBytes(32),
      flags: UploadFlag.PIPELINED,
    };
    const bad = Buffer.from(encodeRequest(begin));
    // The name's first byte becomes a slash: no base name.
    bad[6 + 8 + 32 + 1] = 0x2f;
    peer.sendBytes(bad);
    peer.send({ code: RequestCode.UPLOAD_DATA, data: Buffer.from('abcd') });
    peer.send({ code: RequestCode.UPLOAD_END, sha256: sha256(Buffer.from('abcd')) });
    sendPipelined(peer, 'y.bin', Buffer.from('efgh'));
    expect(await answers(peer, 3)).toEqual([
      `error ${WireErrorCode.BAD_MESSAGE}`,
      'offset 0',
      'stored 4',
    ]);
  });

  it('starts at 0: a partial of the same name is not resumed', async () => {
    const peer = await start();
    const data = randomBytes(20_000);
    const check = randomBytes(32);
    // A plain upload cut after its first half, then a new connection.
    peer.send({ code: RequestCode.UPLOAD_BEGIN, fileName: 'r.bin', size: data.length, check });
    expect(describeAnswer(await peer.next())).toBe('offset 0');
    peer.send({ code: RequestCode.UPLOAD_DATA, data: data.subarray(0, 10_000) });
    peer.send({ code: RequestCode.LIST, start: 0 });
    expect((await peer.next()).code).toBe(ResponseCode.FILE_LIST);
    peer.send({
      code: RequestCode.UPLOAD_BEGIN_FLAGS,
      fileName: 'r.bin',
      size: data.length,
      check,
      flags: UploadFlag.PIPELINED,
    });
    peer.send({ code: RequestCode.UPLOAD_DATA, data });
    peer.send({ code: RequestCode.UPLOAD_END, sha256: sha256(data) });
    expect(await answers(peer, 2)).toEqual(['offset 0', 'stored 20000']);
  });

  it('any other request waits for the commits before it: LIST after a pipelined upload lists it', async () => {
    const peer = await start(
      wrapPutFile(backends.catalog, async (file, audit, options) => {
        await sleep(200);
        await backends.catalog.putFile(file, audit, options);
      }),
    );
    sendPipelined(peer, 'listed.bin', randomBytes(100));
    peer.send({ code: RequestCode.LIST, start: 0 });
    expect(await answers(peer, 2)).toEqual(['offset 0', 'stored 100']);
    const list = await peer.next();
    expect(list.code === ResponseCode.FILE_LIST ? list.files.map((f) => f.fileName) : []).toEqual([
      'listed.bin',
    ]);
  });

  it('two pipelined uploads of one name apply in order: the second waits for the first commit', async () => {
    const peer = await start();
    const first = randomBytes(1500);
    const second = randomBytes(1600);
    sendPipelined(peer, 'same.bin', first);
    sendPipelined(peer, 'same.bin', second);
    expect(await answers(peer, 4)).toEqual(['offset 0', 'stored 1500', 'offset 0', 'stored 1600']);
    const rows = await backends.catalog.listFiles();
    expect(rows.map((row) => [row.fileName, row.size, row.v4?.sha256])).toEqual([
      ['same.bin', 1600, sha256(second)],
    ]);
  });

  it('the PIPELINED bit is never stored: the file keeps only its own flags', async () => {
    const peer = await start();
    sendPipelined(peer, 'plain.bin', randomBytes(10));
    expect(await answers(peer, 2)).toEqual(['offset 0', 'stored 10']);
    expect((await backends.catalog.listFiles())[0]?.v4?.flags).toBe(0);
  });
});
