/**
 * The PostgreSQL + S3 rows of `npm run bench`: the same single, many and concurrent loads as
 * the SQLite + disk rows, against a server started with `--database postgres://…` and
 * `--storage s3://…`. The two services are CI's own (`.ci/services.ts`: a throwaway cluster
 * made by `initdb` and an s3rver on loopback), run as a child process so the bench measures
 * the server exactly as a deployment runs it. When they cannot start, the rows are skipped.
 */
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { alternate, type KindFigures } from './alternate';
import { runConcurrent, type ConcurrentResult } from './concurrent';
import { ROOT, startServer, type RunningServer } from './processes';
import { peakRss, resetPeakRss } from './rss';
import { median } from './stats';

export type Row = [string, string, string, string, string];

/** s3rver checks signatures against this fixed account (tests/helpers/s3.ts). */
const S3_ENV = {
  AWS_ACCESS_KEY_ID: 'S3RVER',
  AWS_SECRET_ACCESS_KEY: 'S3RVER',
  AWS_REGION: 'us-east-1',
  // The SDK's notice about future Node versions would print once per server start.
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
} as const;
const BUCKET = 'sft-bench';
const SERVICES_START_MS = 120_000;
const SERVICES_STOP_MS = 30_000;
const POLL_MS = 250;
const MB = 1e6;

interface Services {
  readonly pgUrl: string;
  readonly s3Endpoint: string;
  stop(): Promise<void>;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), SERVICES_STOP_MS);
  await exited;
  clearTimeout(timer);
}

/** `.ci/services.ts` writes `NAME=value` lines once both services are up. */
function parseEnvFile(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) vars.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return vars;
}

