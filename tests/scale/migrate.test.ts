/**
 * `sft-server admin migrate`: a single box (SQLite + its data folder) moved into PostgreSQL +
 * S3. Clients keep their keys (sealed again under the same master key), files and kept
 * versions arrive byte for byte (SHA-256 checked on both ends), the audit trail arrives in
 * order, and a migrated client reconnects to a server on the new backends. Migrating into a
 * target that already has clients is refused.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { usePostgres } from '../helpers/postgres';
import { useS3 } from '../helpers/s3';
import { startServerProcess } from '../helpers/server-process';
import { runClient } from '../v4/helpers';
import {
  objectSha256,
  runAdmin,
  runAdminRaw,
  sha256,
  startInstance,
  stopInstance,
  type SharedBackends,
} from './instances';

const pg = usePostgres();
const s3 = useS3();
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'sft-migrate-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

test('a SQLite box migrates into PostgreSQL + S3 and its clients carry on there', async () => {
  const shared: SharedBackends = {
    databaseUrl: pg.url,
    s3Endpoint: s3.endpoint,
    bucket: s3.bucket,
    prefix: 'migrated/',
  };
  const keyFile = join(work, 'master.key');
  await writeFile(keyFile, randomBytes(32).toString('base64'), { mode: 0o600 });
  const box = join(work, 'box');
  const single = await startServerProcess(box, { args: ['--master-key-file', keyFile] });
  const dir = await mkdtemp(join(work, 'client-'));
  const first = randomBytes(40_000);
  const second = randomBytes(50_000);
  const file = join(work, 'notes.bin');
  const send = (port: number, path: string) =>
    runClient(dir, ['--protocol', 'v3', '--server', `127.0.0.1:${port}`, '--name', 'erin', path]);
  await writeFile(file, first);
  const stored = await send(single.port, file);
  expect(stored.json).toMatchObject({ ok: true, registered: true });
  await writeFile(file, second);
  expect((await send(single.port, file)).json).toMatchObject({ ok: true });
  await single.stop('SIGTERM');

  const migrate = (extra: readonly string[] = []) =>
    runAdmin(shared, [
      'migrate',
      '--json',
      '--data-dir',
      box,
      '--to',
      shared.databaseUrl,
      '--master-key-file',
      keyFile,
      ...extra,
    ]);
  // runAdmin appends --database: migrate refuses it (the source is always --data-dir).
  const refused = await migrate();
  expect(refused.code).toBe(2);
  expect(refused.stderr).toContain('migrate reads --data-dir');
  const done = await runAdminWithoutDatabase(shared, box, keyFile);
  expect(done.stderr).not.toContain('sft-server admin:');
  expect(done.code).toBe(0);
  const report = JSON.parse(done.stdout) as {
    clients: number;
    files: number;
    versions: number;
    auditRows: number;
    objects: Array<{ key: string; sha256: string }>;
  };
  const clientHex = stored.json?.clientId as string;
  expect(report).toMatchObject({ clients: 1, files: 1, versions: 1 });
  expect(report.auditRows).toBeGreaterThan(4);
  expect(report.objects).toEqual(
    expect.arrayContaining([
      { key: `${clientHex}/notes.bin`, sha256: sha256(second) },
      { key: `.versions/${clientHex}/notes.bin/1`, sha256: sha256(first) },
    ]),
  );
  expect(await objectSha256(shared, `${clientHex}/notes.bin`)).toBe(sha256(second));
  expect(await objectSha256(shared, `.versions/${clientHex}/notes.bin/1`)).toBe(sha256(first));

  // Twice is refused: the target has clients now.
  const again = await runAdminWithoutDatabase(shared, box, keyFile);
  expect(again.code).toBe(1);
  expect(again.stderr).toContain('the target already has clients');

  // The client reconnects (its AES key came along) to a server on the new backends.
  const instance = await startInstance(shared, { args: ['--master-key-file', keyFile] });
  try {
    const third = join(work, 'later.bin');
    await writeFile(third, randomBytes(30_000));
    const after = await send(instance.port, third);
    expect(after.json).toMatchObject({ ok: true, registered: false, clientId: clientHex });
    const versions = await runAdmin(shared, ['versions', 'erin', 'notes.bin', '--json']);
    expect(versions.code).toBe(0);
    expect(JSON.stringify(JSON.parse(versions.stdout))).toContain('"version":1');
  } finally {
    await stopInstance(instance);
  }
}, 120_000);

/** `admin migrate` with the target given as --to (and the bytes as --storage). */
function runAdminWithoutDatabase(shared: SharedBackends, box: string, keyFile: string) {
  return runAdminRaw([
    'migrate',
    '--json',
    '--data-dir',
    box,
    '--to',
    shared.databaseUrl,
    '--storage',
    `s3://${shared.bucket}/${shared.prefix}`,
    '--s3-endpoint',
    shared.s3Endpoint,
    '--master-key-file',
    keyFile,
  ]);
}
