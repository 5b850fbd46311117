/**
 * The client's v4 upload against a scripted link (client/v4/upload.ts): a file that fits one
 * chunk is read once, and its content check (docs/protocol-v4.md §5.5), DATA and SHA-256 are
 * those a chunk-by-chunk read of the same file gives; a resume sends only the bytes from the
 * server's offset; a file whose size is not the planned one is FILE_CHANGED.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { appendFile, open, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { ClientErrorCode } from '../../client/errors';
import type { V4Link } from '../../client/v4/link';
import type { V4Plan } from '../../client/v4/plan';
import {
  contentCheck,
  contentCheckOfBytes,
  readWhole,
  uploadFile,
  type V4UploadResult,
} from '../../client/v4/upload';
import { RequestCode, ResponseCode, type Request, type Response } from '../../protocol/v4';
import { patternBytes, removeDirs, tempDir } from './helpers';

const KIB = 1024;
const MIB = 1024 * KIB;

/**
 * A server that holds `held` of the file already: it answers UPLOAD_BEGIN with that offset and
 * UPLOAD_END with STORED over the held bytes and the DATA it got.
 */
class ScriptedLink {
  readonly requests: Request[] = [];
  readonly data: Buffer[] = [];
  readonly remote = 'scripted';
  dataBytesSent = 0;
  private readonly answers: Response[] = [];

  constructor(private readonly held: Buffer) {}

  get hasResponse(): boolean {
    return this.answers.length > 0;
  }

  async send(request: Request): Promise<void> {
    this.requests.push(request);
    if (request.code === RequestCode.UPLOAD_BEGIN) {
      this.answers.push({ code: ResponseCode.UPLOAD_OFFSET, offset: this.held.length });
    } else if (request.code === RequestCode.UPLOAD_END) {
      const stored = Buffer.concat([this.held, ...this.data]);
      const sha256 = createHash('sha256').update(stored).digest();
      this.answers.push({ code: ResponseCode.STORED, size: stored.length, sha256, cksum: 0 });
    }
  }

  async sendData(data: Buffer): Promise<void> {
    this.data.push(Buffer.from(data));
    this.dataBytesSent += data.length;
  }

  async receive(): Promise<Response> {
    const answer = this.answers.shift();
    if (answer === undefined) throw new Error('nothing to answer');
    return answer;
  }

  /** The content check UPLOAD_BEGIN carried. */
  get check(): Buffer {
    const begin = this.requests.find((r) => r.code === RequestCode.UPLOAD_BEGIN);
    if (begin?.code !== RequestCode.UPLOAD_BEGIN) throw new Error('no UPLOAD_BEGIN');
    return begin.check;
  }
}

/** §5.5 spelled out: context, size (u64 LE), mtime in ms as text, first 64 KiB, tail. */
function referenceCheck(bytes: Buffer, mtimeMs: number): Buffer {
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(bytes.length));
  const hash = createHash('sha256')
    .update(Buffer.from('sft/4 content check\0', 'latin1'))
    .update(size)
    .update(Buffer.from(String(mtimeMs), 'latin1'))
    .update(bytes.subarray(0, 64 * KIB));
  if (bytes.length > 64 * KIB)
    hash.update(bytes.subarray(Math.max(64 * KIB, bytes.length - 64 * KIB)));
  return hash.digest();
}

type Counted = 'stat' | 'read';

/** Counts the FileHandle stats and the bytes its reads return (undone by restoreAllMocks). */
async function countFileAccess(
  scratch: string,
): Promise<{ stats: number; bytesRead: number; reads: number }> {
  const counts = { stats: 0, bytesRead: 0, reads: 0 };
  // FileHandle's class is not exported: take its prototype from a handle.
  const sample = await open(join(scratch, 'sample'), 'w');
  const proto = Object.getPrototypeOf(sample) as Record<Counted, (...a: unknown[]) => unknown>;
  await sample.close();
  const { stat: statOf, read } = proto;
  jest.spyOn(proto, 'stat').mockImplementation(function (this: FileHandle, ...args: unknown[]) {
    counts.stats++;
    return statOf.apply(this, args);
  });
  jest.spyOn(proto, 'read').mockImplementation(async function (
    this: FileHandle,
    ...args: unknown[]
  ) {
    counts.reads++;
    const result = (await read.apply(this, args)) as { bytesRead: number };
    counts.bytesRead += result.bytesRead;
    return result;
  });
  return counts;
}

