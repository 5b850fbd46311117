/**
 * What `sft-client -r DIR` sends: the regular files below each directory argument, in a fixed
 * order (names sorted at every level), so runs and their summaries repeat. The client's own key
 * files (the caller's `exclude`) are never taken from a directory.
 */
import { readdir, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { errnoText } from '../../shared/errno';
import type { FileArgument } from '../config/transfer-info';
import { ClientErrorCode, clientError } from '../errors';

export interface ExpandOptions {
  /** Send the files below directory arguments (-r); without it a directory stays an error. */
  readonly recursive: boolean;
  /** Paths never taken from a directory (the client's secret files). */
  readonly exclude: readonly string[];
}

export interface ExpandedFiles {
  readonly files: readonly FileArgument[];
  /** Files left out because they are in `exclude`. */
  readonly skipped: readonly string[];
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    // Missing or unreadable: prepareUploads reports it with the file's own message.
    return false;
  }
}

/**
 * Regular files below `dir`, depth first, names sorted. Symbolic links are followed to files
 * but not to directories, so a link cannot make the walk go round in circles.
 */
async function filesBelow(dir: string, out: string[]): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw clientError(ClientErrorCode.FILE_UNREADABLE, `cannot list ${dir} (${errnoText(err)})`, {
      hint: 'check the directory permissions',
    });
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await filesBelow(path, out);
    else if (entry.isFile()) out.push(path);
    else if (entry.isSymbolicLink() && (await stat(path).catch(() => undefined))?.isFile()) {
      out.push(path);
    }
  }
}

/** Replaces each directory argument by the files below it (with `recursive`). */
export async function expandDirectories(
  files: readonly FileArgument[],
  options: ExpandOptions,
): Promise<ExpandedFiles> {
  if (!options.recursive) return { files, skipped: [] };
  const exclude = new Set(options.exclude.map((p) => resolve(p)));
  const expanded: FileArgument[] = [];
  const skipped: string[] = [];
  for (const file of files) {
    if (!(await isDirectory(file.path))) {
      expanded.push(file);
      continue;
    }
    const below: string[] = [];
    await filesBelow(file.path, below);
    const kept = below.filter((path) => !exclude.has(resolve(path)));
    skipped.push(...below.filter((path) => exclude.has(resolve(path))));
    if (kept.length === 0) {
      throw clientError(
        ClientErrorCode.FILE_UNREADABLE,
        `cannot send ${file.path}: there are no files below it`,
      );
    }
    const top = dirname(resolve(file.path));
    expanded.push(
      ...kept.map((path) => ({ path, name: relative(top, path).split(sep).join('/') })),
    );
  }
  return { files: expanded, skipped };
}
