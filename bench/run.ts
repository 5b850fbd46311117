/**
 * `npm run bench`: measures the project the way a user experiences it, with `scp` to a private
 * sshd on loopback as the anchor in the same run. Runs the built `sft-server` and `sft-client`
 * as separate processes against a temp data directory, prints a table and writes
 * bench/results.json. Not part of CI.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { alternate } from './alternate';
import { measureScp } from './anchor';
import { startLatencyProxy } from './answer-latency';
import { measureBackends } from './backends';
import { runConcurrent } from './concurrent';
import { settleDisk } from './disk';
import { measureFloors } from './floors';
import { measureReference } from './reference';
import { DEFAULT_PARALLEL } from '../client/process/cli-options';
import { crcUpdateNative } from '../shared/cksum-native';
import { aesMBps, cksumMBps, opensslSeconds } from './limits';
import { machineInfo } from './machine';
import { ROOT, runClient, startServer, type RunningServer } from './processes';
import {
  MANY_FILE_BYTES,
  MANY_FILES,
  MANY_RUNS,
  NUDGED_RUNS,
  SESSIONS,
  SINGLE_BYTES,
  SINGLE_RUNS,
  formatTable,
  report,
} from './report';
import { peakRss, resetPeakRss } from './rss';
import { timed } from './timed';

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

/** `count` random files in a new folder `dir`, named with `prefix` so every set is new to the server. */
function writeFileSet(dir: string, prefix: string, count: number, size: number): string[] {
  mkdirSync(dir);
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const file = join(dir, `${prefix}-${String(i).padStart(3, '0')}.bin`);
    writeRandomFile(file, size);
    files.push(file);
  }
  return files;
}

async function clientOk(args: string[], cwd: string): Promise<number> {
  const run = await runClient(args, cwd);
  if (run.code !== 0) {
    throw new Error(`sft-client exited ${run.code}: ${run.stderr.trim() || run.stdout.trim()}`);
  }
  return run.ms;
}

interface ClientFeatures {
  /** It takes `--parallel` (its default is then what runs). */
  readonly parallel: boolean;
  /** It takes `--protocol`: the v3 rows ask for v3; the v4 rows use the default. */
  readonly protocol: boolean;
  /** It has `get` (protocol v4 downloads). */
  readonly get: boolean;
}

async function clientFeatures(work: string): Promise<ClientFeatures> {
  const help = (await runClient(['--help'], work)).stdout;
  return {
    parallel: help.includes('--parallel'),
    protocol: help.includes('--protocol'),
    get: help.includes('sft-client get'),
  };
}

