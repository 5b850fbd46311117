/**
 * The disk ObjectWriter: an upload goes to a temp file in `.incoming` (same file system as its
 * destination, so the final rename is atomic). commit = fsync the file, rename it over the
 * destination, fsync the folder: after a crash the key holds either the old complete object or
 * the new complete one, never a part.
 */
import { promises as fsp, constants as fsConstants } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { isNotFound } from '../../../shared/errno';
import { StorageError, StorageErrorCode, type CommitHint, type ObjectWriter } from '../types';
import { fsError } from './errors';

const { O_NOFOLLOW, O_NONBLOCK, O_RDONLY } = fsConstants;
const noop = (): void => undefined;

/** Where a writer publishes, and how to make the folders on the way. */
export interface WriterTarget {
  /** The key, for messages. */
  readonly key: string;
  readonly tempPath: string;
  readonly destination: string;
  /** fsyncs the folder holding `destination` (shared with renames into it close in time). */
  readonly syncFolder: () => Promise<void>;
  /** Makes the folders down to `folder` (refusing planted symlinks), durable. */
  readonly prepareFolders: () => Promise<void>;
}

type SinkState = 'open' | 'committing' | 'committed' | 'aborted';

const NOTHING_REPLACED: Promise<FileHandle | undefined> = Promise.resolve(undefined);

/**
 * Opens the file at `destination` if there is one, never following a symlink and never
 * blocking on a FIFO someone planted; undefined when there is nothing (or nothing to hold).
 * Not even tried when the catalog says there is no live file: for a new name that open only
 * fails, one trip to the thread pool per upload for nothing.
 */
export function openReplaced(
  destination: string,
  hint: CommitHint = {},
): Promise<FileHandle | undefined> {
  if (hint.replacesNothing === true) return NOTHING_REPLACED;
  return fsp.open(destination, O_RDONLY | O_NOFOLLOW | O_NONBLOCK).catch(() => undefined);
}

export function closeReplaced(replaced: Promise<FileHandle | undefined>): Promise<void> {
  return replaced.then((handle) => handle?.close()).catch(noop);
}

/**
 * Written bytes after which the sink asks the OS to put them on disk in the background, so the
 * fsync at commit (on the way to the client's 1603) has only the tail left to flush, not the whole file.
 */
const BACKGROUND_SYNC_BYTES = 8 * 1024 * 1024;

interface Group {
  readonly buffers: Buffer[];
  readonly promise: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

function newGroup(): Group {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { buffers: [], promise, resolve, reject };
}

export class DiskObjectWriter implements ObjectWriter {
  private state: SinkState = 'open';
  /** Offset of the next group's first byte. */
  private position = 0;
  /**
   * Buffers handed in during one tick, or while a write runs, go out together in ONE writev:
   * each write wakes a thread-pool worker that competes with the event loop for a core.
   */
  private waiting: Group | undefined;
  private startQueued = false;
  private running: Promise<void> | undefined;
  private unsyncedBytes = 0;
  private syncing: Promise<void> | undefined;
  /** First write or background-sync failure: the upload cannot be committed. */
  private failure: unknown;
  private handleClosed = false;
  private committing: Promise<void> | undefined;
  private readonly tempPath: string;
  private readonly destination: string;
  private readonly relativePath: string;

  constructor(
    private readonly handle: FileHandle,
    private readonly target: WriterTarget,
  ) {
    this.tempPath = target.tempPath;
    this.destination = target.destination;
    this.relativePath = target.key;
  }

  write(data: Buffer): Promise<void> {
    if (this.state !== 'open') {
      return Promise.reject(
        new StorageError(
          StorageErrorCode.FILESYSTEM,
          `upload to ${this.relativePath} is ${this.state}`,
        ),
      );
    }
    const group = (this.waiting ??= newGroup());
    group.buffers.push(data);
    if (this.running === undefined && !this.startQueued) {
      // Writes handed in during this tick go out together.
      this.startQueued = true;
      queueMicrotask(() => {
        this.startQueued = false;
        if (this.running === undefined && this.waiting !== undefined) this.startGroup();
      });
    }
    return group.promise;
  }

  /** Writes the waiting group at its offset; when done, starts the next one if any. */
  private startGroup(): void {
    const group = this.waiting as Group;
    this.waiting = undefined;
    const offset = this.position;
    let bytes = 0;
    for (const buffer of group.buffers) bytes += buffer.length;
    this.position += bytes;
    this.running = this.writeAll(group.buffers, offset).then(
      () => {
        group.resolve();
        this.afterGroup(bytes);
      },
      (err: unknown) => {
        this.failure ??= err;
        group.reject(err);
        this.afterGroup(0);
      },
    );
  }

