/**
 * Keys at rest, end to end: the built `sft-server` process, a client that registers,
 * reconnects and uploads, and a scan of `defensive.db` with its `-wal` and `-shm` files for the
 * AES keys the client learned by unwrapping 1602 and 1605 with its own RSA key (§4). With a
 * master key (file or SFT_MASTER_KEY) the 32 key bytes must be nowhere in those files, nor in
 * the log; without one they are there (which shows the scan can see them) and the server warns.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DATABASE_FILE_NAME } from '../../server/storage/sqlite';
import { MASTER_KEY_ENV } from '../../server/storage/master-key';
import { RawClient, Reply, reconnect } from '../helpers/raw-client';
import type { ServerProcess } from '../helpers/server-process';
import {
  completeSession,
  linesAtLeast,
  runAdminCommand,
  spawnHardened,
  uploadAndConfirm,
} from '../helpers/hardening-server';
import { reconnectWithKey, unwrapWith, type Registered } from '../server/harness';

const PINO_WARN = 40;
const KEY_BYTES = 32;

let root: string;
const running: ServerProcess[] = [];

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'sft-keys-'));
});

afterEach(async () => {
  for (const s of running.splice(0)) await s.stop('SIGKILL');
  await rm(root, { recursive: true, force: true });
});

/** `openssl rand -base64 32 > master.key; chmod 600 master.key`, as docs/security.md says. */
async function masterKeyFile(key: Buffer): Promise<string> {
  const file = join(root, 'master.key');
  await writeFile(file, `${key.toString('base64')}\n`);
  await chmod(file, 0o600);
  return file;
}

async function start(
  dataDir: string,
  flags: readonly string[] = [],
  env?: NodeJS.ProcessEnv,
): Promise<ServerProcess> {
  await mkdir(dataDir, { recursive: true });
  // trace: the most the server ever logs, so a key in any log line would show.
  const server = await spawnHardened(dataDir, [...flags, '--log-level', 'trace'], {
    env: { [MASTER_KEY_ENV]: '', ...env },
  });
  running.push(server);
  return server;
}

async function stop(server: ServerProcess): Promise<void> {
  expect(await server.stop('SIGTERM')).toBe(0);
  running.splice(running.indexOf(server), 1);
}

/** Registers, uploads, reconnects (new key, 1605) and uploads again; returns both AES keys. */
async function sessionKeys(server: ServerProcess, dataDir: string, name: string) {
  const first = await completeSession(server.port, dataDir, { name, size: 3000 });
  const second = await reconnectAndUpload(server, dataDir, first, `${name}-again.bin`);
  return { me: first as Registered, keys: [first.aesKey, second] };
}

/** 1027 → 1605; unwraps the new AES key with the client's RSA key and uploads with it. */
async function reconnectAndUpload(
  server: ServerProcess,
  dataDir: string,
  me: Registered,
  fileName: string,
): Promise<Buffer> {
  const client = await RawClient.connect(server.port);
  try {
    const r = await client.request(reconnect(me.id, me.name));
    expect(r.code).toBe(Reply.RECONNECTED);
    const aesKey = unwrapWith(me.keys, r.payload.subarray(16, 16 + 128));
    expect(aesKey).toHaveLength(KEY_BYTES);
    await uploadAndConfirm(client, dataDir, { ...me, aesKey }, { fileName, size: 2000 });
    return aesKey;
  } finally {
    client.destroy();
  }
}

/** For each database file (defensive.db, -wal, -shm), which of `keys` occur in its bytes. */
async function keysInDatabaseFiles(
  dataDir: string,
  keys: readonly Buffer[],
): Promise<Array<{ file: string; key: number }>> {
  const found: Array<{ file: string; key: number }> = [];
  const names = (await readdir(dataDir)).filter((n) => n.startsWith(DATABASE_FILE_NAME));
  expect(names).toContain(DATABASE_FILE_NAME);
  for (const file of names) {
    const bytes = await readFile(join(dataDir, file));
    keys.forEach((key, i) => {
      if (bytes.includes(key)) found.push({ file, key: i });
    });
  }
  return found;
}

/** Secrets in the log or on stderr, as hex or base64 (how a logger would print a Buffer). */
function secretsInLog(server: ServerProcess, secrets: readonly Buffer[]): string[] {
  const text = JSON.stringify(server.lines) + server.stderr();
  const leaks: string[] = [];
  secrets.forEach((secret, i) => {
    for (const encoding of ['hex', 'base64'] as const) {
      if (text.includes(secret.toString(encoding))) leaks.push(`secret ${i} as ${encoding}`);
    }
  });
  return leaks;
}

function masterKeyWarnings(server: ServerProcess): number {
  return linesAtLeast(server, PINO_WARN).filter((l) => String(l.msg).includes(MASTER_KEY_ENV))
    .length;
}

