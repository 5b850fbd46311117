/**
 * PostgreSQL restarted under load, with two instances serving clients: while the database is
 * away, requests get clear refusals (the §6 error answer, never a hang or a crash) and /readyz
 * says which backend is missing; every upload a client saw verified is in the catalog and in
 * the bucket afterwards, byte for byte; and once PostgreSQL is back both instances serve again
 * without being restarted.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { usePostgres, type PgCluster } from '../helpers/postgres';
import { useS3 } from '../helpers/s3';
import { runClient, type ClientRun } from '../v4/helpers';
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

const pg = usePostgres({ ownCluster: true });
const s3 = useS3();

let shared: SharedBackends;
let instances: Instance[] = [];
let work: string;

beforeAll(async () => {
  shared = { databaseUrl: pg.url, s3Endpoint: s3.endpoint, bucket: s3.bucket, prefix: 'restart/' };
  const first = await startInstance(shared);
  instances = [first, await startInstance(shared, { identityFrom: first })];
  work = await mkdtemp(join(tmpdir(), 'sft-restart-'));
}, 60_000);

afterAll(async () => {
  for (const instance of instances) await stopInstance(instance);
  await rm(work, { recursive: true, force: true });
});

interface Attempt {
  readonly instance: Instance;
  readonly name: string;
  readonly data: Buffer;
  readonly run: ClientRun;
}

let serial = 0;

/** One client: registers and uploads one file to `instance`. */
async function attempt(instance: Instance): Promise<Attempt> {
  serial += 1;
  const name = `user${serial}`;
  const data = randomBytes(64 * 1024 + serial);
  const file = join(work, `${name}.bin`);
  await writeFile(file, data);
  const dir = await mkdtemp(join(work, `${name}-`));
  const run = await runClient(
    dir,
    ['--protocol', 'v3', '--server', `127.0.0.1:${instance.port}`, '--name', name, file],
    { timeoutMs: 60_000 },
  );
  return { instance, name, data, run };
}

function cluster(): PgCluster {
  const found = pg.cluster;
  if (found === undefined) throw new Error('this test needs its own PostgreSQL cluster');
  return found;
}

async function waitUntil(condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

test('PostgreSQL restarted under load: clear errors, nothing lost, service recovers', async () => {
  const attempts: Attempt[] = [];
  let loading = true;
  const load = async (lane: number): Promise<void> => {
    for (let n = 0; loading; n += 1) {
      attempts.push(await attempt(instances[(lane + n) % instances.length] as Instance));
    }
  };
  const lanes = [0, 1, 2].map((lane) => load(lane));

  await waitUntil(async () => attempts.some((a) => a.run.json?.ok === true), 30_000);
  await cluster().stop();
  const stoppedAt = attempts.length;
  // While the database is away: /readyz says so (HAProxy takes the instance out), /healthz not.
  for (const instance of instances) {
    const ready = await getOps(instance, '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body).toMatch(/^database: .+/m);
    expect(ready.body).not.toMatch(/^database: ok$/m);
    expect(ready.body).toMatch(/^storage: ok$/m);
    expect((await getOps(instance, '/healthz')).status).toBe(200);
  }
  await waitUntil(async () => attempts.length >= stoppedAt + 4, 30_000);
  await cluster().start();
  for (const instance of instances) {
    await waitUntil(async () => (await getOps(instance, '/readyz')).status === 200, 30_000);
  }
  loading = false;
  await Promise.all(lanes);

  // Refused while down: a clear error answer, and each instance is still running.
  const failed = attempts.filter((a) => a.run.json?.ok !== true);
  expect(failed.length).toBeGreaterThan(0);
  for (const a of failed) {
    expect(a.run.json?.error?.code).toMatch(/^[A-Z_]+$/);
    expect(a.run.stderr).not.toMatch(/ECONNRESET|socket hang up/);
  }
  for (const instance of instances) expect(instance.process.child.exitCode).toBeNull();
  const refusals = instances.flatMap((i) =>
    i.process.lines.filter((line) => line.result === 1607 || line.code === 'DATABASE'),
  );
  expect(refusals.length).toBeGreaterThan(0);

  // After the restart both instances serve again.
  for (const instance of instances) {
    const after = await attempt(instance);
    expect(after.run.json).toMatchObject({ ok: true, registered: true });
    attempts.push(after);
  }

  // Nothing lost: every upload a client saw verified is listed and stored byte for byte.
  const admin = await runAdmin(shared, ['files', '--json', '--data-dir', work]);
  expect(admin.code).toBe(0);
  const listed = JSON.stringify(JSON.parse(admin.stdout));
  const verified = attempts.filter((a) => a.run.json?.ok === true);
  expect(verified.length).toBeGreaterThan(2);
  for (const a of verified) {
    const clientHex = a.run.json?.clientId as string;
    expect(listed).toContain(clientHex);
    expect(await objectSha256(shared, `${clientHex}/${a.name}.bin`)).toBe(sha256(a.data));
  }
}, 180_000);
