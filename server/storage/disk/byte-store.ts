/**
 * The disk ByteStore: objects are files under the data directory, at the path their key names
 * (../object-keys.ts): live files at `<data>/<client-id-hex>/<name>` (docs/protocol.md §7),
 * kept versions at `<data>/.versions/<client-id-hex>/<name>/<n>`. Writes go through temp files
 * in `<data>/.incoming` (object-writer.ts); copies are hard links published by rename, so a
 * version costs no bytes until the live file is replaced.
 *
 * Containment, in depth (names are already checked upstream, §9): keys must match the grammar
 * of object-keys.ts or PATH_ESCAPE; every resolved path is verified to lie inside the data
 * directory; and no symlink where a folder of ours should be is ever followed (lstat,
 * O_NOFOLLOW), so nothing planted in the data directory redirects a write or a read.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, createReadStream, lstatSync, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { isNotFound } from '../../../shared/errno';
import { parseKey, parsePrefix } from '../object-keys';
import type { ByteStore, CommitHint, ObjectWriter } from '../types';
import {
  CoalescedDirectorySync,
  ensureOwnDirectory,
  ensureRoot,
  existingOwnDirectory,
  FolderSyncs,
  syncFolder,
} from './directories';
import { escapeError, fsError } from './errors';
import { closeReplaced, DiskObjectWriter, openReplaced } from './object-writer';

/** Folder of upload temp files, inside the data directory. */
export const INCOMING_DIR = '.incoming';
export const TEMP_SUFFIX = '.part';
const FILE_MODE = 0o600;
const TEMP_RANDOM_BYTES = 12;

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY } = fsConstants;

export interface DiskByteStoreOptions {
  /** Random bytes for temp file names (injected in tests). */
  readonly random?: (size: number) => Buffer;
}

/** Where a key lives on disk. */
interface Location {
  readonly clientIdHex: string;
  readonly file: string;
  /** The folders from the data directory down to the one holding `file`. */
  readonly folders: readonly string[];
}

export function createDiskByteStore(
  dataDir: string,
  options: DiskByteStoreOptions = {},
): ByteStore {
  return new DiskByteStore(path.resolve(dataDir), options.random ?? randomBytes);
}

/**
 * True when a regular file is at `file`, false when nothing is; a symlink or anything else is
 * refused. On this thread, as the folder checks (directories.ts): an lstat, no file opened.
 */
function isPlainFile(file: string, key: string): boolean {
  let stats;
  try {
    stats = lstatSync(file, { throwIfNoEntry: false });
  } catch (err) {
    if (isNotFound(err)) return false;
    throw fsError(`cannot inspect ${key}`, err);
  }
  if (stats === undefined) return false;
  if (stats.isSymbolicLink()) throw escapeError(`${key} is a symlink, not a stored file`);
  if (!stats.isFile()) throw escapeError(`${key} is not a plain file`);
  return true;
}

class DiskByteStore implements ByteStore {
  private readonly incomingDir: string;
  private readonly rootSync: CoalescedDirectorySync;
  private readonly folderSyncs = new FolderSyncs();

