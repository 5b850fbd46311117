/**
 * `npm run bench`: measures the project the way a user experiences it. Runs the built
 * `sft-server` and `sft-client` as separate processes on loopback against a temp data
 * directory, prints a table and writes bench/results.json. Not part of CI.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runConcurrent } from './concurrent';
import { settleDisk } from './disk';
import { aesMBps, cksumMBps, opensslSeconds } from './limits';
import { machineInfo } from './machine';
import { ROOT, runClient, startServer, type RunningServer } from './processes';
import { peakRss, resetPeakRss } from './rss';

const MB = 1e6;
const SINGLE_BYTES = 64_000_000;
const SINGLE_RUNS = 5;
const MANY_FILES = 200;
const MANY_FILE_BYTES = 100 * 1024;
const SESSIONS = 200;
/** Loopback benchmarks come from one address: lift the per-address defaults meant for the net. */
const SERVER_FLAGS = [
  '--max-connections-per-ip',
  '1000',
  '--register-rate',
  '100000',
  '--register-burst',
  '1000',
];
const WRITE_BLOCK = 1 << 20;

function writeRandomFile(path: string, size: number): void {
  const fd = openSync(path, 'w');
  try {
    for (let left = size; left > 0; left -= WRITE_BLOCK)
      writeSync(fd, randomBytes(Math.min(left, WRITE_BLOCK)));
  } finally {
    closeSync(fd);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const mib = (bytes: number | undefined): string =>
  bytes === undefined ? 'n/a' : `${(bytes / 2 ** 20).toFixed(1)} MiB`;

async function clientOk(args: string[], cwd: string): Promise<number> {
  const run = await runClient(args, cwd);
  if (run.code !== 0) {
    throw new Error(`sft-client exited ${run.code}: ${run.stderr.trim() || run.stdout.trim()}`);
  }
  return run.ms;
}

async function main(): Promise<void> {
  const machine = machineInfo();
  console.log(
    `machine: ${machine.cores} cores, ${machine.cpu}, ${machine.memoryGiB} GiB, Node ${machine.node}, ${machine.platform}`,
  );
  const work = mkdtempSync(join(tmpdir(), 'sft-bench-'));
  let server: RunningServer | undefined;
  try {
    const dataDir = join(work, 'data');
    const configDir = join(work, 'client');
    const bigFile = join(work, 'single-64MB.bin');
    writeRandomFile(bigFile, SINGLE_BYTES);
    const manyDir = join(work, 'many');
    const manyFiles: string[] = [];
    mkdirSync(manyDir);
    mkdirSync(configDir);
    for (let i = 0; i < MANY_FILES; i++) {
      const f = join(manyDir, `file-${String(i).padStart(3, '0')}.bin`);
      writeRandomFile(f, MANY_FILE_BYTES);
      manyFiles.push(f);
    }
    const seed = join(work, 'seed.txt');
    writeFileSync(seed, 'register first\n');

    server = await startServer(dataDir, SERVER_FLAGS);
    const common = [
      '--config-dir',
      configDir,
      '--server',
      `127.0.0.1:${server.port}`,
      '--name',
      'Bench Client',
      '--quiet',
    ];
    // Register once so every timed run reconnects, as a returning user's does.
    await clientOk([...common, seed], work);

    // 1. single
    settleDisk();
    resetPeakRss(server.pid);
    const singleMs: number[] = [];
    for (let i = 0; i < SINGLE_RUNS; i++) singleMs.push(await clientOk([...common, bigFile], work));
    const singleRss = peakRss(server.pid);
    const singleMedianS = median(singleMs) / 1000;
    const singleMBps = SINGLE_BYTES / MB / singleMedianS;

    // 2. many
    settleDisk();
    resetPeakRss(server.pid);
    const manyMs = await clientOk([...common, ...manyFiles], work);
    const manyRss = peakRss(server.pid);
    const manyMBps = (MANY_FILES * MANY_FILE_BYTES) / MB / (manyMs / 1000);
    await server.stop();

    // 3. concurrent, on a fresh server so its peak RSS is its own
    server = await startServer(join(work, 'data-concurrent'), SERVER_FLAGS);
    resetPeakRss(server.pid);
    const concurrent = await runConcurrent({
      port: server.port,
      sessions: SESSIONS,
      fileBytes: MANY_FILE_BYTES,
      workDir: work,
    });
    const concurrentRss = peakRss(server.pid);
    await server.stop();
    server = undefined;

    // 4. limits
    const opensslS = opensslSeconds(bigFile);
    const sample = randomBytes(SINGLE_BYTES);
    const cksum = cksumMBps(sample);
    const aes = aesMBps(sample);

    const opensslMBps = opensslS === undefined ? undefined : SINGLE_BYTES / MB / opensslS;
    const rows: Array<[string, string, string]> = [
      [
        'single: 64 MB upload, fresh process, median of 5',
        `${singleMBps.toFixed(0)} MB/s (${(singleMedianS * 1000).toFixed(0)} ms)`,
        `≥ 250 MB/s; server peak RSS ${mib(singleRss)} (< 100 MiB)`,
      ],
      [
        'single vs openssl enc time',
        opensslS === undefined ? 'n/a' : `${(singleMedianS / opensslS).toFixed(2)}× openssl`,
        'openssl encrypts only; we encrypt, send, decrypt, store',
      ],
      [
        'many: 200 × 100 KiB, one client',
        `${manyMBps.toFixed(0)} MB/s (${manyMs.toFixed(0)} ms)`,
        `≥ 100 MB/s; server peak RSS ${mib(manyRss)}`,
      ],
      [
        'concurrent: 200 sessions at once',
        `${concurrent.sessionsPerSecond.toFixed(0)} sessions/s`,
        `≥ 300/s; p50 ${concurrent.p50Ms.toFixed(0)} ms, p99 ${concurrent.p99Ms.toFixed(0)} ms, ${concurrent.verified}/${SESSIONS} verified, server peak RSS ${mib(concurrentRss)} (< 200 MiB)`,
      ],
      [
        'openssl enc -aes-256-cbc, 64 MB',
        opensslMBps === undefined ? 'n/a' : `${opensslMBps.toFixed(0)} MB/s`,
        'reference',
      ],
      ['cksum (this project)', `${cksum.toFixed(0)} MB/s`, '≥ 800 MB/s'],
      [
        'AES-256-CBC encrypt / decrypt',
        `${aes.encrypt.toFixed(0)} / ${aes.decrypt.toFixed(0)} MB/s`,
        'reference',
      ],
    ];
    const width = [0, 1, 2].map((c) => Math.max(...rows.map((r) => r[c].length)));
    console.log('');
    for (const r of rows)
      console.log(`${r[0].padEnd(width[0])}  ${r[1].padEnd(width[1])}  ${r[2]}`);

    const results = {
      date: new Date().toISOString(),
      machine,
      single: {
        bytes: SINGLE_BYTES,
        runsMs: singleMs,
        medianMs: singleMedianS * 1000,
        MBps: singleMBps,
        serverPeakRssBytes: singleRss,
        vsOpenssl: opensslS === undefined ? null : singleMedianS / opensslS,
      },
      many: {
        files: MANY_FILES,
        fileBytes: MANY_FILE_BYTES,
        ms: manyMs,
        MBps: manyMBps,
        serverPeakRssBytes: manyRss,
      },
      concurrent: { ...concurrent, serverPeakRssBytes: concurrentRss },
      limits: {
        opensslMBps,
        cksumMBps: cksum,
        aesEncryptMBps: aes.encrypt,
        aesDecryptMBps: aes.decrypt,
      },
    };
    writeFileSync(join(ROOT, 'bench', 'results.json'), JSON.stringify(results, null, 2) + '\n');
    console.log('\nwrote bench/results.json');
  } finally {
    if (server) await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
