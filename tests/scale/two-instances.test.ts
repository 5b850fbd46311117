/**
 * Two sft-server instances on two ports sharing one PostgreSQL database and one S3 bucket:
 * a client registered on one reconnects and uploads on the other, `admin files` on either
 * lists everything, the stored objects are byte-identical to what was sent, the quota holds
 * across instances, and each instance answers /metrics and /readyz.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { usePostgres } from '../helpers/postgres';
import { useS3 } from '../helpers/s3';
import { runClient, TestProxy } from '../v4/helpers';
import {
  getOps,
  objectSha256,
  runAdmin,
  sha256,
  startInstance,
  stopInstance,
  type Instance,
  type SharedBackends,
} from './instances';

const pg = usePostgres();
const s3 = useS3();
const QUOTA = 300 * 1024;

let shared: SharedBackends;
let a: Instance;
let b: Instance;
let work: string;

beforeAll(async () => {
  shared = { databaseUrl: pg.url, s3Endpoint: s3.endpoint, bucket: s3.bucket, prefix: 'two/' };
  a = await startInstance(shared, { args: ['--quota', String(QUOTA)] });
  b = await startInstance(shared, { args: ['--quota', String(QUOTA)], identityFrom: a });
  work = await mkdtemp(join(tmpdir(), 'sft-scale-client-'));
}, 60_000);

afterAll(async () => {
  for (const instance of [a, b]) if (instance !== undefined) await stopInstance(instance);
  await rm(work, { recursive: true, force: true });
});

async function fileOf(name: string, size: number): Promise<{ path: string; data: Buffer }> {
  const data = randomBytes(size);
  const path = join(work, name);
  await writeFile(path, data);
  return { path, data };
}

function configDir(name: string): Promise<string> {
  return mkdtemp(join(work, `config-${name}-`));
}

/** The v4 fingerprint both instances present (they share one identity folder). */
function fingerprintOf(instance: Instance): string {
  return instance.process.lines.find((line) => typeof line.fingerprint === 'string')
    ?.fingerprint as string;
}

/** `sft-client` over v4 to `instance` as `name`, pinned to the instances' fingerprint. */
function sendV4(instance: Instance, dir: string, name: string, args: readonly string[]) {
  return runClient(dir, [
    '--protocol',
    'v4',
    '--server-fingerprint',
    fingerprintOf(a),
    '--server',
    `127.0.0.1:${instance.port}`,
    '--name',
    name,
    ...args,
  ]);
}

function send(instance: Instance, dir: string, name: string, files: readonly string[]) {
  return runClient(dir, [
    '--protocol',
    'v3',
    '--server',
    `127.0.0.1:${instance.port}`,
    '--name',
    name,
    ...files,
  ]);
}

