/**
 * Lower bounds measured in the same run: what no implementation of the required work can beat
 * on this machine. They put the targets next to what the machine allows, so a ratio to scp is
 * read against the best ratio possible rather than in the abstract.
 *
 * - A fresh client is a new node process: its start-up is paid by every "fresh process" row.
 * - "Every file durable" means each file's data is fsynced (and its name, with one directory
 *   fsync for all) before it is answered; scp syncs nothing.
 * - v4 hashes (SHA-256) and checksums (cksum) the plaintext on both ends and encrypts it
 *   (AES-GCM inside TLS); the server writes and fsyncs it.
 */
import { spawnSync } from 'node:child_process';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { Cksum } from '../shared/cksum';
import { settleDisk } from './disk';
import { median } from './stats';

const RUNS = 5;
/** TLS records carry at most 16 KiB of plaintext. */
const TLS_RECORD = 16 * 1024;
/** Block size the programs use for file reads and hashing. */
const BLOCK = 1 << 20;
/** Files made durable at once: more than libuv's four threads, so opens overlap fsyncs. */
const IN_FLIGHT = 16;

export interface Floors {
  /** `node -e ''`, spawn to exit. */
  readonly nodeStartMs: number;
  /** `files` files of `fileBytes` each written, each fsynced, one directory fsync. */
  readonly durableManyMs: number;
  /** One file of the single size written (page cache only). */
  readonly writeSingleMs: number;
  /** fsync of that file. */
  readonly fsyncSingleMs: number;
  /** CPU per pass over the single file: SHA-256, cksum, AES-128-GCM in TLS-record pieces. */
  readonly sha256Ms: number;
  readonly cksumMs: number;
  readonly gcmMs: number;
}

function msSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function best(run: () => void): number {
  let least = Infinity;
  for (let i = 0; i < 3; i++) {
    const start = process.hrtime.bigint();
    run();
    least = Math.min(least, msSince(start));
  }
  return least;
}

function nodeStartMs(): number {
  const runs: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = process.hrtime.bigint();
    spawnSync(process.execPath, ['-e', ''], { stdio: 'ignore' });
    runs.push(msSince(start));
  }
  return median(runs);
}

async function durableManyMs(dir: string, files: number, fileBytes: number): Promise<number> {
  const data = randomBytes(fileBytes);
  const runs: number[] = [];
  for (let run = 0; run < 3; run++) {
    const folder = join(dir, `durable-${run}`);
    mkdirSync(folder);
    settleDisk();
    const start = process.hrtime.bigint();
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < files; i = next++) {
        const handle = await open(join(folder, `f${i}`), 'wx');
        try {
          await handle.write(data, 0, data.length, 0);
          await handle.sync();
        } finally {
          await handle.close();
        }
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    const folderHandle = await open(folder, 'r');
    await folderHandle.sync();
    await folderHandle.close();
    runs.push(msSince(start));
  }
  // Removed after all runs, not between: a run creating files right after hundreds were
  // deleted pays for skipping their inodes (anchor.ts says why).
  for (let run = 0; run < 3; run++)
    rmSync(join(dir, `durable-${run}`), { recursive: true, force: true });
  return median(runs);
}

async function singleWrite(
  dir: string,
  data: Buffer,
): Promise<{ writeMs: number; fsyncMs: number }> {
  const writes: number[] = [];
  const syncs: number[] = [];
  for (let run = 0; run < 3; run++) {
    const file = join(dir, `single-${run}`);
    settleDisk();
    const handle = await open(file, 'wx');
    try {
      const start = process.hrtime.bigint();
      for (let at = 0; at < data.length; at += BLOCK) {
        await handle.write(data, at, Math.min(BLOCK, data.length - at), at);
      }
      writes.push(msSince(start));
      const synced = process.hrtime.bigint();
      await handle.sync();
      syncs.push(msSince(synced));
    } finally {
      await handle.close();
    }
    rmSync(file, { force: true });
  }
  return { writeMs: median(writes), fsyncMs: median(syncs) };
}

export async function measureFloors(
  workDir: string,
  sizes: { readonly files: number; readonly fileBytes: number; readonly singleBytes: number },
): Promise<Floors> {
  const dir = join(workDir, 'floors');
  mkdirSync(dir);
  try {
    const data = randomBytes(sizes.singleBytes);
    const key = randomBytes(16);
    const iv = randomBytes(12);
    const { writeMs, fsyncMs } = await singleWrite(dir, data);
    return {
      nodeStartMs: nodeStartMs(),
      durableManyMs: await durableManyMs(dir, sizes.files, sizes.fileBytes),
      writeSingleMs: writeMs,
      fsyncSingleMs: fsyncMs,
      sha256Ms: best(() => {
        const hash = createHash('sha256');
        for (let at = 0; at < data.length; at += BLOCK) hash.update(data.subarray(at, at + BLOCK));
        hash.digest();
      }),
      cksumMs: best(() => {
        const sum = new Cksum();
        for (let at = 0; at < data.length; at += BLOCK) sum.update(data.subarray(at, at + BLOCK));
        sum.digest();
      }),
      gcmMs: best(() => {
        const gcm = createCipheriv('aes-128-gcm', key, iv);
        for (let at = 0; at < data.length; at += TLS_RECORD) {
          gcm.update(data.subarray(at, at + TLS_RECORD));
        }
        gcm.final();
      }),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Fastest possible many-files run: a client process starts, and the files become durable.
 * Nothing else (reading, encrypting, the protocol, the database) is counted.
 */
export function manyFloorMs(f: Floors): number {
  return f.nodeStartMs + f.durableManyMs;
}

/**
 * Fastest possible v4 upload of the single file: a client process starts; the per-byte CPU
 * work of both ends (client: SHA-256, cksum, encryption; server: decryption, SHA-256, cksum,
 * the write) spread perfectly over `cores` cores; then the final fsync. Reading the file,
 * sockets, TLS framing and the handshake are not counted.
 */
export function v4FloorMs(f: Floors, cores: number): number {
  const perByteCpu = 2 * (f.sha256Ms + f.cksumMs + f.gcmMs) + f.writeSingleMs;
  return f.nodeStartMs + perByteCpu / Math.max(1, cores) + f.fsyncSingleMs;
}
