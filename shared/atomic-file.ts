/**
 * Durable replacement of a file: after a crash the path holds the old content or the new one,
 * never a part. Used for the client's me.info / priv.key and by the server's disk store.
 *
 * The steps: a temp file in the same directory (so the rename cannot cross file systems),
 * created exclusively with the final mode; the data written and fsynced; the temp renamed over
 * the path; the directory fsynced so the rename itself survives a crash.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

const { O_WRONLY, O_CREAT, O_EXCL, O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = fsConstants;
const TEMP_RANDOM_BYTES = 6;

export interface AtomicWriteOptions {
  /** Permission bits of the new file, applied regardless of the umask. */
  readonly mode: number;
  /** Random bytes for the temp name; injectable for tests. */
  readonly random?: (size: number) => Buffer;
  /**
   * Fail when the directory cannot be fsynced. Off by default: not every file system lets a
   * directory be fsynced, and the data itself is already durable then.
   */
  readonly requireDirectorySync?: boolean;
  /**
   * Syncs the directory after the rename, in place of a sync of its own: a caller whose
   * replacements in one directory come close together may share one sync among them.
   */
  readonly syncDirectory?: (dir: string) => Promise<void>;
}

/**
 * fsyncs a directory so a rename, create or unlink in it survives a crash. By default a symlink
 * in place of the directory is refused, never followed: a server's own folders are never
 * links. `followSymlink` is for directories a user names, which may well be links.
 */
export async function syncDirectory(
  dir: string,
  options: { followSymlink?: boolean } = {},
): Promise<void> {
  const flags = O_RDONLY | O_DIRECTORY | (options.followSymlink ? 0 : O_NOFOLLOW);
  const handle = await open(dir, flags);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The temp path writeFileAtomic uses for `path`: hidden, in the same directory. */
export function atomicTempPath(path: string, random: (size: number) => Buffer = randomBytes) {
  const tag = random(TEMP_RANDOM_BYTES).toString('hex');
  return join(dirname(path), `.${basename(path)}.${process.pid}.${tag}.tmp`);
}

/**
 * Writes `data` to `path` atomically and durably (see above). Errors are the file system's own
 * (with their errno code); the temp file is removed on failure.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions,
): Promise<void> {
  const tmp = atomicTempPath(path, options.random);
  // Opened apart from the rest: a name that exists already is not ours to remove.
  const fh = await open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, options.mode);
  try {
    try {
      // A mode given at creation is narrowed by the umask: set it explicitly.
      await fh.chmod(options.mode);
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  try {
    if (options.syncDirectory !== undefined) await options.syncDirectory(dirname(path));
    else await syncDirectory(dirname(path), { followSymlink: true });
  } catch (err) {
    if (options.requireDirectorySync) throw err;
  }
}
