/**
 * The reference for the many row: the same folders sent by the least a Node program does for
 * the same guarantees (bench/reference/: TLS 1.3, SHA-256 on both ends, each file written,
 * fdatasync'ed and renamed before its answer, one folder fsync per batch), a fresh sender
 * process per run as a user's run of sft-client is. No protocol, database, checksum or limits.
 * It shows how far any Node implementation gets on this machine, beside scp and ours.
 */
import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { issueCertificate } from '../shared/identity';
import { timed } from './timed';

const RECEIVER = join(__dirname, 'reference', 'receiver.js');
const SENDER = join(__dirname, 'reference', 'sender.js');
const READY_TIMEOUT_MS = 30_000;

export interface ReferenceOptions {
  readonly work: string;
  /** One folder of files per run, each new to the receiver. */
  readonly sets: readonly (readonly string[])[];
  readonly runs: number;
  /** Connections of the sender (the client's default --parallel). */
  readonly connections: number;
}

function waitForPort(child: ReturnType<typeof spawn>): Promise<number> {
  const lines = createInterface({ input: child.stdout! });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error('reference receiver did not listen')),
      READY_TIMEOUT_MS,
    );
    lines.on('line', (line) => {
      const port = (JSON.parse(line) as { port?: number }).port;
      if (port !== undefined) {
        clearTimeout(timer);
        resolve(port);
      }
    });
    child.once('exit', (code) => reject(new Error(`reference receiver exited (${code})`)));
  });
}

function runSender(port: number, connections: number, files: readonly string[]): Promise<number> {
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, [SENDER, String(port), String(connections), ...files], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      if (code === 0) resolve(Number(process.hrtime.bigint() - started) / 1e6);
      else reject(new Error(`reference sender exited (${code})`));
    });
  });
}

/** Milliseconds of each run, spawn to exit. */
export async function measureReference(options: ReferenceOptions): Promise<number[]> {
  const dir = join(options.work, 'reference');
  const received = join(dir, 'received');
  mkdirSync(received, { recursive: true });
  const identity = await issueCertificate(
    generateKeyPairSync('ed25519').privateKey,
    'bench-reference',
    { now: Date.now, random: randomBytes },
  );
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  writeFileSync(certFile, identity.certPem);
  writeFileSync(keyFile, identity.keyPem, { mode: 0o600 });
  const receiver = spawn(process.execPath, [RECEIVER, received, certFile, keyFile], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const port = await waitForPort(receiver);
    const runsMs = await timed(options.runs, (i) =>
      runSender(port, options.connections, options.sets[i] ?? []),
    );
    const expected = options.sets.slice(0, options.runs).reduce((n, set) => n + set.length, 0);
    const stored = readdirSync(received).filter((name) => !name.startsWith('.part-')).length;
    if (stored !== expected) throw new Error(`the reference stored ${stored} of ${expected} files`);
    return runsMs;
  } finally {
    receiver.kill();
  }
}
