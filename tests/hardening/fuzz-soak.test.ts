/**
 * Fuzz soak: 10,000 random and mutated request streams against ONE live `sft-server`
 * process, 50 connections at a time. Afterwards the server must still be alive and serve a
 * normal session, hold no more memory or file handles than before (give or take), have written
 * nothing outside its data directory, leave no temp file, and keep a sound, consistent database.
 *
 * Reproduce a failure with the seed and case it prints: `SFT_FUZZ_SEED=<seed> npx jest
 * tests/hardening/fuzz-soak`; every case is a pure function of (seed, index).
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DATABASE_FILE_NAME, openSqliteStore } from '../../server/storage/sqlite';
import { RawClient, Reply, fileReceived, reconnect, type RawResponse } from '../helpers/raw-client';
import type { ServerProcess } from '../helpers/server-process';
import { Rng, seedFromEnv } from '../helpers/hardening-rng';
import {
  buildFuzzCase,
  responseProblem,
  type FuzzCase,
  type FuzzContext,
  type PoolClient,
} from '../helpers/hardening-fuzz';
import {
  LOOSE_ADDRESS_FLAGS,
  completeSession,
  eventually,
  linesAtLeast,
  loopbackAddress,
  openFdCount,
  rssBytes,
  sleep,
  spawnHardened,
  walkTree,
  writeInPieces,
} from '../helpers/hardening-server';
import { registerWithKey, testKeys, unwrapWith } from '../server/harness';

// Each case has its own deadline; this only bounds a run that is far off.
jest.setTimeout(180000);

const SEED = seedFromEnv(0x5eed_2024);
const CASES = Number(process.env.SFT_FUZZ_CASES ?? 10000);
const CONCURRENCY = 50;
/** Source addresses the cases rotate through (127.20.x.y). */
const ADDRESSES = 64;
/** How long the server may take to answer and close one half-closed case. */
const CASE_TIMEOUT_MS = 20000;
/** Whole case, writing included; past it the case is reported as hung. */
const CASE_DEADLINE_MS = 30000;
const MIB = 1024 * 1024;
/** Generous: the soak must not leave the server holding much more than after its warm-up. */
const RSS_SLACK = 64 * MIB;
/**
 * After the first cases the server's heap and caches have grown to their working size (RSS
 * levels off near +40 MiB); from there to the end it must stay level: a leak of a few KiB per
 * stream would show over the remaining thousands.
 */
const WARM_AFTER_CASES = 2000;
const RSS_SAMPLE_EVERY = 1000;
const STEADY_SLACK = 32 * MIB;
const FD_SLACK = 8;
const PINO_ERROR = 50;
const MAX_CHUNK = 64 * 1024;
const STABLE_CLIENTS = 6;
const VOLATILE_CLIENTS = 3;
/** pino-free marker: file and client names made by the fuzzer all contain it. */
const MARKER = `fzmk${SEED.toString(36)}`;

let root: string;
let dataDir: string;
let server: ServerProcess;
let ctx: FuzzContext;

const stats = {
  sent: 0,
  bytes: 0,
  byKind: new Map<string, number>(),
  answers: new Map<number, number>(),
  intact: 0,
  resets: 0,
  rssBaseline: 0,
  rssAfter: 0,
  rssSamples: [] as number[],
  fdBaseline: 0,
  fdAfter: 0,
};

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sft-fuzz-'));
  dataDir = join(root, 'data');
  await mkdir(dataDir);
  // The working directory is the otherwise empty parent: a relative path that escaped the data
  // directory would land right here.
  server = await spawnHardened(
    dataDir,
    [
      ...LOOSE_ADDRESS_FLAGS,
      '--max-connections',
      '5000',
      '--max-chunk',
      String(MAX_CHUNK),
      // Mutated ciphertext fails to decrypt by design here; lockouts have their own tests.
      '--lockout-failures',
      '0',
    ],
    { cwd: root },
  );
  const pool: PoolClient[] = [];
  for (let i = 0; i < STABLE_CLIENTS + VOLATILE_CLIENTS; i++) {
    const client = await RawClient.connect(server.port);
    const keys = testKeys(i % 3);
    const me = await registerWithKey(client, `${MARKER}-pool-${i}`, keys);
    client.destroy();
    pool.push({
      id: me.id,
      name: me.name,
      aesKey: me.aesKey,
      keys,
      publicKeyDer: keys.publicKeyDer,
    });
  }
  ctx = {
    stable: pool.slice(0, STABLE_CLIENTS),
    volatile: pool.slice(STABLE_CLIENTS),
    marker: MARKER,
    maxChunk: MAX_CHUNK,
  };
  // Warm-up, so the baseline includes what any server has after its first sessions.
  await completeSession(server.port, dataDir, { name: `${MARKER}-warmup`, size: 100_000 });
  await sleep(500);
  stats.rssBaseline = rssBytes(server.child.pid as number);
  stats.fdBaseline = await openFdCount(server.child.pid as number);
});

