/**
 * The folders of version 4's records on disk (partials, file records): checked on this thread
 * while they exist (directories.ts), and a folder made here is synced into its parent, so what
 * is written into it survives a crash with it.
 */
import { promises as fsp } from 'node:fs';
import { syncDirectory } from '../../../shared/atomic-file';
import { ensureOwnDirectory, existingOwnDirectory } from './directories';
import { fsError } from './errors';

const DIR_MODE = 0o700;

/**
 * Makes sure `dir`, in `parent`, is a plain folder (a planted symlink is refused). The data
 * directory is the operator's and may be a symlink; it is made when missing.
 */
export async function ensureRecordFolder(
  dir: string,
  parent: string,
  parentIsDataDir: boolean,
): Promise<void> {
  if (await existingOwnDirectory(dir)) return;
  if (parentIsDataDir) {
    await fsp.mkdir(parent, { recursive: true, mode: DIR_MODE }).catch((err: unknown) => {
      throw fsError(`cannot create ${parent}`, err);
    });
  }
  if (await ensureOwnDirectory(dir)) {
    await syncDirectory(parent, { followSymlink: parentIsDataDir }).catch((err: unknown) => {
      throw fsError(`cannot sync ${parent}`, err);
    });
  }
}