describe('v4 upload of a file that fits one chunk', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir('upload');
  });
  afterEach(async () => {
    jest.restoreAllMocks();
    await removeDirs(dir);
  });

  const file = async (bytes: Buffer): Promise<V4Plan> => {
    const path = join(dir, 'f.bin');
    await writeFile(path, bytes);
    return { path, fileName: 'f.bin', size: bytes.length };
  };
  const upload = async (
    plan: V4Plan,
    chunkSize: number,
    held: Buffer = Buffer.alloc(0),
  ): Promise<{ link: ScriptedLink; result: V4UploadResult }> => {
    const link = new ScriptedLink(held);
    const result = await uploadFile(link as unknown as V4Link, plan, chunkSize, {});
    return { link, result };
  };

  it.each([0, 1, 64 * KIB - 1, 64 * KIB, 64 * KIB + 1, 100 * KIB, 128 * KIB, 128 * KIB + 1, MIB])(
    'computes from the buffer the check the reads of the large path give (%i bytes)',
    async (size) => {
      const bytes = patternBytes(size, size + 7);
      const plan = await file(bytes);
      const { mtimeMs } = await stat(plan.path);
      const handle = await open(plan.path, 'r');
      try {
        const read = await contentCheck(handle, size);
        expect(contentCheckOfBytes(bytes, mtimeMs).equals(read)).toBe(true);
        expect(read.equals(referenceCheck(bytes, mtimeMs))).toBe(true);
      } finally {
        await handle.close();
      }
    },
  );

  it('reads the file once and sends what a chunk-by-chunk upload of it sends', async () => {
    const bytes = patternBytes(100 * KIB, 3);
    const plan = await file(bytes);
    const counts = await countFileAccess(dir);
    const small = await upload(plan, MIB);
    expect(counts).toMatchObject({ stats: 1, bytesRead: bytes.length });
    jest.restoreAllMocks();
    // 16 KiB chunks: past the chunk size, the large path reads the file chunk by chunk.
    const large = await upload(plan, 16 * KIB);
    expect(small.link.check.equals(large.link.check)).toBe(true);
    expect(small.link.check.equals(referenceCheck(bytes, (await stat(plan.path)).mtimeMs))).toBe(
      true,
    );
    expect(small.link.data).toHaveLength(1);
    expect(Buffer.concat(small.link.data).equals(bytes)).toBe(true);
    expect(Buffer.concat(large.link.data).equals(bytes)).toBe(true);
    const sha = createHash('sha256').update(bytes).digest('hex');
    expect(small.result).toMatchObject({ sha256: sha, resumedFrom: 0, bytesSent: bytes.length });
    expect(large.result.sha256).toBe(sha);
  });

  it('resumes from the server’s offset: sends the rest, hashes the whole file', async () => {
    const bytes = patternBytes(100 * KIB, 5);
    const plan = await file(bytes);
    const offset = 40_000;
    const { link, result } = await upload(plan, MIB, bytes.subarray(0, offset));
    expect(Buffer.concat(link.data).equals(bytes.subarray(offset))).toBe(true);
    const end = link.requests.at(-1);
    expect(end?.code).toBe(RequestCode.UPLOAD_END);
    const sha = createHash('sha256').update(bytes).digest();
    if (end?.code === RequestCode.UPLOAD_END) expect(end.sha256.equals(sha)).toBe(true);
    expect(result).toMatchObject({
      resumedFrom: offset,
      bytesSent: bytes.length - offset,
      sha256: sha.toString('hex'),
    });
  });

  it('sends no DATA when the server holds the whole file already', async () => {
    const bytes = patternBytes(10 * KIB, 9);
    const plan = await file(bytes);
    const { link, result } = await upload(plan, MIB, bytes);
    expect(link.data).toEqual([]);
    expect(result).toMatchObject({ resumedFrom: bytes.length, bytesSent: 0 });
  });

  it.each([
    ['grew', 1],
    ['shrank', -1],
  ])('gives FILE_CHANGED for a file that %s after it was planned', async (_, delta) => {
    const plan = await file(patternBytes(50 * KIB, 2));
    await writeFile(plan.path, patternBytes(plan.size + delta, 2));
    const link = new ScriptedLink(Buffer.alloc(0));
    await expect(uploadFile(link as unknown as V4Link, plan, MIB, {})).rejects.toMatchObject({
      code: ClientErrorCode.FILE_CHANGED,
    });
    expect(link.requests).toEqual([]);
  });

  it('gives FILE_CHANGED for a file that grew between its stat and its read', async () => {
    const plan = await file(patternBytes(50 * KIB, 4));
    const sample = await fsp.open(join(dir, 'sample'), 'w');
    const proto = Object.getPrototypeOf(sample) as { stat: (this: FileHandle) => Promise<unknown> };
    await sample.close();
    const statOf = proto.stat;
    jest.spyOn(proto, 'stat').mockImplementationOnce(async function (this: FileHandle) {
      const stats = await statOf.call(this);
      await appendFile(plan.path, 'x');
      return stats;
    });
    const link = new ScriptedLink(Buffer.alloc(0));
    await expect(uploadFile(link as unknown as V4Link, plan, MIB, {})).rejects.toMatchObject({
      code: ClientErrorCode.FILE_CHANGED,
    });
    expect(link.requests).toEqual([]);
  });

  it('reads whole only a file of exactly the size asked for', async () => {
    const bytes = patternBytes(3000, 6);
    const plan = await file(bytes);
    const handle = await open(plan.path, 'r');
    try {
      expect((await readWhole(handle, 3000))?.equals(bytes)).toBe(true);
      expect(await readWhole(handle, 2999)).toBeUndefined();
      expect(await readWhole(handle, 3001)).toBeUndefined();
    } finally {
      await handle.close();
    }
  });
});