  constructor(
    private readonly root: string,
    private readonly random: (size: number) => Buffer,
  ) {
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

  private locate(key: string): Location {
    const parsed = parseKey(key);
    const segments = key.split('/');
    const folders: string[] = [];
    for (let depth = 1; depth < segments.length; depth += 1) {
      folders.push(this.inside(...segments.slice(0, depth)));
    }
    return { clientIdHex: parsed.clientIdHex, file: this.inside(...segments), folders };
  }

  /** Makes every folder of `folders` (outermost first); a new one's entry is made durable. */
  private async prepareFolders(folders: readonly string[]): Promise<void> {
    for (const dir of folders) {
      if (await existingOwnDirectory(dir)) continue;
      if (!(await ensureOwnDirectory(dir))) continue;
      const parent = path.dirname(dir);
      if (parent === this.root) await this.rootSync.sync();
      else await syncFolder(parent);
    }
  }

  /** True when every folder exists (and none is a planted symlink). */
  private async foldersExist(folders: readonly string[]): Promise<boolean> {
    for (const dir of folders) if (!(await existingOwnDirectory(dir))) return false;
    return true;
  }

  /** Creates a temp file in `.incoming` for an object of client `hex`. */
  private async openTemp(hex: string): Promise<{ handle: FileHandle; tempPath: string }> {
    // Usually there already: one lstat instead of two mkdirs and an lstat per upload.
    if (!(await existingOwnDirectory(this.incomingDir))) {
      await ensureRoot(this.root);
      await ensureOwnDirectory(this.incomingDir);
    }
    const random = this.random(TEMP_RANDOM_BYTES).toString('hex');
    const tempPath = this.inside(INCOMING_DIR, `${hex}-${random}${TEMP_SUFFIX}`);
    try {
      const flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;
      return { handle: await fsp.open(tempPath, flags, FILE_MODE), tempPath };
    } catch (err) {
      throw fsError(`cannot create temp file in ${this.incomingDir}`, err);
    }
  }

  async begin(key: string): Promise<ObjectWriter> {
    const where = this.locate(key);
    const { handle, tempPath } = await this.openTemp(where.clientIdHex);
    return new DiskObjectWriter(handle, {
      key,
      tempPath,
      destination: where.file,
      syncFolder: () => this.folderSyncs.sync(path.dirname(where.file)),
      prepareFolders: () => this.prepareFolders(where.folders),
    });
  }

  /**
   * Moves a finished file of the server's (a v4 partial upload) into place as `key`: the same
   * steps as a writer's commit (fsync of the file, rename over the destination, fsync of its
   * folder), without writing the bytes a second time. The source must be a plain file inside
   * the data directory, so the rename stays on one file system and cannot be pointed elsewhere.
   */
  async adopt(key: string, source: string, hint: CommitHint = {}): Promise<void> {
    const where = this.locate(key);
    const from = path.resolve(source);
    if (!from.startsWith(this.root + path.sep)) {
      throw escapeError(`${source} is outside the data directory`);
    }
    const folders = this.prepareFolders(where.folders);
    folders.catch(() => undefined);
    let handle: FileHandle;
    try {
      handle = await fsp.open(from, O_RDONLY | O_NOFOLLOW);
    } catch (err) {
      throw fsError(`cannot open ${source}`, err);
    }
    try {
      if (!(await handle.stat()).isFile()) throw escapeError(`${source} is not a plain file`);
      await handle.sync();
    } catch (err) {
      throw fsError(`cannot sync ${source}`, err);
    } finally {
      await handle.close().catch(() => undefined);
    }
    await folders;
    // Held open across the rename, as a writer's commit does: the replaced file's blocks are
    // freed after the answer, not inside the rename.
    const replaced = openReplaced(where.file, hint);
    try {
      await replaced;
      await fsp.rename(from, where.file);
    } catch (err) {
      void closeReplaced(replaced);
      throw fsError(`cannot store ${key}`, err);
    }
    try {
      await this.folderSyncs.sync(path.dirname(where.file));
    } catch (err) {
      throw fsError(`stored ${key} but cannot sync its folder`, err);
    } finally {
      void closeReplaced(replaced);
    }
  }

  /** The regular file at `file`, opened without following a symlink; undefined if none. */
  private async openPlain(file: string, key: string): Promise<FileHandle | undefined> {
    let handle: FileHandle;
    try {
      handle = await fsp.open(file, O_RDONLY | O_NOFOLLOW);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      if ((err as NodeJS.ErrnoException).code === 'ELOOP') {
        throw escapeError(`${key} is a symlink, not a stored file`);
      }
      throw fsError(`cannot open ${key}`, err);
    }
    const stats = await handle.stat();
    if (!stats.isFile()) {
      await handle.close();
      throw escapeError(`${key} is not a plain file`);
    }
    return handle;
  }

  async read(key: string): Promise<NodeJS.ReadableStream | undefined> {
    const where = this.locate(key);
    if (!(await this.foldersExist(where.folders))) return undefined;
    const handle = await this.openPlain(where.file, key);
    return handle === undefined ? undefined : createReadStream('', { fd: handle });
  }

  async copy(from: string, to: string): Promise<boolean> {
    const source = this.locate(from);
    const target = this.locate(to);
    if (!(await this.foldersExist(source.folders))) return false;
    if (!isPlainFile(source.file, from)) return false;
    await this.prepareFolders(target.folders);
    if (!(await existingOwnDirectory(this.incomingDir))) {
      await ensureOwnDirectory(this.incomingDir);
    }
    const random = this.random(TEMP_RANDOM_BYTES).toString('hex');
    const tempPath = this.inside(INCOMING_DIR, `${target.clientIdHex}-${random}${TEMP_SUFFIX}`);
    try {
      // A hard link: the bytes are shared until the source is replaced (never changed in place).
      await fsp.link(source.file, tempPath);
    } catch (err) {
      if (isNotFound(err)) return false;
      throw fsError(`cannot copy ${from}`, err);
    }
    try {
      await fsp.rename(tempPath, target.file);
    } catch (err) {
      await fsp.unlink(tempPath).catch(() => undefined);
      throw fsError(`cannot copy ${from} to ${to}`, err);
    }
    await syncFolder(path.dirname(target.file));
    return true;
  }

  async remove(key: string): Promise<void> {
    const where = this.locate(key);
    if (!(await this.foldersExist(where.folders))) return;
    try {
      // unlink removes a symlink itself, never what it points to.
      await fsp.unlink(where.file);
    } catch (err) {
      if (isNotFound(err)) return;
      throw fsError(`cannot remove ${key}`, err);
    }
    await syncFolder(path.dirname(where.file));
  }

  async removePrefix(prefix: string): Promise<void> {
    const segments = parsePrefix(prefix);
    const folders: string[] = [];
    for (let depth = 1; depth <= segments.length; depth += 1) {
      folders.push(this.inside(...segments.slice(0, depth)));
    }
    if (!(await this.foldersExist(folders))) return;
    try {
      // fs.rm does not follow symlinks found inside the folder; it unlinks them.
      await fsp.rm(folders[folders.length - 1] as string, { recursive: true, force: true });
    } catch (err) {
      throw fsError(`cannot remove ${prefix}`, err);
    }
  }

  async sweepIncomplete(): Promise<number> {
    if (!(await existingOwnDirectory(this.incomingDir))) return 0;
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
