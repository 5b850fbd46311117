/**
 * A v4 upload resumed across instances: two instances share PostgreSQL and a bucket behind one
 * address (a TCP proxy standing in for HAProxy). The instance receiving an upload is killed
 * with SIGKILL mid-upload; the client's retry lands on the other instance, continues from the
 * durable offset recorded in the database instead of starting over, and the stored object is
 * byte-identical to the file.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client } from 'pg';
import { usePostgres } from '../helpers/postgres';
import { useS3 } from '../helpers/s3';
import { patternBytes, removeDirs, runClient, sha256File, tempDir, TestProxy } from '../v4/helpers';
import {
  objectSha256,
  startInstance,
  stopInstance,
  type Instance,
  type SharedBackends,
} from './instances';

const MIB = 1024 * 1024;
const pg = usePostgres();
const s3 = useS3();

async function durableBytes(url: string): Promise<number> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ durable: string }>(
      'SELECT COALESCE(max(durable), 0) AS durable FROM v4_partials',
    );
    return Number(rows[0]?.durable ?? 0);
  } finally {
    await client.end();
  }
}

test('an instance killed mid-upload: the retry resumes on the other one', async () => {
  const shared: SharedBackends = {
    databaseUrl: pg.url,
    s3Endpoint: s3.endpoint,
    bucket: s3.bucket,
    prefix: 'resume/',
  };
  const a: Instance = await startInstance(shared, { args: ['--log-level', 'info'] });
  const b: Instance = await startInstance(shared, {
    args: ['--log-level', 'info'],
    identityFrom: a,
  });
  const fingerprint = String(
    a.process.lines.find((l) => typeof l.fingerprint === 'string')?.fingerprint,
  );
  const conf = await tempDir('scale-resume');
  const proxy = await TestProxy.start(a.port, { bytesPerSecond: 6 * MIB });
  try {
    const size = 24 * MIB;
    const file = join(conf, 'big.bin');
    await writeFile(file, patternBytes(size, 7));
    const args = [
      '--protocol',
      'v4',
      '--server-fingerprint',
      fingerprint,
      '--server',
      `127.0.0.1:${proxy.port}`,
      '--name',
      'ivan',
      file,
    ];
    const first = runClient(conf, args);
    // Kill A once a segment of the upload is durable in the shared store.
    const deadline = Date.now() + 60_000;
    while ((await durableBytes(pg.url)) < 8 * MIB) {
      if (Date.now() > deadline) throw new Error('no durable bytes in time');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    a.process.child.kill('SIGKILL');
    const cut = await first;
    expect(cut.code).not.toBe(0);
    const durable = await durableBytes(pg.url);
    expect(durable).toBeGreaterThanOrEqual(8 * MIB);

    // The balancer now sends the client to B.
    proxy.targetPort = b.port;
    // As a real client does, retry a transient failure (a slow machine); every attempt resumes.
    const failures: unknown[] = [];
    let retry = await runClient(conf, args);
    while (retry.json?.ok !== true && failures.length < 2) {
      failures.push({
        json: retry.json,
        stderr: retry.stderr.slice(-1000),
        b: b.process.lines.slice(-5),
      });
      retry = await runClient(conf, args);
    }
    expect({ json: retry.json, failures }).toMatchObject({ json: { ok: true } });
    const row = retry.json?.files[0];
    if (failures.length === 0) expect(row?.resumedFrom).toBe(durable);
    expect(row?.resumedFrom).toBeGreaterThanOrEqual(durable);
    expect(row?.bytesSent).toBeLessThanOrEqual(size - durable);
    const clientHex = retry.json?.clientId as string;
    expect(await objectSha256(shared, `${clientHex}/big.bin`)).toBe(await sha256File(file));
    expect(await durableBytes(pg.url)).toBe(0);
  } finally {
    await proxy.close();
    await a.process.stop('SIGKILL');
    await stopInstance(b);
    await removeDirs(conf);
  }
}, 180_000);
