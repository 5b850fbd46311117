/**
 * Uploads of many connections finishing together share their flushes (group commit of rows,
 * one folder fsync for several renames); a SIGKILL right after a batch of 1603s must still find
 * every answered upload complete after restart: its file with the bytes sent, its row with the
 * size and cksum answered, and no row whose file is missing or differs. (A kill cannot show a
 * flush that was skipped, only one done in the wrong order; durability.test.ts watches the
 * flushes themselves.)
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Cksum } from '../../shared/cksum';
import { DATABASE_FILE_NAME, openSqliteStore } from '../../server/storage/sqlite';
import { startServerProcess, type ServerProcess } from '../helpers/server-process';
import { fileReceived, RawClient, Reply, uploadPackets } from '../helpers/raw-client';
import { registerWithKey, removeDir, tempDir, type Registered } from '../server/harness';

const CONNECTIONS = 6;
/** Answers after which the server is killed. */
const KILL_AFTER = 40;
const FILE_BYTES = 30_000;

interface Answered {
  readonly client: Registered;
  readonly name: string;
  readonly plaintext: Buffer;
  readonly cksum: number;
}

function cksum(b: Buffer): number {
  const c = new Cksum();
  c.update(b);
  return c.digest();
}

let dataDir: string;
let server: ServerProcess | undefined;

beforeEach(async () => {
  dataDir = await tempDir('sft-durability-crash-');
});

afterEach(async () => {
  if (server !== undefined && server.child.exitCode === null) await server.stop('SIGKILL');
  server = undefined;
  await removeDir(dataDir);
});

it('SIGKILL right after a batch of 1603s: every answered upload is there, file and row alike', async () => {
  server = await startServerProcess(dataDir, {
    args: ['--log-level', 'info', '--max-connections-per-ip', '100'],
  });
  const running = server;
  const clients = await Promise.all(
    Array.from({ length: CONNECTIONS }, () => RawClient.connect(running.port)),
  );
  const people = await Promise.all(clients.map((c, i) => registerWithKey(c, `crash ${i}`)));
  const answered: Answered[] = [];
  let killed = false;
  await Promise.all(
    clients.map(async (c, i) => {
      for (let k = 0; !killed; k++) {
        const name = `file-${k}.bin`;
        const plaintext = randomBytes(FILE_BYTES);
        let r;
        try {
          r = await c.request(uploadPackets(people[i].id, name, people[i].aesKey, plaintext));
        } catch {
          return; // the server is gone
        }
        expect(r.code).toBe(Reply.FILE_RECEIVED);
        answered.push({ client: people[i], name, plaintext, cksum: fileReceived(r).cksum });
        if (answered.length >= KILL_AFTER && !killed) {
          // At once, while other connections' uploads are between their flushes.
          killed = true;
          running.child.kill('SIGKILL');
        }
      }
    }),
  );
  await running.exited;
  for (const c of clients) c.destroy();
  expect(answered.length).toBeGreaterThanOrEqual(KILL_AFTER);

  // The server starts again on what the kill left (and sweeps unfinished uploads).
  server = await startServerProcess(dataDir, { args: ['--log-level', 'info'] });
  await server.stop('SIGTERM');

  const store = await openSqliteStore({
    path: join(dataDir, DATABASE_FILE_NAME),
    readOnly: true,
  });
  try {
    expect(await store.integrityCheck()).toEqual(['ok']);
    const missing: string[] = [];
    for (const a of answered) {
      const hex = a.client.id.toString('hex');
      const row = await store.findFile(a.client.id, a.name);
      const bytes = await readFile(join(dataDir, hex, a.name)).catch(() => undefined);
      if (row === undefined) missing.push(`${hex}/${a.name}: no row`);
      else if (row.cksum !== a.cksum || row.size !== a.plaintext.length)
        missing.push(`${hex}/${a.name}: row differs from the answer`);
      if (bytes === undefined) missing.push(`${hex}/${a.name}: no file`);
      else if (!bytes.equals(a.plaintext)) missing.push(`${hex}/${a.name}: file differs`);
    }
    expect(missing).toEqual([]);
    // Consistent beyond the answered ones: no row without its complete file.
    const broken: string[] = [];
    for (const row of await store.listFiles()) {
      const where = join(dataDir, row.clientId.toString('hex'), row.fileName);
      const bytes = await readFile(where).catch(() => undefined);
      if (bytes === undefined || bytes.length !== row.size || cksum(bytes) !== row.cksum) {
        broken.push(where);
      }
    }
    expect(broken).toEqual([]);
  } finally {
    await store.close();
  }
});
