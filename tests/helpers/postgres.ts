/**
 * A throwaway PostgreSQL for tests: a cluster made by `initdb` in a temp directory, listening on
 * loopback at a free port, run as an unprivileged user when the tests run as root (PostgreSQL
 * refuses to run as root). `.ci/run` starts one for the whole run and exports its URL as
 * SFT_TEST_PG_URL; without it (a plain `npm test`), a test file starts its own.
 *
 * Every test file gets a database of its own (`createTestDatabase`), so test files running at
 * once never see each other's rows.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';

/** Environment variable with the URL of a running cluster (a superuser, database `postgres`). */
export const PG_URL_ENV = 'SFT_TEST_PG_URL';
/** The unprivileged account the cluster runs as when the tests run as root. */
const SERVICE_USER = 'nobody';
const SUPERUSER = 'sftci';
const START_TIMEOUT_S = 60;

/** The folder of `initdb` and `pg_ctl`: on the PATH, else Debian's newest under /usr/lib. */
export function findPgBin(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir !== '' && existsSync(path.join(dir, 'initdb'))) return dir;
  }
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((name) => /^\d+$/.test(name))
    .sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const dir = path.join(root, version, 'bin');
    if (existsSync(path.join(dir, 'initdb'))) return dir;
  }
  return undefined;
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Runs a PostgreSQL program as the service user (directly when not root). */
function runAs(program: string, args: readonly string[]): { status: number; output: string } {
  const [command, argv] = isRoot()
    ? ['runuser', ['-u', SERVICE_USER, '--', program, ...args]]
    : [program, [...args]];
  const result = spawnSync(command, argv, { cwd: '/', encoding: 'utf8', stdio: 'pipe' });
  if (result.error) throw result.error;
  return { status: result.status ?? 1, output: `${result.stdout}${result.stderr}` };
}

function mustRun(program: string, args: readonly string[]): void {
  const { status, output } = runAs(program, args);
  if (status !== 0) throw new Error(`${path.basename(program)} failed (${status}):\n${output}`);
}

/** A port free on loopback right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface PgCluster {
  /** Superuser URL of the `postgres` database. */
  readonly url: string;
  readonly port: number;
  /** Fast shutdown: sessions are disconnected, committed data stays. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the cluster and removes its directory. */
  destroy(): Promise<void>;
}

function ownedTempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'sft-pg-'));
  if (isRoot()) {
    const uid = Number(spawnSync('id', ['-u', SERVICE_USER], { encoding: 'utf8' }).stdout.trim());
    const gid = Number(spawnSync('id', ['-g', SERVICE_USER], { encoding: 'utf8' }).stdout.trim());
    chownSync(dir, uid, gid);
  }
  return dir;
}

/** Makes and starts a cluster; throws when PostgreSQL is not installed. */
export async function startPgCluster(): Promise<PgCluster> {
  const bin = findPgBin();
  if (bin === undefined) throw new Error('PostgreSQL is not installed (no initdb)');
  const dir = ownedTempDir();
  const data = path.join(dir, 'data');
  const port = await freePort();
  mustRun(path.join(bin, 'initdb'), [
    '-D',
    data,
    '-U',
    SUPERUSER,
    '--auth=trust',
    '-E',
    'UTF8',
    '--no-sync',
  ]);
  const options = [
    `-c port=${port}`,
    '-c listen_addresses=127.0.0.1',
    `-c unix_socket_directories=${dir}`,
    '-c max_connections=200',
  ].join(' ');
  const pgCtl = path.join(bin, 'pg_ctl');
  const logFile = path.join(dir, 'server.log');
  const start = async (): Promise<void> =>
    mustRun(pgCtl, [
      'start',
      '-w',
      '-t',
      String(START_TIMEOUT_S),
      '-D',
      data,
      '-l',
      logFile,
      '-o',
      options,
    ]);
  const stop = async (): Promise<void> => mustRun(pgCtl, ['stop', '-w', '-m', 'fast', '-D', data]);
  await start();
  return {
    url: `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`,
    port,
    start,
    stop,
    async destroy() {
      runAs(pgCtl, ['stop', '-w', '-m', 'immediate', '-D', data]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `url` with its database replaced by `database`. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

export interface TestDatabase {
  readonly url: string;
  drop(): Promise<void>;
}

/** A new empty database on the cluster of `adminUrl`; `drop` removes it. */
export async function createTestDatabase(adminUrl: string): Promise<TestDatabase> {
  const name = `sft_test_${randomBytes(6).toString('hex')}`;
  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  return {
    url: withDatabase(adminUrl, name),
    async drop() {
      const client = new Client({ connectionString: adminUrl });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

export interface PostgresForTests {
  /** The URL of this test file's own database (valid inside tests). */
  readonly url: string;
  /** The cluster when this file started its own (to stop and start it); else undefined. */
  readonly cluster: PgCluster | undefined;
}

/**
 * Jest hooks: a database of its own for the calling test file, on the cluster of
 * SFT_TEST_PG_URL, or on a cluster the file starts (`ownCluster` forces that, for tests that
 * stop and start PostgreSQL).
 */
export function usePostgres(options: { ownCluster?: boolean } = {}): PostgresForTests {
  let cluster: PgCluster | undefined;
  let database: TestDatabase | undefined;
  beforeAll(async () => {
    let adminUrl = options.ownCluster === true ? undefined : process.env[PG_URL_ENV];
    if (adminUrl === undefined || adminUrl === '') {
      cluster = await startPgCluster();
      adminUrl = cluster.url;
    }
    database = await createTestDatabase(adminUrl);
  }, START_TIMEOUT_S * 1000);
  afterAll(async () => {
    await database?.drop().catch(() => undefined);
    await cluster?.destroy();
  }, START_TIMEOUT_S * 1000);
  return {
    get url(): string {
      if (database === undefined) throw new Error('usePostgres: no database (beforeAll failed)');
      return database.url;
    },
    get cluster(): PgCluster | undefined {
      return cluster;
    },
  };
}

/** Runs `pg_isready`-like probing: resolves once a connection to `url` succeeds. */
export async function waitForPostgres(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new Client({ connectionString: url });
    try {
      await client.connect();
      await client.end();
      return;
    } catch (err) {
      await client.end().catch(() => undefined);
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}
