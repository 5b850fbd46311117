/**
 * Resumable v4 uploads shared by instances (PostgreSQL rows, segments in the bucket): what one
 * instance checkpointed another resumes; an instance that lost the upload to another fails its
 * next write instead of interleaving bytes; a different file under the same name starts over;
 * old partials are swept with their segments.
 */
import { randomBytes } from 'node:crypto';
import { openSharedPartials } from '../../server/storage/postgres';
import type { PartialKey, PartialStore } from '../../server/session/v4/context';
import { usePostgres } from '../helpers/postgres';
import { useS3 } from '../helpers/s3';
import { S3_ENV } from './instances';

const pg = usePostgres();
const s3 = useS3();
let clock = 1_000;
const closers: Array<() => Promise<void>> = [];

async function instance(): Promise<PartialStore> {
  for (const [name, value] of Object.entries(S3_ENV)) process.env[name] = value;
  const shared = await openSharedPartials({
    url: pg.url,
    storage: `s3://${s3.bucket}/partials/`,
    s3Endpoint: s3.endpoint,
    now: () => clock,
  });
  closers.push(() => shared.close());
  return shared.partials;
}

afterAll(async () => {
  for (const close of closers) await close();
});

async function readAll(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of source) chunks.push(chunk);
  return Buffer.concat(chunks);
}

const key = (fileName: string, size: number, check = Buffer.alloc(32, 1)): PartialKey => ({
  clientIdHex: 'ab'.repeat(16),
  fileName,
  size,
  check,
});

test('checkpointed bytes resume on another instance; the old owner cannot write on', async () => {
  const [a, b] = [await instance(), await instance()];
  const data = randomBytes(300_000);
  const onA = await a.open(key('f.bin', data.length));
  expect(onA.offset).toBe(0);
  await onA.write(data.subarray(0, 100_000));
  expect(await onA.checkpoint()).toBe(100_000);
  await onA.write(data.subarray(100_000, 150_000));

  const onB = await b.open(key('f.bin', data.length));
  expect(onB.offset).toBe(100_000);
  expect(await readAll(onB.contents(onB.offset))).toEqual(data.subarray(0, 100_000));
  // A lost it: its buffered bytes never join B's.
  await expect(onA.checkpoint()).rejects.toMatchObject({ code: 'DATABASE' });

  await onB.write(data.subarray(100_000));
  await onB.checkpoint();
  expect(await readAll(onB.contents(data.length))).toEqual(data);
  await onB.remove();
  expect((await a.open(key('f.bin', data.length))).offset).toBe(0);
});

test('another size or check under the same name starts over; sweep drops old partials', async () => {
  const a = await instance();
  const first = await a.open(key('g.bin', 1000));
  await first.write(randomBytes(500));
  await first.close();
  expect((await a.open(key('g.bin', 1000))).offset).toBe(500);
  // A pipelined upload (fresh) never resumes, though name, size and check match.
  expect((await a.open({ ...key('g.bin', 1000), fresh: true })).offset).toBe(0);
  expect((await a.open(key('g.bin', 1000))).offset).toBe(0);
  const again = await a.open(key('g.bin', 1000));
  await again.write(randomBytes(500));
  await again.close();
  expect((await a.open(key('g.bin', 1000, Buffer.alloc(32, 2)))).offset).toBe(0);
  const kept = await a.open(key('h.bin', 10));
  await kept.write(randomBytes(10));
  await kept.close();
  clock += 10_000;
  expect(await a.sweep(clock - 1)).toBeGreaterThanOrEqual(2);
  expect((await a.open(key('h.bin', 10))).offset).toBe(0);
});

test('client ids outside the grammar are refused before anything is written', async () => {
  const a = await instance();
  await expect(a.open({ ...key('x', 1), clientIdHex: '../etc' })).rejects.toMatchObject({
    code: 'PATH_ESCAPE',
  });
});
