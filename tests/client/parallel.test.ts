/**
 * Several connections of one client at once, against the real server (each connection its own
 * 1027 and session key, docs/protocol.md §9), and against servers that refuse the extra ones.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseServerAddress, type ServerAddress } from '../../client/config/server-address';
import { ExitCode } from '../../client/errors';
import { sendInParallel, type Degraded } from '../../client/session/parallel';
import type { SessionEvents, UploadResult } from '../../client/session/types';
import { prepareUploads, type UploadPlan } from '../../client/session/upload-plan';
import { connectTransport } from '../../client/transport/connection';
import { FakeServer, honest, responseBytes } from '../helpers/fake-server';
import { removeDir, runCli, startRealServer, tempDir, testBytes, type RealServer } from './helpers';

const RECONNECT = 1027;
let server: RealServer | undefined;
let fake: FakeServer | undefined;
const dirs: string[] = [];

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await fake?.stop();
  fake = undefined;
  await Promise.all(dirs.splice(0).map(removeDir));
});

async function newDir(): Promise<string> {
  const dir = await tempDir();
  dirs.push(dir);
  return dir;
}

/** `count` files of different sizes (some empty, some over one 1 MiB block). */
async function makeFiles(count: number): Promise<{ dir: string; names: string[]; data: Buffer[] }> {
  const dir = await newDir();
  const sizes = [0, 1, 15, 16, 1023, 1024, 5000, 70_000, 1_100_000, 300_000, 2, 99_999];
  const names: string[] = [];
  const data: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const name = `file-${String(i).padStart(2, '0')}.bin`;
    const bytes = testBytes(sizes[i % sizes.length], 100 + i);
    await writeFile(join(dir, name), bytes);
    names.push(name);
    data.push(bytes);
  }
  return { dir, names, data };
}

interface Run {
  readonly result: Awaited<ReturnType<typeof sendInParallel>>;
  readonly reported: UploadResult[];
  readonly connects: number;
  readonly degraded: Degraded[];
  readonly serverErrors: string[];
  readonly maxInFlight: number;
}

