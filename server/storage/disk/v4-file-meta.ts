/**
 * V4FileMetaStore on disk (docs/protocol-v4.md §7): one small JSON file per stored file,
 * `<data-dir>/.meta-v4/<client id hex>/<sha256 hex of the file name>.json`, replaced
 * atomically, mode 0600 in 0700 folders. File names never become paths (their SHA-256 does).
 * Records of one client written close together (uploads on parallel connections) share the
 * sync of their folder.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../../shared/atomic-file';
import { isNotFound } from '../../../shared/errno';
import type { V4FileMeta, V4FileMetaStore } from '../../session/v4/file-meta';
import { checkClientIdHex } from '../object-keys';
import { FolderSyncs } from './directories';
import { fsError } from './errors';
import { ensureRecordFolder } from './v4-folders';

export const FILE_META_DIR = '.meta-v4';
const FILE_MODE = 0o600;

interface Stored {
  readonly size: number;
  readonly updatedAt: number;
  readonly sha256: string;
  readonly flags: number;
}

function parse(text: string): V4FileMeta | undefined {
  const stored = JSON.parse(text) as Partial<Stored>;
  if (
    typeof stored.size !== 'number' ||
    typeof stored.updatedAt !== 'number' ||
    typeof stored.flags !== 'number' ||
    typeof stored.sha256 !== 'string' ||
    !/^[0-9a-f]{64}$/.test(stored.sha256)
  ) {
    return undefined;
  }
  const { size, updatedAt, flags } = stored;
  return { size, updatedAt, flags, sha256: Buffer.from(stored.sha256, 'hex') };
}

export function createDiskFileMetaStore(dataDir: string): V4FileMetaStore {
  const root = join(dataDir, FILE_META_DIR);
  const folderSyncs = new FolderSyncs();
  const folder = (clientIdHex: string): string => join(root, checkClientIdHex(clientIdHex));
  const path = (clientIdHex: string, fileName: string): string =>
    join(
      folder(clientIdHex),
      `${createHash('sha256').update(fileName, 'utf8').digest('hex')}.json`,
    );
  return {
    async get(clientIdHex, fileName) {
      try {
        return parse(await fsp.readFile(path(clientIdHex, fileName), 'utf8'));
      } catch (err) {
        // A record that is gone or torn is only a cache miss: the SHA-256 is computed anew.
        if (isNotFound(err) || err instanceof SyntaxError) return undefined;
        throw fsError('cannot read a file record', err);
      }
    },
    async put(clientIdHex, fileName, meta) {
      const stored: Stored = {
        size: meta.size,
        updatedAt: meta.updatedAt,
        sha256: meta.sha256.toString('hex'),
        flags: meta.flags,
      };
      try {
        await ensureRecordFolder(root, dataDir, true);
        await ensureRecordFolder(folder(clientIdHex), root, false);
        await writeFileAtomic(path(clientIdHex, fileName), JSON.stringify(stored), {
          mode: FILE_MODE,
          syncDirectory: (dir) => folderSyncs.sync(dir),
        });
      } catch (err) {
        throw fsError('cannot write a file record', err);
      }
    },
    async remove(clientIdHex, fileName) {
      try {
        await fsp.unlink(path(clientIdHex, fileName));
      } catch (err) {
        if (!isNotFound(err)) throw fsError('cannot remove a file record', err);
      }
    },
  };
}