afterAll(async () => {
  if (server) await server.stop('SIGKILL');
  if (root) await rm(root, { recursive: true, force: true });
  const kinds = [...stats.byKind].map(([k, n]) => `${k} ${n}`).join(', ');
  const answers = [...stats.answers].sort(([a], [b]) => a - b).map(([c, n]) => `${c}×${n}`);
  process.stdout.write(
    `[fuzz-soak] seed ${SEED}: ${stats.sent} streams (${kinds}), ${(stats.bytes / MIB).toFixed(1)} MiB, ` +
      `${stats.intact} intact checked, ${stats.resets} reset; answers ${answers.join(' ')}; ` +
      `server RSS ${(stats.rssBaseline / MIB).toFixed(1)} → ${(stats.rssAfter / MIB).toFixed(1)} MiB, ` +
      `fds ${stats.fdBaseline} → ${stats.fdAfter}; RSS every ${RSS_SAMPLE_EVERY} cases ` +
      `${stats.rssSamples.map((b) => (b / MIB).toFixed(0)).join(' ')} MiB\n`,
  );
});

function describeCase(c: FuzzCase): string {
  return `seed ${SEED} case ${c.index} (${c.kind}; ${c.mutations.join(' ') || 'intact'}; ${c.split}, ${c.ending})`;
}

async function writeCase(client: RawClient, c: FuzzCase): Promise<void> {
  if (c.split === 'whole') {
    await client.write(c.bytes);
    return;
  }
  const rng = new Rng(SEED ^ 0x51ce, c.index);
  const max = c.split === 'tiny' ? 8 : 2000;
  await writeInPieces(client, c.bytes, () => rng.int(1, max));
}

/**
 * `runCase` with a deadline of its own: a case that hangs becomes one failure message naming
 * its seed and index, instead of a stuck worker and a test timeout that names nothing.
 */
