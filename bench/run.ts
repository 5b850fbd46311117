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
import { startLatencyProxy } from './answer-latency';
import { backendsJson, backendsRows, measureBackends } from './backends';
import { runConcurrent } from './concurrent';
import { settleDisk } from './disk';
import { aesMBps, cksumMBps, opensslSeconds } from './limits';
import { machineInfo } from './machine';
import { ROOT, runClient, startServer, type RunningServer } from './processes';
import { peakRss, resetPeakRss } from './rss';
import { startSshd, timeScp, type Sshd } from './sshd';
import { median, percentile } from './stats';

const MB = 1e6;
const SINGLE_BYTES = 64_000_000;
const SINGLE_RUNS = 5;
/** Uploads of the 64 MB file to the server run with the opt-in --gc-nudge. */
const NUDGED_RUNS = 3;
const MANY_FILES = 200;
const MANY_FILE_BYTES = 100 * 1024;
const MANY_RUNS = 3;
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

const mb = (bytes: number | undefined): string =>
  bytes === undefined ? 'n/a' : `${(bytes / MB).toFixed(0)} MB`;
const rate = (bytes: number, ms: number): number => bytes / MB / (ms / 1000);
const ms0 = (ms: number): string => `${ms.toFixed(0)} ms`;

async function clientOk(args: string[], cwd: string): Promise<number> {
  const run = await runClient(args, cwd);
  if (run.code !== 0) {
    throw new Error(`sft-client exited ${run.code}: ${run.stderr.trim() || run.stdout.trim()}`);
  }
  return run.ms;
}

/** Times `times` runs of `run`, each after a `sync` so none pays for another's writeback. */
async function timed(times: number, run: (i: number) => Promise<number>): Promise<number[]> {
  const all: number[] = [];
  for (let i = 0; i < times; i++) {
    settleDisk();
    all.push(await run(i));
  }
  return all;
}

interface Anchor {
  readonly singleMs: number[];
  readonly manyMs: number[];
}

