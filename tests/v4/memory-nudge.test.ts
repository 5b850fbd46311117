/**
 * Version-4 transfers tell the server's memory nudge (`--gc-nudge`) how many bytes they moved,
 * as v3 uploads do: every DATA payload (deflated ones by their original size) and every READ.
 */
import { createHash, randomBytes } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';
import { RequestCode, ResponseCode } from '../../protocol/v4';
import { type Backends } from '../../server/storage/open-backends';
import type { MemoryNudge } from '../../server/transport/gc-nudge';
import { type SftServer } from '../../server/transport/listener';
import { generateIdentityKey, issueCertificate } from '../../shared/identity';
import { removeDirs, tempDir } from './helpers';
import { startMemoryServer } from './memory-server';
import { connectRaw, type RawV4 } from './raw-v4';

const CHUNK = 65536;
const sha = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

class CountingNudge implements MemoryNudge {
  bytes = 0;
  notes = 0;
  note(bytes: number): void {
    this.bytes += bytes;
    this.notes++;
  }
}

describe('v4 transfers and the memory nudge', () => {
  let dir: string;
  let backends: Backends;
  let server: SftServer;
  let peer: RawV4;
  const nudge = new CountingNudge();

  beforeAll(async () => {
    dir = await tempDir('nudge');
    const started = await startMemoryServer(dir, { server: { memory: nudge }, files: true });
    ({ server, backends } = started);
    const port = started.port;
    const identity = await issueCertificate(await generateIdentityKey(), 'test', {
      now: Date.now,
      random: randomBytes,
    });
    peer = await connectRaw(port, identity);
    peer.send({ code: RequestCode.HELLO, version: 4, maxChunk: CHUNK });
    expect((await peer.next()).code).toBe(ResponseCode.WELCOME);
    peer.send({ code: RequestCode.REGISTER, name: 'nudged' });
    expect((await peer.next()).code).toBe(ResponseCode.REGISTERED);
  });
  afterAll(async () => {
    peer.close();
    await server.close(0);
    await backends.close();
    await removeDirs(dir);
  });

  // Compressible, so the deflated payloads are much smaller than what they stand for.
  const data = Buffer.alloc(5 * CHUNK + 1234, 'memory nudge ');

  it('notes every uploaded byte, deflated DATA by its original size', async () => {
    const before = nudge.bytes;
    peer.send({
      code: RequestCode.UPLOAD_BEGIN,
      fileName: 'n.bin',
      size: data.length,
      check: randomBytes(32),
    });
    expect((await peer.next()).code).toBe(ResponseCode.UPLOAD_OFFSET);
    for (let at = 0; at < data.length; at += CHUNK) {
      const chunk = data.subarray(at, at + CHUNK);
      peer.send(
        (at / CHUNK) % 2 === 0
          ? { code: RequestCode.UPLOAD_DATA_DEFLATE, data: deflateRawSync(chunk) }
          : { code: RequestCode.UPLOAD_DATA, data: chunk },
      );
    }
    peer.send({ code: RequestCode.UPLOAD_END, sha256: sha(data) });
    expect((await peer.next()).code).toBe(ResponseCode.STORED);
    expect(nudge.bytes - before).toBe(data.length);
  });

  it('notes every downloaded byte', async () => {
    const before = nudge.bytes;
    peer.send({ code: RequestCode.GET, fileName: 'n.bin', offset: 0 });
    expect((await peer.next()).code).toBe(ResponseCode.FILE_INFO);
    const reads = Math.ceil(data.length / CHUNK);
    for (let i = 0; i < reads; i++) peer.send({ code: RequestCode.READ });
    for (let i = 0; i < reads; i++) expect((await peer.next()).code).toBe(ResponseCode.FILE_DATA);
    expect(nudge.bytes - before).toBe(data.length);
  });
});
