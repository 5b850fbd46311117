/**
 * The S3 ByteStore against an S3-compatible server (s3rver, tests/helpers/s3.ts) through the
 * real AWS SDK: streamed multipart writes published only at commit, aborts that leave nothing,
 * server-side copies, prefix removal, the sweep of stale multipart uploads, and keys refused
 * before any request.
 */
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { openS3ByteStore, type S3ByteStore } from '../../server/storage/s3';
import { S3_TEST_CREDENTIALS, testS3Client, useS3 } from '../helpers/s3';

const MIB = 1024 * 1024;
const CLIENT = 'ab'.repeat(16);
const OTHER = 'cd'.repeat(16);

const s3 = useS3();

function store(prefix: string, extra: { staleAfterMs?: number } = {}): S3ByteStore {
  return openS3ByteStore({
    url: `s3://${s3.bucket}/${prefix}`,
    endpoint: s3.endpoint,
    credentials: S3_TEST_CREDENTIALS,
    partSize: 5 * MIB,
    now: () => Date.now(),
    ...extra,
  });
}

async function readAll(stream: NodeJS.ReadableStream | undefined): Promise<Buffer | undefined> {
  if (stream === undefined) return undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

async function objectNames(prefix: string): Promise<string[]> {
  const client = testS3Client(s3.endpoint);
  try {
    const page = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }));
    return (page.Contents ?? []).map((object) => object.Key ?? '').sort();
  } finally {
    client.destroy();
  }
}

