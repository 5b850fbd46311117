/**
 * A full disk must not lock users out of freeing space. SQLite (and any write-ahead log) needs
 * a little room to commit a delete, so the server keeps a file of zeros in its data folder, the
 * reserve, and gives it up when a write fails for want of space: deletions and the audit trail
 * can then still commit. While it is given up, new uploads are refused before they write
 * anything; once the file system has room for it again it is written anew and uploads resume.
 * (Databases call the same idea an emergency ballast.)
 */
import { open, rename, rm, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../shared/logger';
import { errnoCode } from '../../shared/errno';
import { StorageError, StorageErrorCode } from './types';

export const RESERVE_FILE_NAME = '.space-reserve';
const WRITE_CHUNK = 1024 * 1024;

/** Errors that mean "no room": errno, SQLite and PostgreSQL spellings. */
const FULL_CODES = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL', '53100']);

/** True when `err`, or an error it was caused by, says the disk (or a disk quota) is full. */
export function isDiskFull(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 8; depth += 1) {
    if (e instanceof StorageError && e.code === StorageErrorCode.DISK_FULL) return true;
    const code = errnoCode(e);
    if (code !== undefined && FULL_CODES.has(code)) return true;
    e = e instanceof Error ? e.cause : undefined;
  }
  return false;
}

export interface SpaceReserveOptions {
  /** The data folder: the reserve lives here, on the file system of the database and files. */
  readonly dir: string;
  /** Size of the reserve in bytes (> 0). */
  readonly bytes: number;
  readonly log: Logger;
  /** Bytes an unprivileged writer may still use on the file system of `dir`. */
  readonly freeSpace?: (dir: string) => Promise<number>;
}

async function statfsFree(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

export class SpaceReserve {
  private held = false;
  /** The free-space check and the re-arm in progress, shared by uploads arriving together. */
  private checking: Promise<number> | undefined;
  private arming: Promise<void> | undefined;
  private readonly path: string;
  private readonly freeSpace: (dir: string) => Promise<number>;

  private constructor(private readonly options: SpaceReserveOptions) {
    this.path = join(options.dir, RESERVE_FILE_NAME);
    this.freeSpace = options.freeSpace ?? statfsFree;
  }

  /** Keeps the reserve that is there, or writes one if there is room for it. */
  static async open(options: SpaceReserveOptions): Promise<SpaceReserve> {
    const reserve = new SpaceReserve(options);
    const size = await stat(reserve.path).then(
      (s) => s.size,
      () => undefined,
    );
    if (size === options.bytes) reserve.held = true;
    else await reserve.arm(await reserve.freeSpace(options.dir).catch(() => 0));
    if (!reserve.held) {
      options.log.warn(
        { dir: options.dir, reserveBytes: options.bytes },
        'low disk space: no room for the reserve; uploads are refused until there is',
      );
    }
    return reserve;
  }

  /** True while the reserve is on disk (uploads are admitted). */
  get holding(): boolean {
    return this.held;
  }

  /**
   * Resolves when an upload of `size` bytes may start; throws StorageError(DISK_FULL) while the
   * reserve is given up and the file system has no room for it, the upload and as much again.
   */
  async admit(size: number): Promise<void> {
    if (this.held) return;
    // A statfs per upload while the reserve is given up: cheap beside an upload, and room is
    // seen as soon as it is there, whoever freed it. Uploads arriving together share one.
    this.checking ??= this.freeSpace(this.options.dir)
      .catch(() => 0)
      .finally(() => {
        this.checking = undefined;
      });
    const free = await this.checking;
    if (free >= 2 * this.options.bytes + size) {
      this.arming ??= this.rearm(free).finally(() => {
        this.arming = undefined;
      });
      await this.arming;
      if (this.held) return;
    }
    throw new StorageError(
      StorageErrorCode.DISK_FULL,
      `the disk of ${this.options.dir} is full: uploads are refused until files are deleted`,
    );
  }

  /**
   * Called with every storage failure: one that says the disk is full gives up the reserve, so
   * what frees space (a delete) can commit. Other failures change nothing.
   */
  async failed(err: unknown): Promise<void> {
    if (!this.held || !isDiskFull(err)) return;
    this.held = false;
    await rm(this.path, { force: true }).catch(() => undefined);
    this.options.log.warn(
      { dir: this.options.dir, reserveBytes: this.options.bytes },
      'disk full: gave up the reserve so deletions can commit; uploads are refused until there is room',
    );
  }

  /**
   * Runs `work` that frees space (a delete): if it fails for want of room, the reserve is given
   * up and it runs once more, so deleting works on a disk filled to the last byte.
   */
  async freeing<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (!this.held || !isDiskFull(err)) throw err;
      await this.failed(err);
      return work();
    }
  }

  private async rearm(free: number): Promise<void> {
    await this.arm(free);
    if (this.held) {
      this.options.log.info(
        { dir: this.options.dir },
        'disk space reserve held again: uploads admitted',
      );
    }
  }

  /** Writes the reserve when the file system has room for it and as much again to spare. */
  private async arm(free: number): Promise<void> {
    if (free < 2 * this.options.bytes) return;
    const temp = `${this.path}.tmp`;
    try {
      const file = await open(temp, 'w', 0o600);
      try {
        // Written, not truncated to size: a sparse file would hold no space. Not synced: the
        // file system counts the blocks when they are written, and the zeros never matter.
        const zeros = Buffer.alloc(Math.min(WRITE_CHUNK, this.options.bytes));
        for (let done = 0; done < this.options.bytes;) {
          const n = Math.min(zeros.length, this.options.bytes - done);
          await file.write(zeros, 0, n, done);
          done += n;
        }
      } finally {
        await file.close();
      }
      await rename(temp, this.path);
      this.held = true;
    } catch (err) {
      await rm(temp, { force: true }).catch(() => undefined);
      if (!isDiskFull(err)) this.options.log.warn({ err }, 'could not write the space reserve');
    }
  }
}