describe('two instances, one database, one bucket', () => {
  test('register on one, reconnect and upload on the other; admin on either lists all', async () => {
    const dir = await configDir('alice');
    const first = await fileOf('first.bin', 70_000);
    const second = await fileOf('second.bin', 90_000);
    const onA = await send(a, dir, 'alice', [first.path]);
    expect(onA.json).toMatchObject({ ok: true, registered: true });
    const onB = await send(b, dir, 'alice', [second.path]);
    expect(onB.json).toMatchObject({ ok: true, registered: false });
    expect(onB.json?.files).toEqual([expect.objectContaining({ verified: true })]);

    const clientHex = onA.json?.clientId as string;
    expect(await objectSha256(shared, `${clientHex}/first.bin`)).toBe(sha256(first.data));
    expect(await objectSha256(shared, `${clientHex}/second.bin`)).toBe(sha256(second.data));

    // On either instance's machine (its own data directory), the same shared listing.
    for (const instance of [a, b]) {
      const admin = await runAdmin(shared, ['files', '--json', '--data-dir', instance.dataDir]);
      expect(admin.stderr).not.toContain('sft-server admin:');
      expect(admin.code).toBe(0);
      const listed = JSON.parse(admin.stdout) as unknown[];
      const text = JSON.stringify(listed);
      expect(text).toContain('first.bin');
      expect(text).toContain('second.bin');
      expect(text).toContain(clientHex);
    }
  });

  test('over v4: one server fingerprint on both; registered on one, known on the other', async () => {
    const fingerprints = [a, b].map(fingerprintOf);
    expect(fingerprints[0]).toMatch(/^SHA256:/);
    expect(fingerprints[1]).toBe(fingerprints[0]);
    const dir = await configDir('dora');
    const one = await fileOf('v4-one.bin', 80_000);
    const two = await fileOf('v4-two.bin', 60_000);
    const v4 = (instance: Instance, files: readonly string[]) =>
      sendV4(instance, dir, 'dora', files);
    const onA = await v4(a, [one.path]);
    expect(onA.json).toMatchObject({ ok: true, registered: true });
    const onB = await v4(b, [two.path]);
    expect(onB.json).toMatchObject({ ok: true, registered: false });
    const clientHex = onA.json?.clientId as string;
    expect(onB.json?.clientId).toBe(clientHex);
    expect(await objectSha256(shared, `${clientHex}/v4-one.bin`)).toBe(sha256(one.data));
    expect(await objectSha256(shared, `${clientHex}/v4-two.bin`)).toBe(sha256(two.data));
  });

  test('over v4: a file sent --e2e through one instance is listed and restored as such through the other', async () => {
    const dir = await configDir('erin');
    const secret = await fileOf('secret.bin', 50_000);
    const through = (instance: Instance, args: readonly string[]) =>
      sendV4(instance, dir, 'erin', args);
    expect((await through(a, ['--e2e', secret.path])).code).toBe(0);
    // The E2E flag and the SHA-256 travel with the row, not in a file beside instance A.
    const listed = (await through(b, ['list'])).json?.files as
      { name?: string; e2e?: boolean }[] | undefined;
    expect(listed).toEqual([expect.objectContaining({ name: 'secret.bin', e2e: true })]);
    const out = join(work, 'restored.bin');
    expect((await through(b, ['get', 'secret.bin', '-o', out])).code).toBe(0);
    expect((await readFile(out)).equals(secret.data)).toBe(true);
  });

  test('over v4: a folder of small files in one run, one connection (pipelined), is stored whole in the bucket', async () => {
    const dir = await configDir('fred');
    const files = await Promise.all(
      Array.from({ length: 12 }, (_, i) => fileOf(`small-${i}.bin`, 2000 + i)),
    );
    const run = await sendV4(b, dir, 'fred', ['--parallel', '1', ...files.map((f) => f.path)]);
    expect(run.code).toBe(0);
    const clientHex = run.json?.clientId as string;
    for (const f of files) {
      const name = f.path.slice(f.path.lastIndexOf('/') + 1);
      expect(await objectSha256(shared, `${clientHex}/${name}`)).toBe(sha256(f.data));
    }
  });

  test('a name registered on one instance is taken on the other', async () => {
    const onA = await send(a, await configDir('bob'), 'bob', [(await fileOf('b.bin', 10)).path]);
    expect(onA.json).toMatchObject({ ok: true, registered: true });
    const onB = await send(b, await configDir('bob2'), 'bob', [(await fileOf('c.bin', 10)).path]);
    expect(onB.json?.ok).toBe(false);
    expect(onB.code).not.toBe(0);
  });

  test('the quota counts what every instance stored', async () => {
    const dir = await configDir('carol');
    const big = await fileOf('big.bin', 200 * 1024);
    const more = await fileOf('more.bin', 150 * 1024);
    const stored = await send(a, dir, 'carol', [big.path]);
    expect(stored.json).toMatchObject({ ok: true });
    const refused = await send(b, dir, 'carol', [more.path]);
    expect(refused.json?.ok).toBe(false);
    const clientHex = stored.json?.clientId as string;
    expect(await objectSha256(shared, `${clientHex}/more.bin`)).toBeUndefined();
    // Under the quota it still works on either instance.
    const small = await fileOf('small.bin', 50 * 1024);
    expect((await send(b, dir, 'carol', [small.path])).json).toMatchObject({ ok: true });
  });

  test('an upload in flight on one instance counts against the quota on the other', async () => {
    const dir = await configDir('frank');
    const slow = await fileOf('slow.bin', 200 * 1024);
    const racing = await fileOf('racing.bin', 150 * 1024);
    // Registered first, so the slow run below is all upload.
    expect((await send(a, dir, 'frank', [(await fileOf('hi.bin', 10)).path])).json).toMatchObject({
      ok: true,
    });
    const proxy = await TestProxy.start(a.port, { bytesPerSecond: 64 * 1024 });
    try {
      const viaProxy = runClient(dir, [
        '--protocol',
        'v3',
        '--server',
        `127.0.0.1:${proxy.port}`,
        slow.path,
      ]);
      // Well past B's next reading of the shared reservations, well before the upload ends.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const refused = await send(b, dir, 'frank', [racing.path]);
      expect(refused.json?.ok).toBe(false);
      expect((await viaProxy).json).toMatchObject({ ok: true });
    } finally {
      await proxy.close();
    }
  });

  test('each instance answers /healthz, /readyz and /metrics with its own counts', async () => {
    for (const instance of [a, b]) {
      expect(await getOps(instance, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
      expect(await getOps(instance, '/readyz')).toEqual({
        status: 200,
        body: 'database: ok\nstorage: ok\n',
      });
      const metrics = await getOps(instance, '/metrics');
      expect(metrics.status).toBe(200);
      expect(metrics.body).toMatch(
        /^sft_requests_total\{code="1028",result="file_stored"\} [1-9]/m,
      );
      expect(metrics.body).toMatch(/^sft_upload_duration_seconds_count [1-9]/m);
      expect(metrics.body).toMatch(/^sft_connections_accepted_total [1-9]/m);
      expect(metrics.body).toMatch(/^sft_bytes_in_total [1-9]/m);
      expect(metrics.body).toMatch(/^sft_bytes_out_total [1-9]/m);
    }
  });
});
