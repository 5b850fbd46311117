/**
 * The S3 store away under two instances: uploads are refused with a clear error (1607) and
 * nothing half-written becomes visible, /readyz answers 503 naming the storage while /healthz
 * stays 200, storage errors are counted in /metrics, and once the store is back both instances
 * serve again without a restart.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { usePostgres } from '../helpers/postgres';
import { createTestBucket, startS3Server, type S3TestServer } from '../helpers/s3';
import { runClient } from '../v4/helpers';
import {
  getOps,
  objectSha256,
  sha256,
  startInstance,
  stopInstance,
  type Instance,
  type SharedBackends,
} from './instances';

const pg = usePostgres();

test('S3 away and back: clear refusals, readiness, metrics, recovery', async () => {
  const work = await mkdtemp(join(tmpdir(), 'sft-s3-outage-'));
  const objects = join(work, 'objects');
  let s3: S3TestServer = await startS3Server(0, objects);
  const port = Number(new URL(s3.endpoint).port);
  const shared: SharedBackends = {
    databaseUrl: pg.url,
    s3Endpoint: s3.endpoint,
    bucket: await createTestBucket(s3.endpoint),
    prefix: 'outage/',
  };
  const instances: Instance[] = [];
  try {
    instances.push(await startInstance(shared));
    instances.push(await startInstance(shared, { identityFrom: instances[0] }));
    const send = async (instance: Instance, name: string) => {
      const data = randomBytes(50_000);
      const file = join(work, `${name}.bin`);
      await writeFile(file, data);
      const dir = await mkdtemp(join(work, `${name}-`));
      const run = await runClient(dir, [
        '--protocol',
        'v3',
        '--server',
        `127.0.0.1:${instance.port}`,
        '--name',
        name,
        file,
      ]);
      return { run, data };
    };
    expect((await send(instances[0] as Instance, 'before')).run.json).toMatchObject({ ok: true });

    await s3.stop();
    const refusedKeys: string[] = [];
    for (const [n, instance] of instances.entries()) {
      const refused = await send(instance, `during${n}`);
      refusedKeys.push(`${refused.run.json?.clientId as string}/during${n}.bin`);
      expect(refused.run.json?.ok).toBe(false);
      expect(refused.run.json?.error?.message).toMatch(/1607/);
      const ready = await getOps(instance, '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body).toMatch(/^database: ok$/m);
      expect(ready.body).toMatch(/^storage: (?!ok$).+/m);
      expect((await getOps(instance, '/healthz')).status).toBe(200);
      const metrics = (await getOps(instance, '/metrics')).body;
      expect(metrics).toMatch(
        /^sft_storage_errors_total\{side="storage",code="FILESYSTEM"\} [1-9]/m,
      );
    }

    s3 = await startS3Server(port, objects);
    for (const [n, instance] of instances.entries()) {
      const deadline = Date.now() + 30_000;
      while ((await getOps(instance, '/readyz')).status !== 200) {
        if (Date.now() > deadline) throw new Error('not ready again in time');
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const after = await send(instance, `after${n}`);
      expect(after.run.json).toMatchObject({ ok: true });
      const clientHex = after.run.json?.clientId as string;
      expect(await objectSha256(shared, `${clientHex}/after${n}.bin`)).toBe(sha256(after.data));
      expect(instance.process.child.exitCode).toBeNull();
    }
    // Nothing of the refused uploads became visible.
    for (const key of refusedKeys) expect(await objectSha256(shared, key)).toBeUndefined();
  } finally {
    for (const instance of instances) await stopInstance(instance);
    await s3.stop();
    await rm(work, { recursive: true, force: true });
  }
}, 120_000);
