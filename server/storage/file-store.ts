/**
 * Received files under the data directory (docs/protocol.md §7): `<data>/<client-id-hex>/<name>`.
 *
 * An upload goes to `<data>/.incoming/<client-id-hex>-<random>.part` (same file system as its
 * destination, so the final rename is atomic), created with O_EXCL | O_NOFOLLOW and mode 0600.
 * commit = fsync the file, rename it over the destination, fsync the folder: after a crash the
 * name holds either the old complete file or the new complete one, never a part.
 *
 * Containment, in depth (names are already checked upstream, §9): client ids must be 32 hex
 * characters and names plain base names, or PATH_ESCAPE; every resolved path is verified to
 * lie inside the data directory; and a symlink found where a folder of ours should be is never
 * followed (lstat, O_NOFOLLOW), so nothing planted in the data directory redirects a write.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { syncDirectory } from '../../shared/atomic-file';
import { errnoCode, isErrno, isNotFound } from '../../shared/errno';
import { fileNameProblem } from '../../shared/validators';
import { StorageError, StorageErrorCode, type FileStore, type UploadSink } from './types';

/** Folder of upload temp files, inside the data directory. */
export const INCOMING_DIR = '.incoming';
export const TEMP_SUFFIX = '.part';
const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
/** Longest name most file systems allow for one path component (bytes). */
const NAME_MAX_BYTES = 255;
const TEMP_RANDOM_BYTES = 12;
const CLIENT_ID_HEX = /^[0-9a-f]{32}$/;

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_RDONLY } = fsConstants;
const noop = (): void => undefined;

function escapeError(message: string): StorageError {
  return new StorageError(StorageErrorCode.PATH_ESCAPE, message);
}

function fsError(what: string, err: unknown): StorageError {
  if (err instanceof StorageError) return err;
  const detail = errnoCode(err) ?? (err instanceof Error ? err.message : String(err));
  return new StorageError(StorageErrorCode.FILESYSTEM, `${what} (${detail})`, { cause: err });
}

/** The canonical (lowercase) folder name of a client, or PATH_ESCAPE. */
export function checkClientIdHex(clientIdHex: string): string {
  const hex = clientIdHex.toLowerCase();
  if (!CLIENT_ID_HEX.test(hex)) {
    throw escapeError(`client id ${JSON.stringify(clientIdHex)} is not 32 hex characters`);
  }
  return hex;
}

/** A plain base name (§9), or PATH_ESCAPE. */
export function checkFileName(fileName: string): string {
  if (fileNameProblem(fileName) !== undefined || Buffer.byteLength(fileName) > NAME_MAX_BYTES) {
    throw escapeError(`file name ${JSON.stringify(fileName)} is not a plain base name`);
  }
  return fileName;
}

export function createFileStore(dataDir: string): FileStore {
  return new DiskFileStore(path.resolve(dataDir));
}

/**
 * fsyncs one folder, coalescing callers: whoever asks while a sync runs shares the next one
 * (which starts after it, so it covers their changes). 200 clients whose folders are created at
 * once then cost a few syncs of the data directory, not 200 in a row.
 */
class CoalescedDirectorySync {
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(private readonly dir: string) {}

  sync(): Promise<void> {
    if (this.running === undefined) {
      this.running = this.start();
      return this.running;
    }
    this.next ??= this.running.catch(noop).then(() => {
      this.next = undefined;
      this.running = this.start();
      return this.running;
    });
    return this.next;
  }

  private start(): Promise<void> {
    const done = syncDirectory(this.dir);
    const clear = (): void => {
      if (this.running === done) this.running = undefined;
    };
    done.then(clear, clear);
    return done;
  }
}

class DiskFileStore implements FileStore {
  private readonly incomingDir: string;
  private readonly rootSync: CoalescedDirectorySync;

  constructor(private readonly root: string) {
    this.incomingDir = path.join(root, INCOMING_DIR);
    this.rootSync = new CoalescedDirectorySync(root);
  }

  /** Joins below the data directory and verifies the result did not leave it. */
  private inside(...parts: string[]): string {
    const resolved = path.resolve(this.root, ...parts);
    if (!resolved.startsWith(this.root + path.sep)) {
      throw escapeError(`path ${JSON.stringify(parts.join('/'))} leaves the data directory`);
    }
    return resolved;
  }