  private afterGroup(bytes: number): void {
    this.running = undefined;
    this.unsyncedBytes += bytes;
    if (this.unsyncedBytes >= BACKGROUND_SYNC_BYTES && this.syncing === undefined) {
      this.unsyncedBytes = 0;
      this.syncing = this.handle.datasync().then(
        () => (this.syncing = undefined),
        (err: unknown) => {
          // Reported once by the OS: remember it, or the fsync at commit might pass.
          this.failure ??= fsError(`cannot write upload to ${this.relativePath}`, err);
          this.syncing = undefined;
        },
      );
    }
    if (this.waiting !== undefined) this.startGroup();
  }

  private async writeAll(buffers: Buffer[], offset: number): Promise<void> {
    let pending = buffers;
    let at = offset;
    try {
      // The OS may take fewer bytes than asked (full disk, signals): write the rest.
      while (pending.length > 0) {
        const { bytesWritten } = await this.handle.writev(pending, at);
        if (bytesWritten === 0) throw new Error('write returned 0 bytes');
        at += bytesWritten;
        let skip = bytesWritten;
        let i = 0;
        while (i < pending.length && skip >= pending[i].length) skip -= pending[i++].length;
        pending = pending.slice(i);
        if (skip > 0) pending[0] = pending[0].subarray(skip);
      }
    } catch (err) {
      throw fsError(`cannot write upload to ${this.relativePath}`, err);
    }
  }

  /** Resolves when no write is running or waiting; never rejects. */
  private async written(): Promise<void> {
    if (this.running === undefined && this.waiting !== undefined) this.startGroup();
    while (this.running !== undefined) await this.running;
  }

  /** Resolves when no write or background sync is running or waiting; never rejects. */
  private async settled(): Promise<void> {
    if (this.running === undefined && this.waiting !== undefined) this.startGroup();
    while (this.running !== undefined || this.syncing !== undefined) {
      await this.running;
      await this.syncing;
    }
  }

  private async closeHandle(): Promise<void> {
    if (this.handleClosed) return;
    this.handleClosed = true;
    await this.handle.close();
  }

  commit(hint: CommitHint = {}): Promise<void> {
    if (this.state !== 'open') {
      return Promise.reject(
        new StorageError(
          StorageErrorCode.FILESYSTEM,
          `cannot commit upload to ${this.relativePath}: it is ${this.state}`,
        ),
      );
    }
    this.state = 'committing';
    this.committing = this.finishCommit(hint);
    return this.committing;
  }

  private async finishCommit(hint: CommitHint): Promise<void> {
    // A file this one replaces is held open across the rename, so freeing its blocks happens
    // when it is closed after the answer, not inside the rename.
    let replaced: Promise<FileHandle | undefined> = Promise.resolve(undefined);
    try {
      await this.written();
      // The client folder is checked (or made) while the data goes to disk; a background sync
      // still running is not waited for first: the fsync covers its bytes too.
      const folder = this.target.prepareFolders();
      folder.catch(noop);
      replaced = openReplaced(this.destination, hint);
      await Promise.all([this.handle.sync(), this.syncing]);
      // After the background sync's outcome is known: the OS reports a write error once.
      if (this.failure !== undefined) throw this.failure;
      await folder;
      await replaced;
      await fsp.rename(this.tempPath, this.destination);
    } catch (err) {
      this.state = 'aborted';
      void closeReplaced(replaced);
      await this.discard().catch(noop);
      throw fsError(`cannot store ${this.relativePath}`, err);
    }
    this.state = 'committed';
    // The data is on disk and named: closing is not on the way to the answer.
    const closed = this.closeHandle().catch(noop);
    try {
      await this.target.syncFolder();
    } catch (err) {
      // The file is in place and complete; only the durability of its name is in doubt.
      throw fsError(`stored ${this.relativePath} but cannot sync its folder`, err);
    } finally {
      await closed;
      void closeReplaced(replaced);
    }
  }

  async abort(): Promise<void> {
    if (this.state === 'committing') {
      // A rename in progress cannot be taken back safely (it may have replaced an older file):
      // let it finish; the caller decides what a committed file means for it.
      await this.committing?.catch(() => undefined);
      return;
    }
    if (this.state === 'committed' || this.state === 'aborted') return;
    this.state = 'aborted';
    await this.discard();
  }

  private async discard(): Promise<void> {
    await this.settled();
    await this.closeHandle().catch(() => undefined);
    try {
      await fsp.unlink(this.tempPath);
    } catch (err) {
      if (!isNotFound(err)) throw fsError(`cannot remove temp file of ${this.relativePath}`, err);
    }
  }
}
