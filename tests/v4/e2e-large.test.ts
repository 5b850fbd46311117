/**
 * A file past 4 GiB over version 4 (64-bit sizes, docs/protocol-v4.md §4.4) from a sparse
 * source. By default the server keeps only the SHA-256 of what it receives (CI machines may be
 * short of disk); SFT_V4_REAL_DISK=1 also runs it through the real disk path (about 13 GB of
 * I/O: the partial, the file, and the check).
 */
import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createServer, type SftServer } from '../../server/transport/listener';
import { serverIdentity } from '../../server/transport/tls-setup';
import { openBackends, type Backends } from '../../server/storage/open-backends';
import { createMemoryV4Store } from '../../server/storage/memory/v4-store';
import { silentLogger } from '../../shared/logger';
import { startServerProcess, type ServerProcess } from '../helpers/server-process';
import { createHashOnlyFiles, createNullPartials } from './hash-only-stores';
import { removeDirs, runClient, sha256File, tempDir } from './helpers';

const GIB = 1024 ** 3;
/** Past 2^32, with a few marked bytes so the content is not all zeros. */
const SIZE = 4 * GIB + 123_457;
const MARKS: ReadonlyArray<readonly [number, string]> = [
  [0, 'first bytes'],
  [2 ** 32 - 5, 'across the 4 GiB line'],
  [SIZE - 9, 'the end!!'],
];

async function sparseSource(path: string): Promise<string> {
  const handle = await open(path, 'w');
  try {
    await handle.truncate(SIZE);
    for (const [at, text] of MARKS) await handle.write(Buffer.from(text), 0, text.length, at);
  } finally {
    await handle.close();
  }
  // The expected digest, computed independently of both programs.
  const hash = createHash('sha256');
  const zeros = Buffer.alloc(1 << 24);
  let position = 0;
  for (const [at, text] of MARKS) {
    while (position < at) {
      const n = Math.min(zeros.length, at - position);
      hash.update(zeros.subarray(0, n));
      position += n;
    }
    hash.update(text);
    position += text.length;
  }
  return hash.digest('hex');
}

const realDisk = process.env.SFT_V4_REAL_DISK === '1' ? it : it.skip;
const TIMEOUT_MS = 20 * 60_000;

describe('v4 end to end: large files', () => {
  let dirs: string[] = [];
  let server: ServerProcess | undefined;
  let inProcess: { server: SftServer; backends: Backends } | undefined;
  afterEach(async () => {
    await server?.stop('SIGKILL');
    server = undefined;
    if (inProcess) {
      await inProcess.server.close(0);
      await inProcess.backends.close();
      inProcess = undefined;
    }
    await removeDirs(...dirs);
    dirs = [];
  });

  it(
    'carries a sparse file over 4 GiB to a store that keeps its SHA-256',
    async () => {
      const data = await tempDir('large-hash');
      const conf = await tempDir('large-cli');
      dirs = [data, conf];
      const file = join(conf, 'huge.img');
      const expected = await sparseSource(file);
      const backends = await openBackends({
        dataDir: data,
        database: 'memory',
        storage: 'memory',
        keepVersions: 1,
        now: Date.now,
      });
      const files = createHashOnlyFiles();
      const listener = createServer({
        store: backends.catalog,
        files,
        logger: silentLogger(),
        v4: {
          identity: await serverIdentity(data),
          identities: createMemoryV4Store(),
          partials: createNullPartials(),
        },
      });
      inProcess = { server: listener, backends };
      const { port } = await listener.listen(0, '127.0.0.1');
      const args = ['--server', `127.0.0.1:${port}`, '--name', 'max', file];
      const run = await runClient(conf, args, { timeoutMs: TIMEOUT_MS });
      expect(run.stderr).not.toContain('error');
      expect(run.code).toBe(0);
      expect(run.json?.files[0]?.bytes).toBe(SIZE);
      expect(run.json?.files[0]?.sha256).toBe(expected);
      const id = run.json?.clientId as string;
      expect(files.committed.get(`${id}/huge.img`)).toEqual({ sha256: expected, bytes: SIZE });
      const row = await backends.catalog.findFile(Buffer.from(id, 'hex'), 'huge.img');
      expect(row?.size).toBe(SIZE);
      expect(row?.status).toBe('verified');
    },
    TIMEOUT_MS,
  );

  realDisk(
    'stores a sparse file over 4 GiB on disk with the right SHA-256',
    async () => {
      const data = await tempDir('large-srv');
      const conf = await tempDir('large-cli');
      dirs = [data, conf];
      const file = join(conf, 'huge.img');
      const expected = await sparseSource(file);
      server = await startServerProcess(data, { args: ['--log-level', 'info'] });
      const args = ['--server', `127.0.0.1:${server.port}`, '--name', 'max', file];
      const run = await runClient(conf, args, { timeoutMs: TIMEOUT_MS });
      expect(run.stderr).not.toContain('error');
      expect(run.code).toBe(0);
      expect(run.json?.files[0]?.bytes).toBe(SIZE);
      expect(run.json?.files[0]?.sha256).toBe(expected);
      const stored = join(data, run.json?.clientId as string, 'huge.img');
      expect((await stat(stored)).size).toBe(SIZE);
      expect(await sha256File(stored)).toBe(expected);
    },
    TIMEOUT_MS,
  );
});
