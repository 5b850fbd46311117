/**
 * Shared pieces of the fault tests (tests/hardening): the built server as a child process with
 * chosen flags, its memory from /proc, loopback source addresses, a complete well-behaved
 * session with its checks, the admin command, and a walk of the file system.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { cksum } from '../../shared/cksum';
import { Code, RawClient, Reply, checksum, fileReceived, uploadPackets } from './raw-client';
import { SERVER_MAIN, startServerProcess, type ServerProcess } from './server-process';
import { registerWithKey, testKeys, type ClientKeys, type Registered } from '../server/harness';

/**
 * Starts `sft-server` on an ephemeral loopback port with `flags` after the fixed ones. Log level
 * info: the fault tests read refusals (warn) and errors, not the per-connection debug lines.
 */
export function spawnHardened(
  dataDir: string,
  flags: readonly string[] = [],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<ServerProcess> {
  // A flag given twice takes the last value, so this overrides startServerProcess's debug level.
  return startServerProcess(dataDir, { ...options, args: ['--log-level', 'info', ...flags] });
}

/** Flags that take the per-address limits out of the way for one-address load tests. */
export const LOOSE_ADDRESS_FLAGS: readonly string[] = [
  '--max-connections-per-ip',
  '100000',
  '--register-rate',
  '100000',
  '--register-burst',
  '100000',
];

/** Resident memory of a process in bytes (VmRSS of /proc/<pid>/status). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** Open files of a process (entries of /proc/<pid>/fd). */
export async function openFdCount(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

/** The soft limit on open files of this process (children inherit it). */
export function openFileSoftLimit(): number {
  const limits = readFileSync('/proc/self/limits', 'utf8');
  const m = /^Max open files\s+(\d+|unlimited)\s+/m.exec(limits);
  if (!m) throw new Error('no "Max open files" in /proc/self/limits');
  return m[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(m[1]);
}

/**
 * Distinct loopback source addresses (Linux routes all of 127.0.0.0/8 to `lo`): 127.a.b.c with
 * a starting at `firstOctet`, so different suites in parallel do not share per-address counts.
 */
export function loopbackAddress(firstOctet: number, index: number): string {
  const b = Math.floor(index / 250) % 250;
  const c = (index % 250) + 2;
  return `127.${firstOctet}.${b}.${c}`;
}

/**
 * Writes `bytes` in pieces whose sizes `nextSize` picks, yielding to the event loop now and
 * then so the pieces go out apart. Unlike waiting for 'drain' alone, it stops as soon as the
 * server ends or closes the connection (it does after a framing error, docs/protocol.md §9): a
 * destroyed socket never emits 'drain', and the writer would wait forever.
 */
export async function writeInPieces(
  client: RawClient,
  bytes: Buffer,
  nextSize: () => number,
): Promise<void> {
  const { socket } = client;
  let at = 0;
  let writes = 0;
  while (at < bytes.length) {
    if (!client.isOpen || socket.destroyed || !socket.writable) return;
    const size = Math.max(1, Math.min(bytes.length - at, nextSize()));
    const flushed = socket.write(bytes.subarray(at, at + size));
    at += size;
    if (!flushed) {
      await Promise.race([new Promise((r) => socket.once('drain', r)), client.closed]);
    } else if (++writes % 64 === 0) {
      await new Promise((r) => setImmediate(r));
    }
  }
}

export interface SessionResult extends Registered {
  readonly fileName: string;
  readonly plaintext: Buffer;
}

/** Deterministic file bytes for sessions. */
export function patternBytes(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/**
 * A complete well-behaved session on a new connection: register, key, upload, 1029 → 1604; the
 * stored file must hold exactly the plaintext. Throws (with what went wrong) otherwise.
 */
export async function completeSession(
  port: number,
  dataDir: string,
  options: {
    name: string;
    size?: number;
    localAddress?: string;
    keys?: ClientKeys;
    timeoutMs?: number;
  },
): Promise<SessionResult> {
  const client = await RawClient.connect(port, '127.0.0.1', options.localAddress);
  try {
    const me = await registerWithKey(client, options.name, options.keys ?? testKeys());
    return await uploadAndConfirm(client, dataDir, me, {
      fileName: `${options.name}.bin`,
      size: options.size ?? 5000,
      timeoutMs: options.timeoutMs,
    });
  } finally {
    client.destroy();
  }
}

/** Uploads one file over `client` for `me`, confirms it, and checks the stored bytes. */
export async function uploadAndConfirm(
  client: RawClient,
  dataDir: string,
  me: Registered,
  options: { fileName: string; size: number; timeoutMs?: number },
): Promise<SessionResult> {
  const plaintext = patternBytes(options.size, options.size + options.fileName.length);
  const r = await client.request(
    uploadPackets(me.id, options.fileName, me.aesKey, plaintext),
    options.timeoutMs,
  );
  if (r.code !== Reply.FILE_RECEIVED) throw new Error(`upload: got ${r.code}, not 1603`);
  const received = fileReceived(r);
  if (received.cksum !== cksum(plaintext) || received.fileName !== options.fileName) {
    throw new Error(`upload: 1603 says ${received.fileName} cksum ${received.cksum}`);
  }
  const ack = await client.request(
    checksum(Code.CRC_OK, me.id, options.fileName),
    options.timeoutMs,
  );
  if (ack.code !== Reply.ACK || !ack.payload.subarray(0, 16).equals(me.id)) {
    throw new Error(`confirm: got ${ack.code}, not 1604 with the id`);
  }
  const stored = await readFile(join(dataDir, me.id.toString('hex'), options.fileName));
  if (!stored.equals(plaintext)) throw new Error('stored file differs from the plaintext');
  return { ...me, fileName: options.fileName, plaintext };
}

export interface AdminRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `sft-server admin <what> --data-dir <dir> …` as a separate process. */
export function runAdminCommand(dataDir: string, args: readonly string[]): AdminRun {
  const result = spawnSync(
    process.execPath,
    [SERVER_MAIN, 'admin', ...args, '--data-dir', dataDir],
    {
      encoding: 'utf8',
      timeout: 60000,
    },
  );
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

export interface TreeEntry {
  /** Path relative to the walked root, '/'-separated. */
  readonly path: string;
  readonly kind: 'file' | 'dir' | 'symlink' | 'other';
  readonly size: number;
}

/** Every entry below `root` (lstat: symlinks are reported, never followed). */
export async function walkTree(root: string): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  const visit = async (dir: string): Promise<void> => {
    for (const name of await readdir(dir)) {
      const full = join(dir, name);
      const st = await lstat(full);
      const kind = st.isSymbolicLink()
        ? 'symlink'
        : st.isDirectory()
          ? 'dir'
          : st.isFile()
            ? 'file'
            : 'other';
      out.push({ path: relative(root, full).split('\\').join('/'), kind, size: st.size });
      if (kind === 'dir') await visit(full);
    }
  };
  await visit(root);
  return out;
}

/** Lines of a server's log at `level` or above (pino numbers: 40 warn, 50 error, 60 fatal). */
export function linesAtLeast(server: ServerProcess, level: number): ServerProcess['lines'] {
  return server.lines.filter((l) => l.level >= level);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it returns true or `timeoutMs` passes; returns the last result. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  intervalMs = 100,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(intervalMs);
  }
}
