/**
 * Pipelined v4 uploads (docs/protocol-v4.md §5.10) commit while the connection reads on, and
 * share their flushes with every upload ending close to them. A SIGKILL right after a batch of
 * STOREDs must still find every answered upload complete after a restart: its file with the
 * bytes sent, its row with the size and the SHA-256 answered. (A kill cannot show a flush that
 * was skipped, only one done in the wrong order; tests/storage/durability.test.ts watches the
 * flushes themselves, and STORED waits for the same commit as in §5.4.) A SIGTERM with
 * pipelined uploads in flight lets the server answer what it read, then exit 0; every STORED
 * it sent is durable too.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RequestCode, ResponseCode, UploadFlag } from '../../protocol/v4';
import { DATABASE_FILE_NAME, openSqliteStore } from '../../server/storage/sqlite';
import { startServerProcess, type ServerProcess } from '../helpers/server-process';
import { removeDirs, tempDir } from './helpers';
import { registeredPeer, type RawV4 } from './raw-v4';

const CONNECTIONS = 4;
/** Uploads each connection keeps in flight, as our client does. */
const WINDOW = 8;
/** STOREDs after which the server is killed. */
const KILL_AFTER = 60;
const FILE_BYTES = 20_000;

const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

interface Answered {
  readonly clientId: Buffer;
  readonly name: string;
  readonly data: Buffer;
}

let dataDir: string;
let server: ServerProcess | undefined;

beforeEach(async () => {
  dataDir = await tempDir('pipelined-crash');
});

afterEach(async () => {
  if (server !== undefined && server.child.exitCode === null) await server.stop('SIGKILL');
  server = undefined;
  await removeDirs(dataDir);
});

/** The frames of one pipelined upload, all sent at once. */
function sendPipelined(peer: RawV4, fileName: string, data: Buffer): void {
  peer.send({
    code: RequestCode.UPLOAD_BEGIN_FLAGS,
    fileName,
    size: data.length,
    check: randomBytes(32),
    flags: UploadFlag.PIPELINED,
  });
  peer.send({ code: RequestCode.UPLOAD_DATA, data });
  peer.send({ code: RequestCode.UPLOAD_END, sha256: sha256(data) });
}

/**
 * After a restart on what the server left: every answered upload has its file, byte for byte,
 * and its verified row with the SHA-256 answered; no row is without its complete file.
 */
async function expectDurable(answered: readonly Answered[]): Promise<void> {
  // The server starts again on what the kill left (and sweeps what it must).
  server = await startServerProcess(dataDir, { args: ['--log-level', 'info'] });
  await server.stop('SIGTERM');

  const store = await openSqliteStore({ path: join(dataDir, DATABASE_FILE_NAME), readOnly: true });
  try {
    expect(await store.integrityCheck()).toEqual(['ok']);
    const missing: string[] = [];
    for (const a of answered) {
      const where = `${a.clientId.toString('hex')}/${a.name}`;
      const row = await store.findFile(a.clientId, a.name);
      const bytes = await readFile(join(dataDir, where)).catch(() => undefined);
      if (row === undefined) missing.push(`${where}: no row`);
      else if (row.status !== 'verified' || !row.v4?.sha256.equals(sha256(a.data)))
        missing.push(`${where}: row differs from the answer`);
      if (bytes === undefined) missing.push(`${where}: no file`);
      else if (!bytes.equals(a.data)) missing.push(`${where}: file differs`);
    }
    expect(missing).toEqual([]);
    // Consistent beyond the answered ones: no row without its complete file.
    const broken: string[] = [];
    for (const row of await store.listFiles()) {
      const where = join(dataDir, row.clientId.toString('hex'), row.fileName);
      const bytes = await readFile(where).catch(() => undefined);
      if (bytes === undefined || !row.v4?.sha256.equals(sha256(bytes))) broken.push(where);
    }
    expect(broken).toEqual([]);
  } finally {
    await store.close();
  }
}

it('SIGKILL right after a batch of pipelined STOREDs: every answered upload is there, file and row alike', async () => {
  server = await startServerProcess(dataDir, { args: ['--log-level', 'info'] });
  const running = server;
  const people = await Promise.all(
    Array.from({ length: CONNECTIONS }, (_, i) => registeredPeer(running.port, `crash ${i}`)),
  );
  const answered: Answered[] = [];
  let killed = false;
  await Promise.all(
    people.map(async ({ peer, clientHex }) => {
      const inFlight: Array<{ name: string; data: Buffer }> = [];
      let next = 0;
      const send = (): void => {
        const upload = { name: `file-${next++}.bin`, data: randomBytes(FILE_BYTES) };
        sendPipelined(peer, upload.name, upload.data);
        inFlight.push(upload);
      };
      while (inFlight.length < WINDOW) send();
      while (!killed) {
        const upload = inFlight.shift();
        if (upload === undefined) return;
        try {
          expect((await peer.next()).code).toBe(ResponseCode.UPLOAD_OFFSET);
          const stored = await peer.next();
          expect(stored.code).toBe(ResponseCode.STORED);
          if (stored.code === ResponseCode.STORED)
            expect(stored.sha256).toEqual(sha256(upload.data));
        } catch (err) {
          if (killed) return; // the server is gone
          throw err;
        }
        answered.push({ clientId: Buffer.from(clientHex, 'hex'), ...upload });
        if (answered.length >= KILL_AFTER && !killed) {
          // At once, while the other uploads in flight are between their flushes.
          killed = true;
          running.child.kill('SIGKILL');
          return;
        }
        send();
      }
    }),
  );
  await running.exited;
  for (const { peer } of people) peer.close();
  expect(answered.length).toBeGreaterThanOrEqual(KILL_AFTER);

  await expectDurable(answered);
});

it('SIGTERM with pipelined uploads in flight: every STORED sent is durable, and the server exits 0', async () => {
  server = await startServerProcess(dataDir, {
    args: ['--log-level', 'info', '--shutdown-grace', '20'],
  });
  const running = server;
  const { peer, clientHex } = await registeredPeer(running.port, 'graceful');
  const uploads = Array.from({ length: 2 * WINDOW }, (_, i) => ({
    name: `g-${i}.bin`,
    data: randomBytes(FILE_BYTES),
  }));
  for (const upload of uploads) sendPipelined(peer, upload.name, upload.data);
  // Once the server is reading them: the first upload is in progress, the rest on their way.
  expect((await peer.next()).code).toBe(ResponseCode.UPLOAD_OFFSET);
  running.child.kill('SIGTERM');
  // Answers in order until the server closes the connection once it is quiet.
  const answered: Answered[] = [];
  for (const [i, upload] of uploads.entries()) {
    const offset =
      i === 0 ? { code: ResponseCode.UPLOAD_OFFSET } : await peer.next().catch(() => undefined);
    if (offset === undefined) break;
    expect(offset.code).toBe(ResponseCode.UPLOAD_OFFSET);
    const stored = await peer.next().catch(() => undefined);
    if (stored === undefined) break;
    expect(stored.code).toBe(ResponseCode.STORED);
    answered.push({ clientId: Buffer.from(clientHex, 'hex'), ...upload });
  }
  expect(await running.exited).toBe(0);
  peer.close();
  expect(answered.length).toBeGreaterThan(0);
  await expectDurable(answered);
});