describe('keys at rest, real server process', () => {
  it('--master-key-file: no AES key in defensive.db, -wal or -shm, running or stopped, nor in the log', async () => {
    const master = randomBytes(KEY_BYTES);
    const dataDir = join(root, 'data');
    const server = await start(dataDir, ['--master-key-file', await masterKeyFile(master)]);
    const { keys } = await sessionKeys(server, dataDir, 'sealed-file');
    const more = await sessionKeys(server, dataDir, 'sealed-file-2');
    const all = [...keys, ...more.keys];
    // While running (pages in the WAL) and after a clean stop (checkpointed into the file).
    expect(await keysInDatabaseFiles(dataDir, all)).toEqual([]);
    await stop(server);
    expect(await keysInDatabaseFiles(dataDir, all)).toEqual([]);
    expect(secretsInLog(server, [master, ...all])).toEqual([]);
    expect(masterKeyWarnings(server)).toBe(0);
    // The admin listing says so, without showing any key.
    const admin = runAdminCommand(dataDir, ['clients', '--json']);
    expect(admin.status).toBe(0);
    const clients = JSON.parse(admin.stdout) as Array<{ name: string; aesKeyEncrypted: boolean }>;
    expect(clients.map((c) => [c.name, c.aesKeyEncrypted]).sort()).toEqual([
      ['sealed-file', true],
      ['sealed-file-2', true],
    ]);
    for (const key of [master, ...all]) {
      expect(admin.stdout.includes(key.toString('hex'))).toBe(false);
    }
  });

  it(`${MASTER_KEY_ENV} in the environment seals the keys the same way`, async () => {
    const master = randomBytes(KEY_BYTES);
    const dataDir = join(root, 'data');
    const server = await start(dataDir, [], { [MASTER_KEY_ENV]: master.toString('base64') });
    const { keys } = await sessionKeys(server, dataDir, 'sealed-env');
    expect(await keysInDatabaseFiles(dataDir, keys)).toEqual([]);
    await stop(server);
    expect(await keysInDatabaseFiles(dataDir, keys)).toEqual([]);
    expect(secretsInLog(server, [master, ...keys])).toEqual([]);
    expect(masterKeyWarnings(server)).toBe(0);
  });

  it('without a master key: one warning at start, and the keys are in the files in the clear', async () => {
    const dataDir = join(root, 'data');
    const server = await start(dataDir);
    const { keys } = await sessionKeys(server, dataDir, 'plain');
    await stop(server);
    // The control for the tests above: the scan does find keys stored in the clear.
    const found = await keysInDatabaseFiles(dataDir, keys);
    expect(found.some((f) => f.key === keys.length - 1)).toBe(true);
    // Warned once, at start, not per client or request; still no key in the log.
    expect(masterKeyWarnings(server)).toBe(1);
    expect(secretsInLog(server, keys)).toEqual([]);
  });

  it('a row stored in the clear is rewritten encrypted on its next use once a master key is set', async () => {
    const dataDir = join(root, 'data');
    const plain = await start(dataDir);
    const first = await completeSession(plain.port, dataDir, { name: 'upgraded', size: 1000 });
    await stop(plain);
    expect(await keysInDatabaseFiles(dataDir, [first.aesKey])).not.toEqual([]);

    const master = randomBytes(KEY_BYTES);
    const sealed = await start(dataDir, ['--master-key-file', await masterKeyFile(master)]);
    // Next use: a reconnect (every connection binds its session, §9) stores a new key, sealed.
    const client = await RawClient.connect(sealed.port);
    try {
      const bound = await reconnectWithKey(client, first);
      await uploadAndConfirm(client, dataDir, bound, { fileName: 'later.bin', size: 1500 });
    } finally {
      client.destroy();
    }
    await stop(sealed);
    expect(await keysInDatabaseFiles(dataDir, [first.aesKey])).toEqual([]);
    const admin = runAdminCommand(dataDir, ['clients', '--json']);
    expect(JSON.parse(admin.stdout)).toEqual([
      expect.objectContaining({ name: 'upgraded', aesKeyEncrypted: true }),
    ]);
    expect(secretsInLog(sealed, [master, first.aesKey])).toEqual([]);
  });

  it('a wrong master key: the client gets 1607, the server keeps serving, no key in the log', async () => {
    const dataDir = join(root, 'data');
    const right = randomBytes(KEY_BYTES);
    const first = await start(dataDir, [], { [MASTER_KEY_ENV]: right.toString('base64') });
    const { me, keys } = await sessionKeys(first, dataDir, 'locked-out');
    await stop(first);

    const wrong = randomBytes(KEY_BYTES);
    const server = await start(dataDir, [], { [MASTER_KEY_ENV]: wrong.toString('base64') });
    const client = await RawClient.connect(server.port);
    try {
      // Its stored key cannot be opened: a storage error, not a crash and not a new identity.
      expect((await client.request(reconnect(me.id, me.name))).code).toBe(Reply.ERROR);
    } finally {
      client.destroy();
    }
    await completeSession(server.port, dataDir, { name: 'newcomer' });
    expect(server.child.exitCode).toBeNull();
    await stop(server);
    expect(secretsInLog(server, [right, wrong, ...keys])).toEqual([]);
  });
});
