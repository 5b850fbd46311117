/**
 * Helpers of the version-4 end-to-end tests: the built client as a child process, a loopback
 * TCP proxy that can cut, corrupt or slow the client's stream, and small file utilities.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServerProcess, type ServerProcess } from '../helpers/server-process';

export const CLIENT_MAIN = join(__dirname, '..', '..', 'dist', 'client', 'process', 'main.js');

export interface ClientRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
  /** The --json document, when stdout held one. */
  readonly json: JsonSummary | undefined;
}

export interface JsonSummary {
  readonly ok: boolean;
  readonly exitCode: number;
  readonly clientId: string | null;
  readonly name: string | null;
  readonly registered: boolean | null;
  readonly files: ReadonlyArray<{
    readonly name: string;
    readonly bytes: number;
    readonly verified: boolean;
    readonly sha256?: string;
    readonly resumedFrom?: number;
    readonly bytesSent?: number;
  }>;
  readonly error?: { readonly code: string; readonly message: string; readonly hint: string };
}

/** Runs `sft-client --json --config-dir DIR ARGS…` to its end. */
export function runClient(
  configDir: string,
  args: readonly string[],
  options: { timeoutMs?: number } = {},
): Promise<ClientRun> {
  const started = Date.now();
  const child = spawn(
    process.execPath,
    [CLIENT_MAIN, '--json', '--config-dir', configDir, ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (t: string) => (stdout += t));
  child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      let json: JsonSummary | undefined;
      try {
        json = JSON.parse(stdout.trim().split('\n').pop() ?? '') as JsonSummary;
      } catch {
        json = undefined;
      }
      resolve({
        code: code ?? (signal ? 128 : -1),
        stdout,
        stderr,
        ms: Date.now() - started,
        json,
      });
    });
  });
}

export interface ProxyOptions {
  /** Closes both sides once this many client→server bytes passed (first connection only). */
  cutAfter?: number;
  /** Flips the bits of the client→server byte at this offset (first connection only). */
  flipAt?: number;
  /** Client→server bytes per second (all connections). */
  bytesPerSecond?: number;
}

/** A TCP proxy on loopback to `targetPort`; counts what the client sent per connection. */
export class TestProxy {
  /** Client→server bytes of each connection, in order. */
  readonly upstreamBytes: number[] = [];
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    public targetPort: number,
    readonly options: ProxyOptions,
  ) {}

  static async start(targetPort: number, options: ProxyOptions = {}, port = 0): Promise<TestProxy> {
    const server = net.createServer();
    const proxy = new TestProxy(server, targetPort, options);
    server.on('connection', (client) => proxy.onConnection(client));
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  private onConnection(client: net.Socket): void {
    const index = this.upstreamBytes.length;
    this.upstreamBytes.push(0);
    const first = index === 0;
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        this.sockets.delete(s);
        if (s === upstream) client.destroy();
        else if (!upstream.writableEnded) upstream.destroy();
      });
    }
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    const { cutAfter, flipAt, bytesPerSecond } = this.options;
    const startedAt = Date.now();
    client.on('data', (chunk: Buffer) => {
      let data = chunk;
      const before = this.upstreamBytes[index] ?? 0;
      if (first && cutAfter !== undefined && before + data.length >= cutAfter) {
        data = data.subarray(0, Math.max(0, cutAfter - before));
        this.upstreamBytes[index] = before + data.length;
        // A FIN after the last byte, as when the network stops: what arrived stays readable.
        upstream.end(data);
        client.destroy();
        return;
      }
      if (first && flipAt !== undefined && flipAt >= before && flipAt < before + data.length) {
        data = Buffer.from(data);
        data[flipAt - before] = (data[flipAt - before] ?? 0) ^ 0xff;
      }
      this.upstreamBytes[index] = before + data.length;
      upstream.write(data);
      if (bytesPerSecond !== undefined) {
        const due = startedAt + ((this.upstreamBytes[index] ?? 0) * 1000) / bytesPerSecond;
        const wait = due - Date.now();
        if (wait > 0) {
          client.pause();
          setTimeout(() => client.resume(), wait);
        }
      }
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `sft-v4-${prefix}-`));
}

export async function removeDirs(...dirs: string[]): Promise<void> {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }))
    hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Deterministic bytes that do not compress (xorshift). */
export function patternBytes(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed | 1;
  for (let i = 0; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeInt32LE(x | 0, i);
  }
  for (let i = size - (size % 4); i < size; i++) out[i] = i & 0xff;
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** What an end-to-end test starts and the fixture ends after it (see e2eFixture). */
export interface E2eFixture {
  /** A temp folder, removed after the test. */
  dir(prefix: string): Promise<string>;
  /** A server process on `dataDir` with `args`, killed after the test. */
  server(dataDir: string, args?: readonly string[]): Promise<ServerProcess>;
  /** Work to do after the test, before the servers stop (closing proxies, daemons). */
  onCleanup(close: () => Promise<void>): void;
}

/**
 * Registers an afterEach that ends what each test started: its cleanups, then its server
 * processes (SIGKILL), then its temp folders.
 */
export function e2eFixture(): E2eFixture {
  const dirs: string[] = [];
  const servers: ServerProcess[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await Promise.all(cleanups.splice(0).map((close) => close()));
    await Promise.all(servers.splice(0).map((s) => s.stop('SIGKILL')));
    await removeDirs(...dirs.splice(0));
  });
  return {
    async dir(prefix) {
      const d = await tempDir(prefix);
      dirs.push(d);
      return d;
    },
    async server(dataDir, args = []) {
      const s = await startServerProcess(dataDir, { args });
      servers.push(s);
      return s;
    },
    onCleanup(close) {
      cleanups.push(close);
    },
  };
}
