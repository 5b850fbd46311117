/**
 * A locked database ("disk or database errors → 1607, temp files removed, the server
 * keeps serving others"), on the real `sft-server` process with its real SQLite store: another
 * process takes the write lock of defensive.db (as a backup tool or a stray sqlite3 shell
 * would). The upload that needs the database meanwhile gets 1607 once the server's busy wait
 * runs out; its file is neither kept nor left as a temp file; once the lock is gone everything
 * works again. The in-process store faults (full disk, failing commit, …) are in
 * tests/server/failing-store.test.ts.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AsyncDatabase, OPEN_READWRITE } from '../../server/storage/sqlite/async';
import { DATABASE_FILE_NAME } from '../../server/storage/sqlite';
import { Code, RawClient, Reply, checksum, uploadPackets } from '../helpers/raw-client';
import type { ServerProcess } from '../helpers/server-process';
import {
  completeSession,
  linesAtLeast,
  patternBytes,
  runAdminCommand,
  spawnHardened,
  uploadAndConfirm,
} from '../helpers/hardening-server';
import { reconnectWithKey, type Registered } from '../server/harness';

const PINO_ERROR = 50;

let root: string;
let dataDir: string;
let server: ServerProcess;
let locker: AsyncDatabase | undefined;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sft-locked-'));
  dataDir = join(root, 'data');
  await mkdir(dataDir);
  server = await spawnHardened(dataDir);
});

afterAll(async () => {
  await locker?.close().catch(() => undefined);
  await server?.stop('SIGKILL');
  if (root) await rm(root, { recursive: true, force: true });
});

async function incoming(): Promise<string[]> {
  const dir = join(dataDir, '.incoming');
  return existsSync(dir) ? readdir(dir) : [];
}

describe('another process holds the write lock of defensive.db', () => {
  let me: Registered;

  it('an upload finishing meanwhile gets 1607; no file, no temp file, no row; the server lives', async () => {
    me = await completeSession(server.port, dataDir, { name: 'lockstep', size: 2000 });
    // The connection's session (§9) is made before the lock: its 1027 writes the key.
    const client = await RawClient.connect(server.port);
    const bound = await reconnectWithKey(client, me);
    locker = await AsyncDatabase.open(join(dataDir, DATABASE_FILE_NAME), OPEN_READWRITE);
    await locker.exec('BEGIN EXCLUSIVE');

    try {
      const packets = uploadPackets(me.id, 'blocked.bin', bound.aesKey, patternBytes(5000, 9));
      // Generous: the server waits out its busy timeout (5 s), possibly twice (row, audit).
      expect((await client.request(packets, 40000)).code).toBe(Reply.ERROR);
      // The connection stays usable (§9): a 1029 for the file that was not stored → 1607.
      const ack = await client.request(checksum(Code.CRC_OK, me.id, 'blocked.bin'), 40000);
      expect(ack.code).toBe(Reply.ERROR);
    } finally {
      client.destroy();
    }
    expect(existsSync(join(dataDir, me.id.toString('hex'), 'blocked.bin'))).toBe(false);
    expect(await incoming()).toEqual([]);
    // WAL readers are not blocked by the writer's lock: the operator can look meanwhile.
    const files = runAdminCommand(dataDir, ['files', '--json']);
    expect(files.status).toBe(0);
    expect(
      (JSON.parse(files.stdout) as Array<{ fileName: string }>).map((f) => f.fileName),
    ).toEqual(['lockstep.bin']);
    expect(server.child.exitCode).toBeNull();
    // Logged as an error with a storage reason (a structured field), not as a crash.
    const errors = linesAtLeast(server, PINO_ERROR);
    expect(errors.some((l) => l.reason === 'STORAGE_DATABASE')).toBe(true);
    expect(errors.filter((l) => l.level >= 60)).toEqual([]);
  });

  it('once the lock is released, the same client and a new one are served', async () => {
    await locker?.exec('ROLLBACK');
    await locker?.close();
    locker = undefined;
    const client = await RawClient.connect(server.port);
    try {
      const bound = await reconnectWithKey(client, me);
      await uploadAndConfirm(client, dataDir, bound, { fileName: 'blocked.bin', size: 5000 });
    } finally {
      client.destroy();
    }
    await completeSession(server.port, dataDir, { name: 'after-the-lock', size: 3000 });
    expect(await incoming()).toEqual([]);
  });
});