async function send(
  address: string,
  plans: readonly UploadPlan[],
  connections: number,
  name: string,
): Promise<Run> {
  const server = parseServerAddress(address) as ServerAddress;
  let connects = 0;
  const reported: UploadResult[] = [];
  const degraded: Degraded[] = [];
  const serverErrors: string[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const events: Partial<SessionEvents> = {
    serverError: (what) => serverErrors.push(what),
    uploadStarted: (_plan, attempt) => {
      if (attempt === 1) maxInFlight = Math.max(maxInFlight, ++inFlight);
    },
  };
  const result = await sendInParallel({
    session: {
      connect: () => {
        connects++;
        return connectTransport(server, { connectTimeoutMs: 5000, responseTimeoutMs: 20_000 });
      },
      registerName: name,
      events,
    },
    plans,
    connections,
    onResult: (r) => {
      inFlight--;
      reported.push(r);
    },
    onDegraded: (d) => degraded.push(d),
  });
  return { result, reported, connects, degraded, serverErrors, maxInFlight };
}

describe('sendInParallel against sft-server', () => {
  it('sends 12 files over 4 connections, every one verified, results in argument order', async () => {
    const data = await newDir();
    server = await startRealServer(data);
    const files = await makeFiles(12);
    const plans = prepareUploads(files.names.map((n) => ({ path: join(files.dir, n) })));
    const run = await send(server.address, plans, 4, 'Twelve');

    expect(run.connects).toBe(4);
    expect(run.result.connections).toBe(4);
    expect(run.maxInFlight).toBeGreaterThan(1);
    expect(run.degraded).toEqual([]);
    expect(run.serverErrors).toEqual([]);
    expect(run.result.results.map((r) => [r.fileName, r.verified])).toEqual(
      files.names.map((n) => [n, true]),
    );
    expect(run.reported).toEqual(run.result.results);
    const clientDir = join(data, run.result.identity.clientId.toString('hex'));
    for (let i = 0; i < files.names.length; i++) {
      expect((await readFile(join(clientDir, files.names[i]))).equals(files.data[i])).toBe(true);
    }
  });

  it('uses one connection for one file, and at most one per file', async () => {
    const data = await newDir();
    server = await startRealServer(data);
    const files = await makeFiles(2);
    const one = prepareUploads([{ path: join(files.dir, files.names[0]) }]);
    expect((await send(server.address, one, 4, 'One')).connects).toBe(1);
    const two = prepareUploads(files.names.map((n) => ({ path: join(files.dir, n) })));
    const run = await send(server.address, two, 8, 'Two');
    expect(run.connects).toBe(2);
    expect(run.result.results.every((r) => r.verified)).toBe(true);
  });

  it('goes on over fewer connections when the server refuses the extra ones', async () => {
    const data = await newDir();
    server = await startRealServer(data, ['--max-connections-per-ip', '1']);
    const files = await makeFiles(6);
    const plans = prepareUploads(files.names.map((n) => ({ path: join(files.dir, n) })));
    const run = await send(server.address, plans, 4, 'Refused');

    expect(run.result.connections).toBe(1);
    expect(run.degraded).toEqual([
      expect.objectContaining({ asked: 4, refused: 3, used: 1, reason: expect.any(String) }),
    ]);
    expect(run.serverErrors).toEqual([]);
    expect(run.result.results.map((r) => [r.fileName, r.verified])).toEqual(
      files.names.map((n) => [n, true]),
    );
  });
});

describe('sendInParallel when an upload fails for good', () => {
  it('stops every connection and rejects with that error; results before it stay in order', async () => {
    const data = await newDir();
    server = await startRealServer(data, ['--max-file-size', '100K']);
    const files = await makeFiles(12);
    const plans = prepareUploads(files.names.map((n) => ({ path: join(files.dir, n) })));
    const tooBig = plans.findIndex((p) => p.size > 100 * 1024);
    expect(tooBig).toBeGreaterThan(0);
    const reported: UploadResult[] = [];
    const address = parseServerAddress(server.address) as ServerAddress;
    const failure = await sendInParallel({
      session: {
        connect: () =>
          connectTransport(address, { connectTimeoutMs: 5000, responseTimeoutMs: 20_000 }),
        registerName: 'Too Big',
      },
      plans,
      connections: 4,
      onResult: (r) => reported.push(r),
    }).catch((err: Error & { code?: string }) => err);
    expect(failure).toMatchObject({ code: 'SERVER_ERROR', exitCode: ExitCode.REJECTED });
    // Two of the files are over the limit; whichever connection meets one first stops the run.
    const overLimit = plans.filter((p) => p.size > 100 * 1024).map((p) => p.fileName);
    expect(overLimit.filter((name) => (failure as Error).message.includes(name))).toHaveLength(1);
    expect(reported.length).toBeLessThanOrEqual(tooBig);
    expect(reported.map((r) => r.fileName)).toEqual(
      plans.slice(0, reported.length).map((p) => p.fileName),
    );
  });
});

describe('sendInParallel against a server that answers 1606 to extra reconnects', () => {
  it('never registers on an extra connection: it is given up', async () => {
    const { handler, state } = honest();
    fake = await FakeServer.start((req, reply) => {
      if (req.code === RECONNECT && req.connection > 0) {
        reply.send(responseBytes(1606, req.clientId));
      } else handler(req, reply);
    });
    const files = await makeFiles(3);
    const plans = prepareUploads(files.names.map((n) => ({ path: join(files.dir, n) })));
    const run = await send(fake.address, plans, 3, 'Unknown Elsewhere');
    expect(run.result.connections).toBe(1);
    expect(run.degraded).toEqual([
      expect.objectContaining({ refused: 2, reason: expect.stringMatching(/1606/) }),
    ]);
    expect(fake.requests.filter((r) => r.code === 1025)).toHaveLength(1);
    expect(state.uploads.map((u) => u.fileName)).toEqual(files.names);
  });
});

describe('sendInParallel against a server that answers 1607 to extra reconnects', () => {
  it('gives the extra connections up at once, silently, and sends over the first', async () => {
    const { handler, state } = honest();
    // Answered before the honest server sees it: that one would give the client a new key.
    fake = await FakeServer.start((req, reply) => {
      if (req.code === RECONNECT && req.connection > 0) reply.send(responseBytes(1607));
      else handler(req, reply);
    });
    const files = await makeFiles(5);
    const plans = prepareUploads(files.names.map((n) => ({ path: join(files.dir, n) })));
    const run = await send(fake.address, plans, 3, 'Fake');

    expect(run.connects).toBe(3);
    expect(run.result.connections).toBe(1);
    expect(run.degraded).toEqual([
      expect.objectContaining({
        asked: 3,
        refused: 2,
        used: 1,
        reason: expect.stringMatching(/1607/),
      }),
    ]);
    // One 1027 per extra connection: given up at the first refusal, without the §8 line.
    expect(fake.requests.filter((r) => r.code === RECONNECT)).toHaveLength(2);
    expect(run.serverErrors).toEqual([]);
    expect(state.uploads.map((u) => u.fileName)).toEqual(files.names);
  });
});

describe('sft-client --parallel', () => {
  it('prints one summary in argument order', async () => {
    const data = await newDir();
    server = await startRealServer(data);
    const files = await makeFiles(12);
    const cfg = await newDir();
    await writeFile(join(cfg, 'transfer.info'), `${server.address}\nParallel CLI\n`);
    // Reverse order: the summary must follow the arguments, not the order files finish in.
    const names = [...files.names].reverse();
    // v3: the connections of a v4 client are the v4 session's business.
    const result = await runCli([
      '--protocol',
      'v3',
      '-c',
      cfg,
      '--json',
      '--parallel',
      '4',
      ...names.map((n) => join(files.dir, n)),
    ]);
    expect(result.code).toBe(ExitCode.OK);
    expect(result.stdout.trim().split('\n')).toHaveLength(1);
    const doc = JSON.parse(result.stdout) as { files: { name: string; verified: boolean }[] };
    expect(doc.files.map((f) => [f.name, f.verified])).toEqual(names.map((n) => [n, true]));
  });

  it('refuses a --parallel that is not 1 to 32', async () => {
    for (const value of ['0', '33', 'x', '1.5']) {
      const result = await runCli(['--parallel', value]);
      expect(result.code).toBe(ExitCode.USAGE);
      expect(result.stderr).toMatch(/--parallel must be a whole number from 1 to 32/);
    }
  });
});