  /**
   * Makes sure `dir` (directly inside the data directory) is a real folder, creating it when
   * missing; a symlink or a file there is refused, never followed.
   */
  private async ensureOwnDirectory(dir: string): Promise<boolean> {
    let created = false;
    try {
      await fsp.mkdir(dir, { mode: DIR_MODE });
      created = true;
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) {
        throw fsError(`cannot create folder ${dir}`, err);
      }
    }
    const stats = await fsp.lstat(dir).catch((err: unknown) => {
      throw fsError(`cannot inspect folder ${dir}`, err);
    });
    if (stats.isSymbolicLink() || !stats.isDirectory()) {
      throw escapeError(`${dir} is not a plain folder (symlink or file planted in the data dir)`);
    }
    return created;
  }

  /** Like ensureOwnDirectory, for a folder that may be absent: false when it is. */
  private async existingOwnDirectory(dir: string): Promise<boolean> {
    let stats;
    try {
      stats = await fsp.lstat(dir);
    } catch (err) {
      if (isNotFound(err)) return false;
      throw fsError(`cannot inspect folder ${dir}`, err);
    }
    if (stats.isSymbolicLink() || !stats.isDirectory()) {
      throw escapeError(`${dir} is not a plain folder (symlink or file planted in the data dir)`);
    }
    return true;
  }

  async beginUpload(clientIdHex: string, fileName: string): Promise<UploadSink> {
    const hex = checkClientIdHex(clientIdHex);
    const name = checkFileName(fileName);
    const clientDir = this.inside(hex);
    const destination = this.inside(hex, name);
    // Usually there already: one lstat instead of two mkdirs and an lstat per upload.
    if (!(await this.existingOwnDirectory(this.incomingDir))) {
      await this.ensureRoot();
      await this.ensureOwnDirectory(this.incomingDir);
    }
    const tempPath = this.inside(
      INCOMING_DIR,
      `${hex}-${randomBytes(TEMP_RANDOM_BYTES).toString('hex')}${TEMP_SUFFIX}`,
    );
    let handle: FileHandle;
    try {
      handle = await fsp.open(tempPath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, FILE_MODE);
    } catch (err) {
      throw fsError(`cannot create temp file in ${this.incomingDir}`, err);
    }
    return new DiskUploadSink(this, handle, tempPath, clientDir, destination, `${hex}/${name}`);
  }

  private async ensureRoot(): Promise<void> {
    try {
      await fsp.mkdir(this.root, { recursive: true, mode: DIR_MODE });
    } catch (err) {
      throw fsError(`cannot create data directory ${this.root}`, err);
    }
  }

  /** Used by a sink at commit: the client folder, refusing a planted symlink. */
  async prepareClientDirectory(clientDir: string): Promise<void> {
    if (await this.existingOwnDirectory(clientDir)) return;
    const created = await this.ensureOwnDirectory(clientDir);
    // The new folder's entry lives in the data directory: make it durable too.
    if (created) await this.rootSync.sync();
  }

  async remove(clientIdHex: string, fileName: string): Promise<void> {
    const hex = checkClientIdHex(clientIdHex);
    const name = checkFileName(fileName);
    const clientDir = this.inside(hex);
    const target = this.inside(hex, name);
    if (!(await this.existingOwnDirectory(clientDir))) return;
    try {
      // unlink removes a symlink itself, never what it points to.
      await fsp.unlink(target);
    } catch (err) {
      if (isNotFound(err)) return;
      throw fsError(`cannot remove ${hex}/${name}`, err);
    }
    await syncDirectory(clientDir).catch((err: unknown) => {
      throw fsError(`cannot sync folder ${clientDir}`, err);
    });
  }

  async removeClient(clientIdHex: string): Promise<void> {
    const hex = checkClientIdHex(clientIdHex);
    const clientDir = this.inside(hex);
    if (!(await this.existingOwnDirectory(clientDir))) return;
    try {
      // fs.rm does not follow symlinks found inside the folder; it unlinks them.
      await fsp.rm(clientDir, { recursive: true, force: true });
    } catch (err) {
      throw fsError(`cannot remove folder ${hex}`, err);
    }
  }

  async sweepTemp(): Promise<number> {
    try {
      if (!(await this.existingOwnDirectory(this.incomingDir))) return 0;
    } catch (err) {
      throw fsError(`cannot inspect ${this.incomingDir}`, err);
    }
    let names: string[];
    try {
      names = await fsp.readdir(this.incomingDir);
    } catch (err) {
      throw fsError(`cannot list ${this.incomingDir}`, err);
    }
    let removed = 0;
    for (const name of names) {
      if (!name.endsWith(TEMP_SUFFIX)) continue;
      try {
        await fsp.unlink(this.inside(INCOMING_DIR, name));
        removed += 1;
      } catch (err) {
        if (!isNotFound(err)) throw fsError(`cannot remove temp file ${name}`, err);
      }
    }
    return removed;
  }
}

type SinkState = 'open' | 'committing' | 'committed' | 'aborted';

/**
 * Opens the file at `destination` if there is one, never following a symlink and never
 * blocking on a FIFO someone planted; undefined when there is nothing (or nothing to hold).
 */
function openReplaced(destination: string): Promise<FileHandle | undefined> {
  return fsp.open(destination, O_RDONLY | O_NOFOLLOW | O_NONBLOCK).catch(() => undefined);
}

function closeReplaced(replaced: Promise<FileHandle | undefined>): Promise<void> {
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

class DiskUploadSink implements UploadSink {
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
  private committing: Promise<string> | undefined;

  constructor(
    private readonly store: DiskFileStore,
    private readonly handle: FileHandle,
    private readonly tempPath: string,
    private readonly clientDir: string,
    private readonly destination: string,
    private readonly relativePath: string,
  ) {}

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

  commit(): Promise<string> {
    if (this.state !== 'open') {
      return Promise.reject(
        new StorageError(
          StorageErrorCode.FILESYSTEM,
          `cannot commit upload to ${this.relativePath}: it is ${this.state}`,
        ),
      );
    }
    this.state = 'committing';
    this.committing = this.finishCommit();
    return this.committing;
  }

  private async finishCommit(): Promise<string> {
    // A file this one replaces is held open across the rename, so freeing its blocks happens
    // when it is closed after the answer, not inside the rename.
    let replaced: Promise<FileHandle | undefined> = Promise.resolve(undefined);
    try {
      await this.written();
      // The client folder is checked (or made) while the data goes to disk; a background sync
      // still running is not waited for first: the fsync covers its bytes too.
      const folder = this.store.prepareClientDirectory(this.clientDir);
      folder.catch(noop);
      replaced = openReplaced(this.destination);
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
      await syncDirectory(this.clientDir);
    } catch (err) {
      // The file is in place and complete; only the durability of its name is in doubt.
      throw fsError(`stored ${this.relativePath} but cannot sync its folder`, err);
    } finally {
      await closed;
      void closeReplaced(replaced);
    }
    return this.relativePath;
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
