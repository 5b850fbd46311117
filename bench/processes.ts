/** Starting the built `sft-server` and timing `sft-client` runs as separate processes. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export const ROOT = join(__dirname, '..', '..');
export const SERVER_MAIN = join(ROOT, 'dist', 'server', 'process', 'main.js');
export const CLIENT_MAIN = join(ROOT, 'dist', 'client', 'process', 'main.js');

export interface RunningServer {
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 30_000;

/**
 * Extra Node options for the spawned programs, for profiling a benchmark run, e.g.
 * `BENCH_SERVER_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' npm run bench`
 * (NODE_OPTIONS refuses --cpu-prof).
 */
function nodeArgs(variable: 'BENCH_SERVER_NODE_ARGS' | 'BENCH_CLIENT_NODE_ARGS'): string[] {
  return (process.env[variable] ?? '').split(' ').filter((arg) => arg !== '');
}

/**
 * Starts the server on an ephemeral loopback port; resolves once it logs "listening" (the log
 * level must stay at info for that line).
 */
export async function startServer(
  dataDir: string,
  extraArgs: readonly string[] = [],
  env?: NodeJS.ProcessEnv,
): Promise<RunningServer> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      // As the sft-server bin's shebang starts it (its default --gc-nudge auto needs gc).
      '--expose-gc',
      ...nodeArgs('BENCH_SERVER_NODE_ARGS'),
      SERVER_MAIN,
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--data-dir',
      dataDir,
      '--log-level',
      'info',
      ...extraArgs,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env },
  );
  const lines = createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error('server did not report listening')),
      READY_TIMEOUT_MS,
    );
    child.once('exit', (code) => reject(new Error(`server exited early with ${code}`)));
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        if (entry.msg === 'listening' && typeof entry.port === 'number') {
          clearTimeout(timer);
          resolve(entry.port);
        }
      } catch {
        // not a JSON log line
      }
    });
  });
  lines.on('line', () => undefined);
  return {
    port,
    pid: child.pid!,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

export interface ClientRun {
  readonly code: number;
  readonly ms: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `sft-client` to completion; wall time from spawn to exit. */
export async function runClient(args: string[], cwd: string): Promise<ClientRun> {
  const start = process.hrtime.bigint();
  const child = spawn(
    process.execPath,
    [...nodeArgs('BENCH_CLIENT_NODE_ARGS'), CLIENT_MAIN, ...args],
    {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  return { code: code ?? -1, ms, stdout, stderr };
}
