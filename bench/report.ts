/**
 * The table `npm run bench` prints and the bench/results.json it writes, from the figures the
 * run measured (bench/run.ts).
 */
import type { Anchor } from './anchor';
import type { KindFigures } from './alternate';
import { backendsJson, backendsRows, type BackendsFigures } from './backends';
import type { ConcurrentResult } from './concurrent';
import { manyFloorMs, v4FloorMs, type Floors } from './floors';
import type { MachineInfo } from './machine';
import { median, percentile } from './stats';

const MB = 1e6;

export const SINGLE_BYTES = 64_000_000;
export const SINGLE_RUNS = 5;
/** Uploads of the 64 MB file to a server run with --gc-nudge off. */
export const NUDGED_RUNS = 3;
export const MANY_FILES = 200;
export const MANY_FILE_BYTES = 100 * 1024;
export const MANY_RUNS = 3;
export const SESSIONS = 200;

type Row = [string, string, string, string, string];

export interface Figures {
  readonly machine: MachineInfo;
  readonly parallel: boolean;
  readonly anchor: Anchor | string;
  readonly singleMs: number[];
  readonly singleRss: number | undefined;
  readonly nudgedMs: number[];
  readonly nudgedRss: number | undefined;
  readonly v4: KindFigures | undefined;
  readonly got: KindFigures | undefined;
  readonly manyMs: number[];
  readonly manyRss: number | undefined;
  /** The many load over v4 (the default --protocol); undefined for a client without v4. */
  readonly manyV4Ms: number[] | undefined;
  /** The same folders sent by the least a Node program does (bench/reference.ts). */
  readonly referenceMs: number[];
  readonly answers: number[];
  readonly concurrent: ConcurrentResult;
  readonly concurrentRss: number | undefined;
  readonly backends: BackendsFigures | string;
  readonly floors: Floors;
  readonly opensslS: number | undefined;
  /** MB/s of the tables (the server's) and of the zlib path (the client's). */
  readonly cksum: { readonly tables: number; readonly native: number };
  readonly aes: { readonly encrypt: number; readonly decrypt: number };
}

const mb = (bytes: number | undefined): string =>
  bytes === undefined ? 'n/a' : `${(bytes / MB).toFixed(0)} MB`;
const rate = (bytes: number, ms: number): number => bytes / MB / (ms / 1000);
const ms0 = (ms: number): string => `${ms.toFixed(0)} ms`;