async function runCaseWithDeadline(c: FuzzCase): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`no end within ${CASE_DEADLINE_MS} ms`), CASE_DEADLINE_MS);
  });
  try {
    return await Promise.race([runCase(c), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs one case; returns a problem description, or undefined when all is well. */
async function runCase(planned: FuzzCase): Promise<string | undefined> {
  const client = await RawClient.connect(
    server.port,
    '127.0.0.1',
    loopbackAddress(20, planned.index % ADDRESSES),
  );
  try {
    let c = planned;
    if (planned.bindAs !== undefined) {
      // The session of this connection first (§9); the case then encrypts with its key.
      const me = planned.bindAs;
      const bound = await client.request(reconnect(me.id, me.name), CASE_TIMEOUT_MS);
      if (bound.code !== Reply.RECONNECTED) return `1027 of a pool client answered ${bound.code}`;
      const key = unwrapWith(me.keys, bound.payload.subarray(16, 144));
      c = buildFuzzCase(SEED, planned.index, ctx, key);
    }
    try {
      await writeCase(client, c);
    } catch {
      // The server may close after a framing error (§9) while bytes are still going out.
    }
    if (c.ending === 'reset') {
      stats.resets++;
      await sleep(c.index % 20);
      client.destroy();
      return undefined;
    }
    client.end();
    let responses: RawResponse[];
    try {
      responses = await client.untilClosed(CASE_TIMEOUT_MS);
    } catch (err) {
      return `${(err as Error).message} after the client half-closed`;
    }
    for (const r of responses) stats.answers.set(r.code, (stats.answers.get(r.code) ?? 0) + 1);
    const problem = responseProblem(responses);
    if (problem) return problem;
    if (c.expectCodes) {
      stats.intact++;
      const codes = responses.map((r) => r.code);
      if (codes.join() !== c.expectCodes.join()) {
        return `intact session answered ${codes.join()} instead of ${c.expectCodes.join()}`;
      }
      for (const r of responses.filter((x) => x.code === Reply.FILE_RECEIVED)) {
        const f = fileReceived(r);
        if (f.cksum !== c.expectFile?.cksum || f.fileName !== c.expectFile?.name) {
          return `1603 for ${f.fileName} cksum ${f.cksum}, expected ${c.expectFile?.cksum}`;
        }
      }
    }
    return undefined;
  } finally {
    client.destroy();
  }
}

describe('fuzz soak against one live server', () => {
  it(`${CASES} random and mutated request streams, ${CONCURRENCY} at a time`, async () => {
    const failures: string[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < CASES && server.child.exitCode === null) {
        const c = buildFuzzCase(SEED, next++, ctx);
        if (c.index % RSS_SAMPLE_EVERY === 0) {
          stats.rssSamples.push(rssBytes(server.child.pid as number));
        }
        stats.sent++;
        stats.bytes += c.bytes.length;
        stats.byKind.set(c.kind, (stats.byKind.get(c.kind) ?? 0) + 1);
        let problem: string | undefined;
        try {
          problem = await runCaseWithDeadline(c);
        } catch (err) {
          problem = `client error: ${(err as Error).message}`;
        }
        if (problem && failures.length < 20) failures.push(`${describeCase(c)}: ${problem}`);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    expect(server.child.exitCode).toBeNull();
    expect(stats.sent).toBe(CASES);
    expect(failures).toEqual([]);
  });

  it('the server is still alive, releases every temp file and file handle, and serves a normal session', async () => {
    const pid = server.child.pid as number;
    expect(server.child.exitCode).toBeNull();
    const incoming = join(dataDir, '.incoming');
    const tempsGone = await eventually(
      async () => !existsSync(incoming) || (await readdir(incoming)).length === 0,
      20000,
    );
    expect(tempsGone ? [] : await readdir(incoming)).toEqual([]);
    // Handles of closed connections and aborted uploads are all released.
    await eventually(async () => (await openFdCount(pid)) <= stats.fdBaseline + FD_SLACK, 20000);
    stats.fdAfter = await openFdCount(pid);
    expect(stats.fdAfter).toBeLessThanOrEqual(stats.fdBaseline + FD_SLACK);

    const result = await completeSession(server.port, dataDir, {
      name: `${MARKER}-after-soak`,
      size: 200_000,
    });
    expect(result.plaintext.length).toBe(200_000);
  });

  it('its memory is back near the baseline', async () => {
    const pid = server.child.pid as number;
    await sleep(2000);
    stats.rssAfter = rssBytes(pid);
    expect(stats.rssAfter).toBeLessThan(stats.rssBaseline + RSS_SLACK);
    const warm = stats.rssSamples[WARM_AFTER_CASES / RSS_SAMPLE_EVERY];
    if (CASES > WARM_AFTER_CASES && warm !== undefined) {
      expect(stats.rssAfter).toBeLessThan(warm + STEADY_SLACK);
    }
  });

  it('logged no internal or storage error while being fuzzed', () => {
    const errors = linesAtLeast(server, PINO_ERROR).map((l) => `${l.msg} ${JSON.stringify(l)}`);
    expect(errors.slice(0, 5)).toEqual([]);
  });

  it('wrote nothing outside its data directory and nothing but its own files inside', async () => {
    // The parent temp dir (also the server's working directory) holds only the data dir.
    expect(await readdir(root)).toEqual(['data']);
    // No name taken from the fuzz input anywhere near: the temp root and the file system root.
    for (const dir of [tmpdir(), '/']) {
      expect((await readdir(dir)).filter((n) => n.includes(MARKER))).toEqual([]);
    }
    const tree = await walkTree(dataDir);
    const unexpected = tree.filter((e) => {
      const parts = e.path.split('/');
      if (parts.length === 1) {
        if (e.kind === 'dir')
          return !/^([0-9a-f]{32}|\.incoming|\.versions|identity)$/.test(e.path);
        return !/^defensive\.db(-wal|-shm)?$|^\.space-reserve$|^\.daemon\.(lock|pid)$/.test(e.path);
      }
      // The server's own version-4 identity.
      if (parts[0] === 'identity') {
        // Its keys, the key set, and the v4 fingerprint bindings (bound/, clients/).
        const [, first, second] = parts;
        if (parts.length === 2) {
          return !/^(identity|next)\.(key|crt)$|^keyset\.json$|^(bound|clients)$/.test(first ?? '');
        }
        return !(
          parts.length === 3 &&
          (first === 'bound' || first === 'clients') &&
          /^[0-9a-f]+\.json$/.test(second ?? '')
        );
      }
      // Kept versions: .versions/<client>/<name>/<n>, folders then plain files.
      if (parts[0] === '.versions') {
        return !/^[0-9a-f]{32}$/.test(parts[1] ?? '') || parts.length > 4;
      }
      // Inside a client folder: plain files only, no folders, no links.
      return parts.length !== 2 || e.kind !== 'file' || parts[0] === '.incoming';
    });
    expect(unexpected).toEqual([]);
  });

  it('stops cleanly; the database passes integrity_check and matches the files on disk', async () => {
    expect(await server.stop('SIGTERM')).toBe(0);
    const store = await openSqliteStore({
      path: join(dataDir, DATABASE_FILE_NAME),
      readOnly: true,
    });
    try {
      expect(await store.integrityCheck()).toEqual(['ok']);
      const rows = (await store.listFiles()).filter((f) => f.status !== 'failed');
      const files = (await walkTree(dataDir)).filter(
        // Kept versions (.versions/…) have rows of their own, not in `files`.
        (e) =>
          e.kind === 'file' &&
          e.path.includes('/') &&
          !e.path.startsWith('.versions/') &&
          !e.path.startsWith('identity/'),
      );
      const sizeOnDisk = new Map(files.map((e) => [e.path, e.size]));
      expect(rows.map((f) => f.objectKey).sort()).toEqual([...sizeOnDisk.keys()].sort());
      const sizeMismatches = rows.filter((f) => sizeOnDisk.get(f.objectKey) !== f.size);
      expect(sizeMismatches).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