/** Starts PostgreSQL and s3rver; a reason string when they cannot be started. */
async function startServices(work: string): Promise<Services | string> {
  const envFile = join(work, 'services.env');
  const child = spawn(
    process.execPath,
    ['-r', 'ts-node/register/transpile-only', join(ROOT, '.ci', 'services.ts'), envFile],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + SERVICES_START_MS;
  while (!existsSync(envFile) || readFileSync(envFile, 'utf8') === '') {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      await stopChild(child);
      const last = stderr.trim().split('\n').filter(Boolean);
      return `PostgreSQL or s3rver did not start: ${last[0] ?? 'timed out'}`;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  const vars = parseEnvFile(readFileSync(envFile, 'utf8'));
  const pgUrl = vars.get('SFT_TEST_PG_URL');
  const s3Endpoint = vars.get('SFT_TEST_S3_ENDPOINT');
  if (pgUrl === undefined || s3Endpoint === undefined) {
    await stopChild(child);
    return `the test services wrote no URLs to ${envFile}`;
  }
  return { pgUrl, s3Endpoint, stop: () => stopChild(child) };
}

async function createBucket(endpoint: string): Promise<void> {
  const client = new S3Client({
    endpoint,
    region: S3_ENV.AWS_REGION,
    credentials: {
      accessKeyId: S3_ENV.AWS_ACCESS_KEY_ID,
      secretAccessKey: S3_ENV.AWS_SECRET_ACCESS_KEY,
    },
    forcePathStyle: true,
  });
  try {
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  } finally {
    client.destroy();
  }
}

export interface BackendsOptions {
  readonly work: string;
  readonly bigFile: string;
  /** Sets of files new to any server; the first `manyRuns` are sent. */
  readonly manySets: readonly (readonly string[])[];
  /** A small file whose upload registers a client. */
  readonly seed: string;
  readonly serverFlags: readonly string[];
  /** The client takes `--protocol` (then v3 is asked for, and v4 runs too). */
  readonly protocolFlag: boolean;
  readonly singleRuns: number;
  readonly manyRuns: number;
  readonly sessions: number;
  readonly fileBytes: number;
  /** A successful `sft-client` run: its wall time in ms. */
  readonly clientOk: (args: string[], cwd: string) => Promise<number>;
  /** `runs` timed runs of `run`, each after a sync. */
  readonly timed: (runs: number, run: (i: number) => Promise<number>) => Promise<number[]>;
}

export interface BackendsFigures {
  readonly database: 'postgres';
  readonly storage: 's3 (s3rver)';
  readonly single: KindFigures;
  readonly singleV4: KindFigures | undefined;
  readonly manyMs: number[];
  readonly manyPeakRss: number | undefined;
  readonly concurrent: ConcurrentResult;
  readonly concurrentPeakRss: number | undefined;
}

/**
 * The single, many and concurrent loads against PostgreSQL + S3; a reason when skipped. A
 * failure of these rows is reported as the reason, so the SQLite + disk rows still print.
 */
export async function measureBackends(o: BackendsOptions): Promise<BackendsFigures | string> {
  const services = await startServices(o.work);
  if (typeof services === 'string') return services;
  try {
    return await loads(o, services);
  } catch (err) {
    return `failed: ${err instanceof Error ? err.message : String(err)}`;
  } finally {
    await services.stop();
  }
}

async function loads(o: BackendsOptions, services: Services): Promise<BackendsFigures> {
  let server: RunningServer | undefined;
  try {
    await createBucket(services.s3Endpoint);
    const env = { ...process.env, ...S3_ENV };
    const flags = [
      ...o.serverFlags,
      '--database',
      services.pgUrl,
      '--storage',
      `s3://${BUCKET}/bench`,
      '--s3-endpoint',
      services.s3Endpoint,
    ];
    const start = (name: string): Promise<RunningServer> =>
      startServer(join(o.work, name), flags, env);
    server = await start('data-pg-s3');
    const common = (configDir: string, name: string, protocol: string[]): string[] => {
      mkdirSync(configDir, { recursive: true });
      return [
        '--config-dir',
        configDir,
        '--server',
        `127.0.0.1:${server!.port}`,
        '--name',
        name,
        '--quiet',
        ...protocol,
      ];
    };
    const v3 = common(
      join(o.work, 'client-pg-s3'),
      'Bench PG S3',
      o.protocolFlag ? ['--protocol', 'v3'] : [],
    );
    const v4 = common(join(o.work, 'client-pg-s3-v4'), 'Bench PG S3 4', []);
    // Register (and pin, for v4) first, so every timed run reconnects.
    await o.clientOk([...v3, o.seed], o.work);
    if (o.protocolFlag) await o.clientOk([...v4, o.seed], o.work);

    const singles = await alternate<'v3' | 'v4'>(server.pid, o.singleRuns, {
      v3: () => o.clientOk([...v3, o.bigFile], o.work),
      ...(o.protocolFlag ? { v4: () => o.clientOk([...v4, o.bigFile], o.work) } : {}),
    });
    if (singles.v3 === undefined) throw new Error('the PostgreSQL + S3 v3 single runs did not run');

    resetPeakRss(server.pid);
    const manyMs = await o.timed(o.manyRuns, (i) => o.clientOk([...v3, ...o.manySets[i]], o.work));
    const manyPeakRss = peakRss(server.pid);
    await server.stop();

    // A fresh process, so its peak RSS is its own; same database and bucket.
    server = await start('data-pg-s3-concurrent');
    resetPeakRss(server.pid);
    const concurrent = await runConcurrent({
      port: server.port,
      sessions: o.sessions,
      fileBytes: o.fileBytes,
      workDir: join(o.work, 'pg-s3'),
    });
    const concurrentPeakRss = peakRss(server.pid);
    return {
      database: 'postgres',
      storage: 's3 (s3rver)',
      single: singles.v3,
      singleV4: singles.v4,
      manyMs,
      manyPeakRss,
      concurrent,
      concurrentPeakRss,
    };
  } finally {
    await server?.stop();
  }
}

const rate = (bytes: number, ms: number): number => bytes / MB / (ms / 1000);
const ms0 = (ms: number): string => `${ms.toFixed(0)} ms`;
const mb = (bytes: number | undefined): string =>
  bytes === undefined ? 'n/a' : `${(bytes / MB).toFixed(0)} MB`;

/** Table rows, beside the SQLite + disk rows; one row saying why when skipped. */
export function backendsRows(
  figures: BackendsFigures | string,
  sizes: { singleBytes: number; manyBytes: number; manyFiles: number },
): Row[] {
  const tag = 'PostgreSQL + S3';
  if (typeof figures === 'string') return [[`${tag}: skipped`, figures, '', '', '']];
  const single = (f: KindFigures): string =>
    `${rate(sizes.singleBytes, median(f.runsMs)).toFixed(0)} MB/s (${ms0(median(f.runsMs))}); RSS ${mb(f.peakRss)}`;
  const c = figures.concurrent;
  return [
    [
      `${tag} single: 64 MB over v3, median of ${figures.single.runsMs.length}`,
      single(figures.single),
      '',
      '',
      'reported',
    ],
    ...(figures.singleV4 === undefined
      ? []
      : ([
          [
            `${tag} single: 64 MB over v4, median of ${figures.singleV4.runsMs.length}`,
            single(figures.singleV4),
            '',
            '',
            'reported',
          ],
        ] as Row[])),
    [
      `${tag} many: ${sizes.manyFiles} × 100 KiB, one client run, median of ${figures.manyMs.length}`,
      `${rate(sizes.manyBytes, median(figures.manyMs)).toFixed(0)} MB/s (${ms0(median(figures.manyMs))}); RSS ${mb(figures.manyPeakRss)}`,
      '',
      '',
      'reported',
    ],
    [
      `${tag} concurrent: ${c.sessions} sessions at once`,
      `${c.sessionsPerSecond.toFixed(0)} sessions/s, ${c.verified}/${c.sessions} verified, p50 ${ms0(c.p50Ms)}, p99 ${ms0(c.p99Ms)}; RSS ${mb(figures.concurrentPeakRss)}`,
      '',
      '',
      'all verified',
    ],
  ];
}

/** The `pgS3` entry of bench/results.json. */
export function backendsJson(
  figures: BackendsFigures | string,
  sizes: { singleBytes: number; manyBytes: number },
): Record<string, unknown> {
  if (typeof figures === 'string') return { skipped: figures };
  const kind = (f: KindFigures): Record<string, unknown> => ({
    bytes: sizes.singleBytes,
    runsMs: f.runsMs,
    medianMs: median(f.runsMs),
    MBps: rate(sizes.singleBytes, median(f.runsMs)),
    serverPeakRssBytes: f.peakRss,
  });
  return {
    database: figures.database,
    storage: figures.storage,
    single: kind(figures.single),
    singleV4: figures.singleV4 === undefined ? null : kind(figures.singleV4),
    many: {
      bytes: sizes.manyBytes,
      runsMs: figures.manyMs,
      medianMs: median(figures.manyMs),
      MBps: rate(sizes.manyBytes, median(figures.manyMs)),
      serverPeakRssBytes: figures.manyPeakRss,
    },
    concurrent: { ...figures.concurrent, serverPeakRssBytes: figures.concurrentPeakRss },
  };
}