export function report(f: Figures): { readonly rows: Row[]; readonly results: unknown } {
  const { machine, parallel, anchor, singleMs, singleRss, nudgedMs, nudgedRss, v4, got } = f;
  const { manyMs, manyRss, answers, concurrent, concurrentRss, backends, opensslS, cksum, aes } = f;
  const manyBytes = MANY_FILES * MANY_FILE_BYTES;
  const ours = {
    single: rate(SINGLE_BYTES, median(singleMs)),
    many: rate(manyBytes, median(manyMs)),
    manyV4: f.manyV4Ms === undefined ? undefined : rate(manyBytes, median(f.manyV4Ms)),
    reference: rate(manyBytes, median(f.referenceMs)),
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

  const rows: Row[] = [
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
      `single v3, server run with --gc-nudge off (the default is auto: on), median of ${NUDGED_RUNS}`,
      `${rate(SINGLE_BYTES, median(nudgedMs)).toFixed(0)} MB/s, peak RSS ${mb(nudgedRss)}`,
      '',
      '',
      'reported',
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
        ] as Row[])),
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
        ] as Row[])),
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
      `many: 200 × 100 KiB over v3, one client run${parallel ? ' (default --parallel)' : ''}, median of ${MANY_RUNS}`,
      `${ours.many.toFixed(0)} MB/s (${ms0(median(manyMs))})`,
      scpCell(scp?.many, typeof anchor === 'string' ? undefined : anchor.manyMs),
      ratio(ours.many, scp?.many),
      '≥ 3× scp',
    ],
    ...(f.manyV4Ms === undefined || ours.manyV4 === undefined
      ? []
      : ([
          [
            `many over v4 (the default protocol, pipelined), median of ${MANY_RUNS}`,
            `${ours.manyV4.toFixed(0)} MB/s (${ms0(median(f.manyV4Ms))})`,
            scpCell(scp?.many, typeof anchor === 'string' ? undefined : anchor.manyMs),
            ratio(ours.manyV4, scp?.many),
            // A user's default run: the target is the same as v3's.
            '≥ 3× scp',
          ],
        ] as Row[])),
    [
      `many by the reference: plain node:tls, SHA-256, each file fdatasync'ed and renamed (bench/reference.ts), median of ${MANY_RUNS}`,
      `${ours.reference.toFixed(0)} MB/s (${ms0(median(f.referenceMs))})`,
      scpCell(scp?.many, typeof anchor === 'string' ? undefined : anchor.manyMs),
      ratio(ours.reference, scp?.many),
      'what Node does here',
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
    ...floorRows(f, scp),
    [
      'openssl enc -aes-256-cbc, 64 MB',
      opensslMBps === undefined ? 'n/a' : `${opensslMBps.toFixed(0)} MB/s`,
      '',
      '',
      'reference',
    ],
    [
      'cksum (this project): tables (server) / zlib path (client)',
      `${cksum.tables.toFixed(0)} / ${cksum.native.toFixed(0)} MB/s`,
      '',
      '',
      '≥ 800 MB/s',
    ],
    [
      'AES-256-CBC encrypt / decrypt (Node)',
      `${aes.encrypt.toFixed(0)} / ${aes.decrypt.toFixed(0)} MB/s`,
      '',
      '',
      'reference',
    ],
  ];
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
      reference: {
        runsMs: f.referenceMs,
        medianMs: median(f.referenceMs),
        MBps: ours.reference,
        overScp: scp === undefined ? null : ours.reference / scp.many,
      },
      v4:
        f.manyV4Ms === undefined
          ? null
          : {
              runsMs: f.manyV4Ms,
              medianMs: median(f.manyV4Ms),
              MBps: ours.manyV4,
              oursOverScp:
                scp === undefined || ours.manyV4 === undefined ? null : ours.manyV4 / scp.many,
            },
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
    floors: {
      ...f.floors,
      manyFloorMs: manyFloorMs(f.floors),
      v4FloorMs: v4FloorMs(f.floors, machine.cores),
    },
    limits: {
      opensslMBps,
      cksumMBps: cksum.tables,
      cksumNativeMBps: cksum.native,
      aesEncryptMBps: aes.encrypt,
      aesDecryptMBps: aes.decrypt,
    },
  };
  return { rows, results };
}

/**
 * The floors (bench/floors.ts) beside the targets: the best ratio to scp any implementation of
 * the required work could reach on this machine.
 */
function floorRows(f: Figures, scp: { single: number; many: number } | undefined): Row[] {
  const fl = f.floors;
  const best = (bytes: number, ms: number): string => {
    const MBps = rate(bytes, ms);
    const vsScp =
      scp === undefined
        ? ''
        : `, at most ${(MBps / (bytes === SINGLE_BYTES ? scp.single : scp.many)).toFixed(2)}× scp`;
    return `${ms0(ms)} → ${MBps.toFixed(0)} MB/s${vsScp}`;
  };
  const many = manyFloorMs(fl);
  const v4 = v4FloorMs(fl, f.machine.cores);
  return [
    ["floor: a node process starting (node -e '')", ms0(fl.nodeStartMs), '', '', 'measured'],
    [
      `floor many: node start + ${MANY_FILES} × 100 KiB written and fsynced (16 at once) + 1 dir fsync`,
      best(MANY_FILES * MANY_FILE_BYTES, many),
      '',
      '',
      'vs target 3× scp',
    ],
    [
      `floor v4: node start + (SHA-256 ${ms0(fl.sha256Ms)} + cksum ${ms0(fl.cksumMs)} + AES-GCM ${ms0(fl.gcmMs)}) × 2 ends + write ${ms0(fl.writeSingleMs)}, over ${f.machine.cores} cores, + fsync ${ms0(fl.fsyncSingleMs)}`,
      best(SINGLE_BYTES, v4),
      '',
      '',
      'vs target 3× scp',
    ],
  ];
}

export function formatTable(rows: readonly Row[]): string {
  const width = [0, 1, 2, 3].map((c) => Math.max(...rows.map((r) => r[c].length)));
  return rows
    .map(
      (r) =>
        `${r[0].padEnd(width[0])}  ${r[1].padEnd(width[1])}  ${r[2].padEnd(width[2])}  ${r[3].padEnd(width[3])}  ${r[4]}`,
    )
    .join('\n');
}
