/**
 * The client's pipelined uploads (docs/protocol-v4.md §5.10) against the real v4 server session
 * over SQLite and disk (memory-server.ts): small files pipelined on one connection, a file
 * larger than a chunk between them sent plainly, every file listed verified with our SHA-256;
 * a refused file among pipelined ones fails alone.
 */
import { join } from 'node:path';
import { ClientErrorCode } from '../../client/errors';
import { silentLog } from '../../client/session/types';
import { listFiles } from '../../client/v4/files';
import { uploadInParallel } from '../../client/v4/parallel-upload';
import { V4ClientSession } from '../../client/v4/session';
import type { Backends } from '../../server/storage/open-backends';
import { fileNames, sha256Hex, writePlans } from './client-pipelined-server';
import { removeDirs, tempDir } from './helpers';
import { openSqliteDisk, startMemoryServer, type MemoryServer } from './memory-server';

const KIB = 1024;
const MIB = 1024 * KIB;

describe('v4 client: pipelined uploads to the real server', () => {
  let dir: string;
  let backends: Backends;
  let server: MemoryServer | undefined;
  const sessions: V4ClientSession[] = [];

  beforeEach(async () => {
    dir = await tempDir('pipelined-real');
    backends = await openSqliteDisk(join(dir, 'data'));
  });
  /** The server with `--max-file-size`, and a session registered with it. */
  const start = async (maxFileSize: number): Promise<V4ClientSession> => {
    server = await startMemoryServer(join(dir, 'data'), {
      backends,
      files: true,
      server: { limits: { maxFileSize } },
    });
    return connect();
  };
  /** A session with the server (the first one registers). */
  const connect = async (): Promise<V4ClientSession> => {
    const port = (server as MemoryServer).port;
    const opened = await V4ClientSession.open({
      configDir: join(dir, 'cfg'),
      server: { host: '127.0.0.1', port, display: `127.0.0.1:${port}` },
      protocol: 'v4',
      serverFingerprint: undefined,
      registerName: 'piper',
      v3Identity: undefined,
      connectTimeoutMs: 5000,
      responseTimeoutMs: 10_000,
      notice: () => undefined,
      log: silentLog,
    });
    if (opened.kind !== 'v4') throw new Error('the v4 server was taken for a v3 one');
    sessions.push(opened.session);
    return opened.session;
  };
  afterEach(async () => {
    for (const s of sessions.splice(0)) s.close();
    await server?.close();
    server = undefined;
    await backends.close();
    await removeDirs(dir);
  });

  it('pipelines small files on one connection, a large one among them plainly; all stored verified', async () => {
    const s = await start(2 * MIB);
    const names = [...fileNames(12), 'large.bin', ...fileNames(24).slice(12)];
    const { plans, bytes } = await writePlans(join(dir, 'files'), names, (name) =>
      name === 'large.bin' ? MIB + MIB / 2 : 20 * KIB + names.indexOf(name),
    );
    const results = await uploadInParallel({
      first: s,
      plans,
      connections: 1,
      // One connection: no extra one is opened.
      extra: {
        server: { host: '127.0.0.1', port: 1, display: 'unused' },
        connectTimeoutMs: 1,
        responseTimeoutMs: 1,
      },
      upload: (on, plan) => on.upload(plan),
    });
    expect(results.map((r) => [r.fileName, r.sha256])).toEqual(
      names.map((n) => [n, sha256Hex(bytes.get(n) as Buffer)]),
    );
    // The server took the probe: the session still pipelines.
    expect(s.pipelines(KIB)).toBe(true);
    // The pool closed its connection at the end.
    const listed = await listFiles((await connect()).channel.link);
    expect(listed.map((f) => [f.name, f.size, f.sha256, f.verified]).sort()).toEqual(
      names.map((n) => [n, bytes.get(n)?.length, sha256Hex(bytes.get(n) as Buffer), true]).sort(),
    );
  });

  it('a file the server refuses at its UPLOAD_BEGIN fails alone among pipelined ones', async () => {
    const s = await start(100 * KIB);
    const names = fileNames(6);
    const { plans, bytes } = await writePlans(join(dir, 'files'), names, (name) =>
      name === 'f02.bin' ? 150 * KIB : 30 * KIB,
    );
    const settled = await Promise.allSettled(plans.map((p) => s.upload(p)));
    expect(
      settled.map((r) =>
        r.status === 'fulfilled' ? r.value.sha256 : (r.reason as { code: string }).code,
      ),
    ).toEqual(
      names.map((n) =>
        n === 'f02.bin' ? ClientErrorCode.REJECTED : sha256Hex(bytes.get(n) as Buffer),
      ),
    );
    expect((settled[2] as PromiseRejectedResult).reason).toMatchObject({
      message: expect.stringContaining('FILE_TOO_LARGE'),
    });
    const listed = await listFiles(s.channel.link);
    expect(listed.map((f) => [f.name, f.sha256]).sort()).toEqual(
      names.filter((n) => n !== 'f02.bin').map((n) => [n, sha256Hex(bytes.get(n) as Buffer)]),
    );
  });
});
