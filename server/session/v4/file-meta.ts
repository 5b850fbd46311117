/**
 * What version 4 knows of a stored file beyond size and cksum (docs/protocol-v4.md §7): the
 * SHA-256 the upload was verified with and its flags (end-to-end encrypted, sent deflated).
 * A v4 upload writes them into its catalog row, in the row's commit. The records of a
 * V4FileMetaStore hold the rest: SHA-256s computed for files stored over v3, and what servers
 * before the row columns recorded. A record is tied to the row by its size and time: a file
 * replaced since (by a v3 upload, say) no longer matches, and its SHA-256 is computed again
 * when it is downloaded.
 */
import type { ByteStore, FileRecord } from '../../storage/types';

export interface V4FileMeta {
  readonly size: number;
  /** The catalog row's `updatedAt` when this was recorded. */
  readonly updatedAt: number;
  readonly sha256: Buffer;
  /** FileFlag bits (E2E, COMPRESSED); VERIFIED comes from the row. */
  readonly flags: number;
}

/** Backends: storage/disk/v4-file-meta.ts, storage/memory/v4-file-meta.ts. */
export interface V4FileMetaStore {
  get(clientIdHex: string, fileName: string): Promise<V4FileMeta | undefined>;
  put(clientIdHex: string, fileName: string, meta: V4FileMeta): Promise<void>;
  /** No error when there is none. */
  remove(clientIdHex: string, fileName: string): Promise<void>;
}

/** What `file`'s row says, else a record of `records` that still describes it. */
export async function metaOfFile(
  file: FileRecord,
  records: V4FileMetaStore | undefined,
): Promise<V4FileMeta | undefined> {
  if (file.v4 !== undefined) {
    const { sha256, flags } = file.v4;
    return { size: file.size, updatedAt: file.updatedAt, sha256, flags };
  }
  return currentMeta(await records?.get(file.clientId.toString('hex'), file.fileName), file);
}

/** The record if it still describes `file`, else undefined. */
export function currentMeta(
  meta: V4FileMeta | undefined,
  file: FileRecord,
): V4FileMeta | undefined {
  return meta !== undefined && meta.size === file.size && meta.updatedAt === file.updatedAt
    ? meta
    : undefined;
}

/** What the file messages need besides the session context (wired in transport/tls-setup.ts). */
export interface V4FileAccess {
  /** The bytes of live files, read for downloads. */
  readonly bytes: ByteStore;
  readonly meta: V4FileMetaStore;
}
