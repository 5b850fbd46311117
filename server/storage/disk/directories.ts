/**
 * Folders of the disk backend. A symlink (or a file) found where a folder of ours should be is
 * refused, never followed (lstat), so nothing planted in the data directory redirects a write.
 */
import { lstatSync, promises as fsp } from 'node:fs';
import { syncDirectory } from '../../../shared/atomic-file';
import { isErrno, isNotFound } from '../../../shared/errno';
import { escapeError, fsError } from './errors';

const DIR_MODE = 0o700;
const noop = (): void => undefined;

function refusePlanted(dir: string): never {
  throw escapeError(`${dir} is not a plain folder (symlink or file planted in the data dir)`);
}

/** Makes sure `dir` is a real folder, creating it when missing; true when it was created. */
export async function ensureOwnDirectory(dir: string): Promise<boolean> {
  let created = false;
  try {
    await fsp.mkdir(dir, { mode: DIR_MODE });
    created = true;
  } catch (err) {
    if (!isErrno(err, 'EEXIST')) throw fsError(`cannot create folder ${dir}`, err);
  }
  const stats = await fsp.lstat(dir).catch((err: unknown) => {
    throw fsError(`cannot inspect folder ${dir}`, err);
  });
  if (stats.isSymbolicLink() || !stats.isDirectory()) refusePlanted(dir);
  return created;
}

/**
 * Like ensureOwnDirectory, for a folder that may be absent: false when it is. Checked on every
 * upload (the temp folder, the client folder), so on this thread: an lstat of a folder in use
 * is answered from the kernel's cache in microseconds, less than handing it to the thread pool
 * and back costs both threads.
 */
export async function existingOwnDirectory(dir: string): Promise<boolean> {
  let stats;
  try {
    stats = lstatSync(dir, { throwIfNoEntry: false });
  } catch (err) {
    if (isNotFound(err)) return false;
    throw fsError(`cannot inspect folder ${dir}`, err);
  }
  if (stats === undefined) return false;
  if (stats.isSymbolicLink() || !stats.isDirectory()) refusePlanted(dir);
  return true;
}

export async function ensureRoot(root: string): Promise<void> {
  try {
    await fsp.mkdir(root, { recursive: true, mode: DIR_MODE });
  } catch (err) {
    throw fsError(`cannot create data directory ${root}`, err);
  }
}

export async function syncFolder(dir: string): Promise<void> {
  await syncDirectory(dir).catch((err: unknown) => {
    throw fsError(`cannot sync folder ${dir}`, err);
  });
}

/**
 * fsyncs one folder, coalescing callers: whoever asks while a sync runs shares the next one
 * (which starts after it, so it covers their changes). Many clients whose folders are created
 * at once then cost a few syncs of the data directory, not one each in a row.
 */
export class CoalescedDirectorySync {
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(private readonly dir: string) {}

  /** No sync running or waiting. */
  get idle(): boolean {
    return this.running === undefined && this.next === undefined;
  }

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

/**
 * A CoalescedDirectorySync per folder, kept while in use: uploads of one client that are
 * renamed into its folder close together share that folder's fsync instead of paying one each
 * in a row. A failed sync fails exactly the renames it was to cover.
 */
export class FolderSyncs {
  private readonly byFolder = new Map<string, CoalescedDirectorySync>();

  sync(dir: string): Promise<void> {
    let folder = this.byFolder.get(dir);
    if (folder === undefined) {
      folder = new CoalescedDirectorySync(dir);
      this.byFolder.set(dir, folder);
    }
    const synced = folder.sync();
    const forget = (): void => {
      if (folder.idle && this.byFolder.get(dir) === folder) this.byFolder.delete(dir);
    };
    synced.then(forget, forget);
    return synced;
  }
}
