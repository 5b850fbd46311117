/**
 * A PartialStore for tests that keeps only the SHA-256 and the length of what it receives, so
 * a file of several GiB crosses the whole server without needing that much disk. It cannot
 * resume (every upload starts at offset 0) and publishes no bytes.
 */
import { createHash, type Hash } from 'node:crypto';
import type { PartialStore, PartialUpload } from '../../server/session/v4/context';

export interface HashOnlyPartials extends PartialStore {
  /** `<client hex>/<file name>` → SHA-256 hex and length of the bytes published. */
  readonly published: Map<string, { readonly sha256: string; readonly bytes: number }>;
}

export function createHashOnlyPartials(): HashOnlyPartials {
  const published = new Map<string, { sha256: string; bytes: number }>();
  return {
    published,
    async open(key): Promise<PartialUpload> {
      let hash: Hash = createHash('sha256');
      let bytes = 0;
      return {
        offset: 0,
        // eslint-disable-next-line require-yield
        async *contents() {
          return;
        },
        async write(data) {
          hash.update(data);
          bytes += data.length;
        },
        async checkpoint() {
          return bytes;
        },
        async close() {},
        async publish() {
          published.set(`${key.clientIdHex}/${key.fileName}`, {
            sha256: hash.digest('hex'),
            bytes,
          });
          hash = createHash('sha256');
        },
        async remove() {},
      };
    },
    async sweep() {
      return 0;
    },
  };
}