async function main(): Promise<void> {
  const machine = machineInfo();
  console.log(
    `machine: ${machine.cores} cores, ${machine.cpu}, ${machine.memoryGiB} GiB, Node ${machine.node}, ${machine.platform}`,
  );
  const work = mkdtempSync(join(tmpdir(), 'sft-bench-'));
  let server: RunningServer | undefined;
  try {
    const configDir = join(work, 'client');
    mkdirSync(configDir);
    const v4ConfigDir = join(work, 'client-v4');
    const nudgedConfigDir = join(work, 'client-unnudged');
    mkdirSync(nudgedConfigDir);
    mkdirSync(v4ConfigDir);
    const bigFile = join(work, 'single-64MB.bin');
    writeRandomFile(bigFile, SINGLE_BYTES);
    const manySets = Array.from({ length: MANY_RUNS + 1 }, (_, run) =>
      writeFileSet(join(work, `many-${run}`), `r${run}-file`, MANY_FILES, MANY_FILE_BYTES),
    );
    const seed = join(work, 'seed.txt');
    writeFileSync(seed, 'register first\n');
    const features = await clientFeatures(work);
    const parallel = features.parallel;

    // 0. the anchor: scp to a private sshd, before our server runs
    const anchor = await measureScp(work, bigFile, manySets[0], {
      single: SINGLE_RUNS,
      many: MANY_RUNS,
    });
    if (typeof anchor === 'string') console.log(`note: scp anchor skipped: ${anchor}`);

    server = await startServer(join(work, 'data'), SERVER_FLAGS);
    const clientArgs = (port: number): string[] => [
      '--config-dir',
      configDir,
      '--server',
      `127.0.0.1:${port}`,
      '--name',
      'Bench Client',
      '--quiet',
      ...(features.protocol ? ['--protocol', 'v3'] : []),
    ];
    const common = clientArgs(server.port);
    // Register once so every timed run reconnects, as a returning user's does.
    await clientOk([...common, seed], work);
    // v4 with the default --protocol and its own config dir: the first contact pins the
    // server's fingerprint (trust on first use) and registers; the timed runs reconnect.
    const v4Common = [
      '--config-dir',
      v4ConfigDir,
      '--server',
      `127.0.0.1:${server.port}`,
      '--name',
      'Bench Client 4',
      '--quiet',
    ];
    if (features.protocol) {
      await clientOk([...v4Common, seed], work);
      const known = readFileSync(join(v4ConfigDir, 'known_servers'), 'utf8');
      if (!known.includes(' v4 SHA256:'))
        throw new Error(`no v4 pin after first contact: ${known}`);
    }
    const gotFile = join(work, 'got-64MB.bin');

    // 1. single: v3 and v4 (and the v4 download) in turn, so the machine's load hits them alike
    const singles = await alternate<'v3' | 'v4' | 'get'>(server.pid, SINGLE_RUNS, {
      v3: () => clientOk([...common, bigFile], work),
      ...(features.protocol ? { v4: () => clientOk([...v4Common, bigFile], work) } : {}),
      ...(features.get
        ? {
            get: () =>
              clientOk([...v4Common, 'get', basename(bigFile), '-o', gotFile, '--force'], work),
          }
        : {}),
    });
    const { v3, v4, get: got } = singles;
    if (v3 === undefined) throw new Error('the v3 single runs did not run');
    const singleMs = v3.runsMs;
    const singleRss = v3.peakRss;
    if (got !== undefined && !readFileSync(gotFile).equals(readFileSync(bigFile))) {
      throw new Error('the v4 download differs from the file uploaded');
    }
    rmSync(gotFile, { force: true });

    // 2. many: every run a set of names new to the server, as a user's new folder would be
    resetPeakRss(server.pid);
    const manyMs = await timed(MANY_RUNS, (i) => clientOk([...common, ...manySets[i]], work));
    const manyRss = peakRss(server.pid);
    // The same folders over v4, the protocol a user gets by default (its own client, so the
    // names are new to it as well).
    const manyV4Ms = features.protocol
      ? await timed(MANY_RUNS, (i) => clientOk([...v4Common, ...manySets[i]], work))
      : undefined;
    // 2a. the same folders by the least a Node program does for the same guarantees
    const referenceMs = await measureReference({
      work,
      sets: manySets,
      runs: MANY_RUNS,
      connections: DEFAULT_PARALLEL,
    });

    // 2b. the 1603 wait under the same load, through a timing proxy (its figures only)
    const proxy = await startLatencyProxy(server.port);
    settleDisk();
    await clientOk([...clientArgs(proxy.port), ...manySets[MANY_RUNS]], work);
    await proxy.close();
    const answers = [...proxy.latencies];
    await server.stop();

    // 2c. the single upload again on a server run with --gc-nudge off, to show what the
    // default's young-garbage collections save
    server = await startServer(join(work, 'data-unnudged'), [...SERVER_FLAGS, '--gc-nudge', 'off']);
    const nudgedArgs = clientArgs(server.port).map((a) => (a === configDir ? nudgedConfigDir : a));
    await clientOk([...nudgedArgs, seed], work);
    resetPeakRss(server.pid);
    const nudgedMs = await timed(NUDGED_RUNS, () => clientOk([...nudgedArgs, bigFile], work));
    const nudgedRss = peakRss(server.pid);
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

    // 3b. the same loads against PostgreSQL + S3 (skipped with a note when they cannot start)
    const backends = await measureBackends({
      work,
      bigFile,
      manySets,
      seed,
      serverFlags: SERVER_FLAGS,
      protocolFlag: features.protocol,
      singleRuns: SINGLE_RUNS,
      manyRuns: MANY_RUNS,
      sessions: SESSIONS,
      fileBytes: MANY_FILE_BYTES,
      clientOk,
      timed,
    });
    if (typeof backends === 'string')
      console.log(`note: PostgreSQL + S3 rows skipped: ${backends}`);

    // 4. limits
    const opensslS = opensslSeconds(bigFile);
    const sample = randomBytes(SINGLE_BYTES);
    const cksum = { tables: cksumMBps(sample), native: cksumMBps(sample, crcUpdateNative) };
    const aes = aesMBps(sample);
    // 5. floors: what no implementation could beat here (bench/floors.ts)
    const floors = await measureFloors(work, {
      files: MANY_FILES,
      fileBytes: MANY_FILE_BYTES,
      singleBytes: SINGLE_BYTES,
    });

    const { rows, results } = report({
      machine,
      parallel,
      anchor,
      singleMs,
      singleRss,
      nudgedMs,
      nudgedRss,
      v4,
      got,
      manyMs,
      manyRss,
      manyV4Ms,
      referenceMs,
      answers,
      concurrent,
      concurrentRss,
      backends,
      floors,
      opensslS,
      cksum,
      aes,
    });
    console.log('');
    console.log(formatTable(rows));
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
