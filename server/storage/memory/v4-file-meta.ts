/** V4FileMetaStore in memory, for `--database memory` and tests (nothing survives a restart). */
import type { V4FileMeta, V4FileMetaStore } from '../../session/v4/file-meta';

export function createMemoryFileMetaStore(): V4FileMetaStore {
  const records = new Map<string, V4FileMeta>();
  const key = (clientIdHex: string, fileName: string): string => `${clientIdHex}/${fileName}`;
  return {
    get: async (clientIdHex, fileName) => records.get(key(clientIdHex, fileName)),
    put: async (clientIdHex, fileName, meta) => {
      records.set(key(clientIdHex, fileName), { ...meta, sha256: Buffer.from(meta.sha256) });
    },
    remove: async (clientIdHex, fileName) => {
      records.delete(key(clientIdHex, fileName));
    },
  };
}