async function pendingUploads(prefix: string): Promise<number> {
  const client = testS3Client(s3.endpoint);
  try {
    const page = await client.send(
      new ListMultipartUploadsCommand({ Bucket: s3.bucket, Prefix: prefix }),
    );
    return (page.Uploads ?? []).length;
  } finally {
    client.destroy();
  }
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

describe('S3 ByteStore', () => {
  test('a multipart write is invisible until commit, then byte-identical', async () => {
    const bytes = store('visible');
    const data = randomBytes(12 * MIB + 12345);
    const writer = await bytes.begin(`${CLIENT}/big.bin`);
    for (let at = 0; at < data.length; at += 64 * 1024) {
      await writer.write(data.subarray(at, at + 64 * 1024));
    }
    expect(await bytes.read(`${CLIENT}/big.bin`)).toBeUndefined();
    expect(await objectNames('visible/')).toEqual([]);
    expect(await pendingUploads('visible/')).toBe(1);
    await writer.commit();
    expect(sha256((await readAll(await bytes.read(`${CLIENT}/big.bin`))) as Buffer)).toBe(
      sha256(data),
    );
    expect(await objectNames('visible/')).toEqual([`visible/${CLIENT}/big.bin`]);
    expect(await pendingUploads('visible/')).toBe(0);
  });

  test('a small write is published at commit; a rewrite replaces it whole', async () => {
    const bytes = store('small');
    const first = await bytes.begin(`${CLIENT}/a.txt`);
    await first.write(Buffer.from('first content'));
    await first.commit();
    const second = await bytes.begin(`${CLIENT}/a.txt`);
    await second.write(Buffer.from('second'));
    expect((await readAll(await bytes.read(`${CLIENT}/a.txt`)))?.toString()).toBe('first content');
    await second.commit();
    expect((await readAll(await bytes.read(`${CLIENT}/a.txt`)))?.toString()).toBe('second');
  });

  test('abort after parts were sent aborts the multipart upload and publishes nothing', async () => {
    const bytes = store('abort');
    const writer = await bytes.begin(`${CLIENT}/gone.bin`);
    await writer.write(randomBytes(11 * MIB));
    await writer.abort();
    await writer.abort();
    expect(await bytes.read(`${CLIENT}/gone.bin`)).toBeUndefined();
    expect(await objectNames('abort/')).toEqual([]);
    expect(await pendingUploads('abort/')).toBe(0);
    await expect(writer.write(Buffer.from('late'))).rejects.toMatchObject({ code: 'FILESYSTEM' });
  });

  test('an empty object is stored; an unfinished write is sweepable from begin on', async () => {
    const bytes = store('empty');
    const writer = await bytes.begin(`${CLIENT}/empty`);
    await writer.commit();
    expect(await readAll(await bytes.read(`${CLIENT}/empty`))).toEqual(Buffer.alloc(0));
    const cut = await bytes.begin(`${CLIENT}/cut`);
    expect(await pendingUploads('empty/')).toBe(1);
    expect(await store('empty', { staleAfterMs: -1000 }).sweepIncomplete()).toBe(1);
    await cut.abort();
  });

  test('copy is server-side and atomic; copying a missing object says false', async () => {
    const bytes = store('copy');
    const writer = await bytes.begin(`${CLIENT}/orig.txt`);
    await writer.write(Buffer.from('keep me'));
    await writer.commit();
    expect(await bytes.copy(`${CLIENT}/orig.txt`, `.versions/${CLIENT}/orig.txt/1`)).toBe(true);
    expect((await readAll(await bytes.read(`.versions/${CLIENT}/orig.txt/1`)))?.toString()).toBe(
      'keep me',
    );
    expect(await bytes.copy(`${CLIENT}/missing.txt`, `${CLIENT}/other.txt`)).toBe(false);
  });

  test('remove and removePrefix touch only what they name', async () => {
    const bytes = store('remove');
    for (const key of [`${CLIENT}/x`, `${CLIENT}/y`, `.versions/${CLIENT}/x/1`, `${OTHER}/x`]) {
      const writer = await bytes.begin(key);
      await writer.write(Buffer.from(key));
      await writer.commit();
    }
    await bytes.remove(`${CLIENT}/y`);
    await bytes.remove(`${CLIENT}/never-there`);
    await bytes.removePrefix(`${CLIENT}/`);
    expect(await objectNames('remove/')).toEqual([
      `remove/.versions/${CLIENT}/x/1`,
      `remove/${OTHER}/x`,
    ]);
    await bytes.removePrefix(`.versions/${CLIENT}/`);
    expect(await objectNames('remove/')).toEqual([`remove/${OTHER}/x`]);
  });

  test('sweepIncomplete aborts stale uploads under its prefix only', async () => {
    const left = store('sweep');
    const elsewhere = store('sweep-other');
    const stale = await left.begin(`${CLIENT}/crashed.bin`);
    await stale.write(randomBytes(6 * MIB));
    const other = await elsewhere.begin(`${CLIENT}/crashed.bin`);
    await other.write(randomBytes(6 * MIB));
    await waitFor(async () => (await pendingUploads('sweep/')) === 1);
    // A young upload may be another instance's upload in flight: kept.
    expect(await store('sweep', { staleAfterMs: 60_000 }).sweepIncomplete()).toBe(0);
    expect(await store('sweep', { staleAfterMs: -1000 }).sweepIncomplete()).toBe(1);
    expect(await pendingUploads('sweep/')).toBe(0);
    expect(await pendingUploads('sweep-other/')).toBe(1);
    await other.abort();
    await stale.abort();
  });

  test('keys outside the grammar are refused before any request', async () => {
    const bytes = store('escape');
    await expect(bytes.begin('../outside')).rejects.toMatchObject({ code: 'PATH_ESCAPE' });
    await expect(bytes.read(`${CLIENT}/../../x`)).rejects.toMatchObject({ code: 'PATH_ESCAPE' });
    await expect(bytes.removePrefix('')).rejects.toMatchObject({ code: 'PATH_ESCAPE' });
    await expect(bytes.copy(`${CLIENT}/a`, '/etc/passwd')).rejects.toMatchObject({
      code: 'PATH_ESCAPE',
    });
  });

  test('an unreachable endpoint is a FILESYSTEM error, and ping says so', async () => {
    const bytes = openS3ByteStore({
      url: `s3://${s3.bucket}/down`,
      endpoint: 'http://127.0.0.1:1',
      credentials: S3_TEST_CREDENTIALS,
      now: () => Date.now(),
    });
    await expect(bytes.ping()).rejects.toMatchObject({ code: 'FILESYSTEM' });
    await expect(bytes.read(`${CLIENT}/a`)).rejects.toMatchObject({ code: 'FILESYSTEM' });
    await expect(store('up').ping()).resolves.toBeUndefined();
  });

  test('bad s3:// URLs are refused with BACKEND', () => {
    for (const url of ['s3://', 's3://Bad_Bucket/x', 's3://bucket/../x', 'http://bucket/x']) {
      expect(() => openS3ByteStore({ url, now: () => 0 })).toThrow(
        expect.objectContaining({ code: 'BACKEND' }),
      );
    }
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
