/** Shared by the client tests: run the built CLI or `run()` in process, temp config dirs. */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { run } from '../../client/process/main';
import { SERVER_ERROR_LINE } from '../../client/process/output';

export const ROOT = join(__dirname, '..', '..');
export const CLIENT_MAIN = join(ROOT, 'dist', 'client', 'process', 'main.js');

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `node dist/client/main.js args` as a real process; kills it after `timeoutMs`. */
export function runCli(
  args: readonly string[],
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLIENT_MAIN, ...args], {
      cwd: options.cwd ?? ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString('utf8');
    done();
  }
}

/** Runs the client's `run()` in this process with captured output (not a TTY). */
export async function runInProcess(args: readonly string[]): Promise<CliResult> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await run(args, { stdout, stderr });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** How many stderr lines are exactly the §8 error line. */
export function serverErrorLines(stderr: string): number {
  return stderr.split('\n').filter((l) => l === SERVER_ERROR_LINE).length;
}

/** A fresh temp directory, with a transfer.info when `transferInfo` is given. */
export async function tempDir(transferInfo?: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sft-client-test-'));
  if (transferInfo !== undefined) await writeFile(join(dir, 'transfer.info'), transferInfo);
  return dir;
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Deterministic test data: bytes of a simple LCG, so failures reproduce. */
export function testBytes(length: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed >>> 0;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

export const SERVER_MAIN = join(ROOT, 'dist', 'server', 'process', 'main.js');

export interface RealServer {
  readonly port: number;
  readonly address: string;
  stop(): Promise<void>;
}

/**
 * Starts the built `sft-server` on an ephemeral loopback port with `dataDir`; resolves when it
 * logs its "listening" line (JSON, with the port) on stdout.
 */
export function startRealServer(
  dataDir: string,
  extraArgs: readonly string[] = [],
): Promise<RealServer> {
  const child = spawn(
    process.execPath,
    [SERVER_MAIN, '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, ...extraArgs],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
  };
  return new Promise((resolve, reject) => {
    let buffered = '';
    let ready = false;
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`sft-server did not report listening; stderr: ${stderr}`));
    }, 30_000);
    child.once('exit', (code) => {
      if (ready) return;
      clearTimeout(timer);
      reject(new Error(`sft-server exited with ${code} before listening; stderr: ${stderr}`));
    });
    // Keep reading stdout for the whole run, so the server never blocks on a full pipe.
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (ready) return;
      buffered += d;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        try {
          const entry = JSON.parse(line) as { msg?: string; port?: unknown };
          if (entry.msg === 'listening' && typeof entry.port === 'number') {
            ready = true;
            clearTimeout(timer);
            resolve({ port: entry.port, address: `127.0.0.1:${entry.port}`, stop });
            return;
          }
        } catch {
          // not a JSON log line
        }
      }
    });
  });
}