async function measureScp(
  work: string,
  bigFile: string,
  manyFiles: readonly string[],
): Promise<Anchor | string> {
  const started = await startSshd(join(work, 'sshd'));
  if (!started.ok) return started.why;
  const sshd: Sshd = started.sshd;
  try {
    const dest = (name: string): string => {
      const dir = join(work, 'scp-dest', name);
      mkdirSync(dir, { recursive: true });
      return dir;
    };
    // One unmeasured run: the first login pays for things a user's second would not.
    await timeScp(sshd, [bigFile], dest('warm-up'));
    const singleMs = await timed(SINGLE_RUNS, (i) => timeScp(sshd, [bigFile], dest(`single-${i}`)));
    const manyMs = await timed(MANY_RUNS, (i) => timeScp(sshd, manyFiles, dest(`many-${i}`)));
    return { singleMs, manyMs };
  } finally {
    await sshd.stop();
    rmSync(join(work, 'scp-dest'), { recursive: true, force: true });
  }
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
    const nudgedConfigDir = join(work, 'client-nudged');
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
    const anchor = await measureScp(work, bigFile, manySets[0]);
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

    // 2b. the 1603 wait under the same load, through a timing proxy (its figures only)
    const proxy = await startLatencyProxy(server.port);
    settleDisk();
    await clientOk([...clientArgs(proxy.port), ...manySets[MANY_RUNS]], work);
    await proxy.close();
    const answers = [...proxy.latencies];
    await server.stop();

    // 2c. the single upload again on a server run with the opt-in --gc-nudge (node --expose-gc)
    server = await startServer(join(work, 'data-nudged'), [...SERVER_FLAGS, '--gc-nudge'], {
      ...process.env,
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --expose-gc`.trim(),
    });
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
    const cksum = cksumMBps(sample);
    const aes = aesMBps(sample);

    const manyBytes = MANY_FILES * MANY_FILE_BYTES;
    const ours = {
      single: rate(SINGLE_BYTES, median(singleMs)),
      many: rate(manyBytes, median(manyMs)),
    };
    const scp =
      typeof anchor === 'string'
        ? undefined
        : {
            single: rate(SINGLE_BYTES, median(anchor.singleMs)),
            many: rate(manyBytes, median(anchor.manyMs)),
          };
    const ratio = (our: number, theirs: number | undefined): string =>
      theirs === undefined ? 'n/a' : `${(our / theirs).toFixed(2)}×`;
    const scpCell = (MBps: number | undefined, ms: number[] | undefined): string =>
      MBps === undefined || ms === undefined
        ? 'skipped'
        : `${MBps.toFixed(0)} MB/s (${ms0(median(ms))})`;
    const opensslMBps = opensslS === undefined ? undefined : SINGLE_BYTES / MB / opensslS;
    const answerP50 = percentile(answers, 50);
    const answerP99 = percentile(answers, 99);

    const rows: Array<[string, string, string, string, string]> = [
      ['figure', 'ours', 'scp', 'ours/scp', 'target'],
      [
        `single: 64 MB over v3, fresh process, median of ${SINGLE_RUNS}`,
        `${ours.single.toFixed(0)} MB/s (${ms0(median(singleMs))})`,
        scpCell(scp?.single, typeof anchor === 'string' ? undefined : anchor.singleMs),
        ratio(ours.single, scp?.single),
        '≥ 1.5× scp',
      ],
      ['single: server peak RSS', mb(singleRss), '', '', '< 100 MB'],
      [
        `single v3, server run with --gc-nudge (node --expose-gc; opt-in), median of ${NUDGED_RUNS}`,
        `${rate(SINGLE_BYTES, median(nudgedMs)).toFixed(0)} MB/s, peak RSS ${mb(nudgedRss)}`,
        '',
        '',
        '< 100 MB',
      ],
      ...(v4 === undefined
        ? []
        : ([
            [
              `single: 64 MB over v4 (default --protocol), fresh process, median of ${SINGLE_RUNS}`,
              `${rate(SINGLE_BYTES, median(v4.runsMs)).toFixed(0)} MB/s (${ms0(median(v4.runsMs))})`,
              scpCell(scp?.single, typeof anchor === 'string' ? undefined : anchor.singleMs),
              ratio(rate(SINGLE_BYTES, median(v4.runsMs)), scp?.single),
              '≥ 3× scp',
            ],
            [
              'single: v4 ÷ v3 (runs taken in turn)',
              ratio(rate(SINGLE_BYTES, median(v4.runsMs)), ours.single),
              '',
              '',
              '≥ 2× v3',
            ],
            ['single v4: server peak RSS', mb(v4.peakRss), '', '', '< 100 MB'],
          ] as Array<[string, string, string, string, string]>)),
      ...(got === undefined
        ? []
        : ([
            [
              `get: 64 MB download over v4, fresh process, median of ${SINGLE_RUNS}`,
              `${rate(SINGLE_BYTES, median(got.runsMs)).toFixed(0)} MB/s (${ms0(median(got.runsMs))})`,
              '',
              '',
              'reported',
            ],
            ['get v4: server peak RSS', mb(got.peakRss), '', '', ''],
          ] as Array<[string, string, string, string, string]>)),
      [
        'single vs openssl enc time',
        opensslS === undefined
          ? 'n/a'
          : `${(median(singleMs) / 1000 / opensslS).toFixed(2)}× openssl`,
        '',
        '',
        'openssl only encrypts',
      ],
      [
        `many: 200 × 100 KiB, one client run${parallel ? ' (default --parallel)' : ''}, median of ${MANY_RUNS}`,
        `${ours.many.toFixed(0)} MB/s (${ms0(median(manyMs))})`,
        scpCell(scp?.many, typeof anchor === 'string' ? undefined : anchor.manyMs),
        ratio(ours.many, scp?.many),
        '≥ 3× scp',
      ],
      ['many: server peak RSS', mb(manyRss), '', '', ''],
      [
        'many: last packet → 1603, through a proxy',
        `p50 ${answerP50.toFixed(1)} ms, p99 ${answerP99.toFixed(1)} ms (${answers.length} answers)`,
        '',
        '',
        'reported',
      ],
      [
        `concurrent: ${SESSIONS} sessions at once`,
        `${concurrent.sessionsPerSecond.toFixed(0)} sessions/s, ${concurrent.verified}/${SESSIONS} verified`,
        '',
        '',
        '≥ 300/s, all verified',
      ],
      [
        'concurrent: session p50 / p99; server peak RSS',
        `${ms0(concurrent.p50Ms)} / ${ms0(concurrent.p99Ms)}; ${mb(concurrentRss)}`,
        '',
        '',
        'RSS < 200 MB',
      ],
      ...backendsRows(backends, {
        singleBytes: SINGLE_BYTES,
        manyBytes: MANY_FILES * MANY_FILE_BYTES,
        manyFiles: MANY_FILES,
      }),
      [
        'openssl enc -aes-256-cbc, 64 MB',
        opensslMBps === undefined ? 'n/a' : `${opensslMBps.toFixed(0)} MB/s`,
        '',
        '',
        'reference',
      ],
      ['cksum (this project)', `${cksum.toFixed(0)} MB/s`, '', '', '≥ 800 MB/s'],
      [
        'AES-256-CBC encrypt / decrypt (Node)',
        `${aes.encrypt.toFixed(0)} / ${aes.decrypt.toFixed(0)} MB/s`,
        '',
        '',
        'reference',
      ],
    ];
    const width = [0, 1, 2, 3].map((c) => Math.max(...rows.map((r) => r[c].length)));
    console.log('');
    for (const r of rows) {
      console.log(
        `${r[0].padEnd(width[0])}  ${r[1].padEnd(width[1])}  ${r[2].padEnd(width[2])}  ${r[3].padEnd(width[3])}  ${r[4]}`,
      );
    }

    const results = {
      date: new Date().toISOString(),
      machine,
      clientParallel: parallel,
      single: {
        bytes: SINGLE_BYTES,
        runsMs: singleMs,
        medianMs: median(singleMs),
        MBps: ours.single,
        serverPeakRssBytes: singleRss,
        gcNudge: {
          runsMs: nudgedMs,
          MBps: rate(SINGLE_BYTES, median(nudgedMs)),
          serverPeakRssBytes: nudgedRss,
        },
        vsOpenssl: opensslS === undefined ? null : median(singleMs) / 1000 / opensslS,
        scp:
          typeof anchor === 'string'
            ? null
            : { runsMs: anchor.singleMs, medianMs: median(anchor.singleMs), MBps: scp?.single },
        oursOverScp: scp === undefined ? null : ours.single / scp.single,
      },
      many: {
        files: MANY_FILES,
        fileBytes: MANY_FILE_BYTES,
        runsMs: manyMs,
        medianMs: median(manyMs),
        MBps: ours.many,
        serverPeakRssBytes: manyRss,
        scp:
          typeof anchor === 'string'
            ? null
            : { runsMs: anchor.manyMs, medianMs: median(anchor.manyMs), MBps: scp?.many },
        oursOverScp: scp === undefined ? null : ours.many / scp.many,
        answer1603: { count: answers.length, p50Ms: answerP50, p99Ms: answerP99 },
      },
      singleV4:
        v4 === undefined
          ? null
          : {
              bytes: SINGLE_BYTES,
              protocol: 'default (auto → v4)',
              runsMs: v4.runsMs,
              medianMs: median(v4.runsMs),
              MBps: rate(SINGLE_BYTES, median(v4.runsMs)),
              serverPeakRssBytes: v4.peakRss,
              oursOverScp:
                scp === undefined ? null : rate(SINGLE_BYTES, median(v4.runsMs)) / scp.single,
              overV3: rate(SINGLE_BYTES, median(v4.runsMs)) / ours.single,
            },
      getV4:
        got === undefined
          ? null
          : {
              bytes: SINGLE_BYTES,
              runsMs: got.runsMs,
              medianMs: median(got.runsMs),
              MBps: rate(SINGLE_BYTES, median(got.runsMs)),
              serverPeakRssBytes: got.peakRss,
            },
      scpSkipped: typeof anchor === 'string' ? anchor : null,
      concurrent: { ...concurrent, serverPeakRssBytes: concurrentRss },
      pgS3: backendsJson(backends, {
        singleBytes: SINGLE_BYTES,
        manyBytes: MANY_FILES * MANY_FILE_BYTES,
      }),
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
