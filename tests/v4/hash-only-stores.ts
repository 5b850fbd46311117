/**
 * Stores for tests that keep only the SHA-256 and the length of what they receive, so a file of
 * several GiB crosses the whole server without needing that much disk or memory: a FileStore
 * whose uploads publish a digest, and a PartialStore that cannot resume (every upload starts at
 * offset 0).
 */
import { createHash } from 'node:crypto';
import type { PartialStore, PartialUpload } from '../../server/session/v4/context';
import type { FileStore, UploadSink } from '../../server/storage/types';

export interface Digest {
  readonly sha256: string;
  readonly bytes: number;
}

export interface HashOnlyFiles extends FileStore {
  /** `<client hex>/<file name>` → digest of the bytes committed. */
  readonly committed: Map<string, Digest>;
}

export function createHashOnlyFiles(): HashOnlyFiles {
  const committed = new Map<string, Digest>();
  return {
    committed,
    async beginUpload(clientIdHex, fileName): Promise<UploadSink> {
      const hash = createHash('sha256');
      let bytes = 0;
      const key = `${clientIdHex}/${fileName}`;
      return {
        async write(data) {
          hash.update(data);
          bytes += data.length;
        },
        async commit() {
          committed.set(key, { sha256: hash.digest('hex'), bytes });
          // No versions here: taking a publish back removes it.
          return { objectKey: key, unpublish: async () => void committed.delete(key) };
        },
        async abort() {},
      };
    },
    async remove(clientIdHex, fileName) {
      committed.delete(`${clientIdHex}/${fileName}`);
    },
    async removeClient(clientIdHex) {
      for (const key of committed.keys()) {
        if (key.startsWith(`${clientIdHex}/`)) committed.delete(key);
      }
    },
  };
}

export function createNullPartials(): PartialStore {
  return {
    async open(): Promise<PartialUpload> {
      let bytes = 0;
      return {
        offset: 0,
        // eslint-disable-next-line require-yield
        async *contents() {
          return;
        },
        async write(data) {
          bytes += data.length;
        },
        async checkpoint() {
          return bytes;
        },
        async close() {},
        async remove() {},
      };
    },
    async sweep() {
      return 0;
    },
  };
}
