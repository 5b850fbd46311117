/**
 * Runs the built `sft-server` (dist/server/process/main.js, built by tests/global-setup.js) as a real
 * child process. Ready when it logs the line with msg "listening" and a numeric `port`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

export const SERVER_MAIN = join(__dirname, '..', '..', 'dist', 'server', 'process', 'main.js');
const READY_TIMEOUT_MS = 30000;

export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [field: string]: unknown;
}

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly port: number;
  /** Every JSON log line so far. */
  readonly lines: LogLine[];
  /** Raw stderr so far. */
  stderr(): string;
  /** Waits for a log line matching `predicate`. */
  waitForLine(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Resolves with the exit code (or the signal) when the process exits. */
  readonly exited: Promise<number | NodeJS.Signals>;
  /** Sends a signal and waits for the exit; resolves with the exit code (or the signal). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | NodeJS.Signals>;
}

export interface StartOptions {
  readonly args?: readonly string[];
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/** Starts the server on an ephemeral loopback port unless `args` say otherwise. */
export function startServerProcess(
  dataDir: string,
  options: StartOptions = {},
): Promise<ServerProcess> {
  const args = [
    SERVER_MAIN,
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--data-dir',
    dataDir,
    '--log-level',
    'debug',
    ...(options.args ?? []),
  ];
  return spawnServer(args, options);
}

/** Spawns `node <args>` exactly as given. */
export function spawnServer(
  args: readonly string[],
  options: StartOptions = {},
): Promise<ServerProcess> {
  const child = spawn(process.execPath, args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: LogLine[] = [];
  const listeners = new Set<() => void>();
  let stderr = '';
  let pending = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (text: string) => {
    pending += text;
    const parts = pending.split('\n');
    pending = parts.pop() ?? '';
    for (const part of parts) {
      if (part.trim() === '') continue;
      try {
        lines.push(JSON.parse(part) as LogLine);
      } catch {
        lines.push({ level: 0, msg: part });
      }
    }
    for (const l of [...listeners]) l();
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (text: string) => (stderr += text));
  const exited = new Promise<number | NodeJS.Signals>((resolve) =>
    child.once('exit', (code, signal) => {
      for (const l of [...listeners]) l();
      resolve(code ?? signal ?? -1);
    }),
  );

  const waitForLine = (predicate: (line: LogLine) => boolean, timeoutMs = READY_TIMEOUT_MS) =>
    new Promise<LogLine>((resolve, reject) => {
      const check = (): boolean => {
        const found = lines.find(predicate);
        if (found) {
          done();
          resolve(found);
          return true;
        }
        if (child.exitCode !== null || child.signalCode !== null) {
          done();
          reject(
            new Error(`server exited (${child.exitCode ?? child.signalCode}); stderr: ${stderr}`),
          );
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${stderr}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        listeners.delete(listener);
      };
      const listener = (): void => void check();
      listeners.add(listener);
      check();
    });

  return waitForLine((l) => l.msg === 'listening' && typeof l.port === 'number').then(
    (ready) => ({
      child,
      port: ready.port as number,
      lines,
      stderr: () => stderr,
      exited,
      waitForLine,
      async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20000) {
        if (child.exitCode !== null || child.signalCode !== null) return exited;
        child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        const result = await exited;
        clearTimeout(timer);
        return result;
      },
    }),
    (err: unknown) => {
      child.kill('SIGKILL');
      throw err;
    },
  );
}
