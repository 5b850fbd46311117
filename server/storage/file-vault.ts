/**
 * The files of clients as sessions and the admin command use them, over any FileCatalog and
 * ByteStore: live files under `<client-id-hex>/<name>`, and kept versions (docs/protocol.md
 * §9: an upload never destroys a verified file).
 *
 * Replacing a verified file keeps it: before the new bytes are published, the live object is
 * copied to a version key and the catalog records the version (pruning the oldest beyond
 * `keepVersions`). Bytes first, then the row: a crash in between leaves an unlisted copy, never
 * a version row without bytes. An upload that fails before its commit (bad padding, a size
 * mismatch) changes nothing; one given up after it (1031) leaves the previous verified content
 * as a version, restorable with `restore`.
 *
 * An upload whose row cannot be written after its publish is taken back with `unpublish`: the
 * old row is still the live one, so the live key gets back the verified bytes it names, copied
 * from the version just kept (the version stays listed). With nothing kept (a new name, a failed
 * or unverified file) the published bytes are removed. If the copy back fails they are removed
 * too, and the version is what `restore` brings back.
 *
 * Callers serialize changes to one file name (the session's per-file lock); the catalog's
 * primary key refuses a version number taken twice should that ever fail.
 */
import { clientPrefixes, liveKey, versionKey } from './object-keys';
import {
  StorageError,
  StorageErrorCode,
  type ArchiveAs,
  type AuditEntry,
  type ByteStore,
  type CommitHint,
  type FileCatalog,
  type FileStore,
  type FileVersion,
  type Published,
  type UploadSink,
} from './types';

/** Verified versions kept per file name unless configured (`--keep-versions`). */
export const DEFAULT_KEEP_VERSIONS = 3;

export interface FileVaultOptions {
  readonly bytes: ByteStore;
  readonly catalog: FileCatalog;
  /** Versions kept per file name; 0 keeps none (a replaced file is then gone). */
  readonly keepVersions: number;
  /** Milliseconds since the epoch (injected). */
  readonly now: () => number;
}

export interface RestoreOptions {
  /** The version to bring back; default the newest. */
  readonly version?: number;
  /** The audit row of the restore, committed with it. */
  readonly audit?: AuditEntry;
}

export interface RestoreResult {
  readonly restored: FileVersion;
  /** What the live file became, if there was one to keep. */
  readonly archived: FileVersion | undefined;
}

const noop = (): void => undefined;

/** What `keepCurrent` learnt and did before a publish. */
interface Kept {
  readonly hint: CommitHint;
  /** Where the replaced verified file was kept, if it was. */
  readonly versionKey?: string;
}

function notFound(message: string): StorageError {
  return new StorageError(StorageErrorCode.NOT_FOUND, message);
}

function nextVersion(versions: readonly FileVersion[]): number {
  return versions.reduce((max, kept) => Math.max(max, kept.version), 0) + 1;
}

export class FileVault implements FileStore {
  private readonly bytes: ByteStore;
  private readonly catalog: FileCatalog;
  readonly keepVersions: number;
  private readonly now: () => number;
  readonly adoptUpload?: (
    clientIdHex: string,
    fileName: string,
    path: string,
  ) => Promise<Published>;

  constructor(options: FileVaultOptions) {
    if (!Number.isSafeInteger(options.keepVersions) || options.keepVersions < 0) {
      throw new RangeError(`keepVersions must be a whole number >= 0, got ${options.keepVersions}`);
    }
    this.bytes = options.bytes;
    this.catalog = options.catalog;
    this.keepVersions = options.keepVersions;
    this.now = options.now;
    const adopt = options.bytes.adopt?.bind(options.bytes);
    if (adopt !== undefined) {
      this.adoptUpload = async (clientIdHex, fileName, path) => {
        const key = liveKey(clientIdHex, fileName);
        const kept = await this.keepCurrent(clientIdHex, fileName);
        await adopt(key, path, kept.hint);
        return this.published(key, kept);
      };
    }
  }

  async beginUpload(clientIdHex: string, fileName: string): Promise<UploadSink> {
    const key = liveKey(clientIdHex, fileName);
    const writer = await this.bytes.begin(key);
    let committing: Promise<Published> | undefined;
    const commit = async (): Promise<Published> => {
      let kept: Kept;
      try {
        kept = await this.keepCurrent(clientIdHex, fileName);
      } catch (err) {
        await writer.abort();
        throw err;
      }
      await writer.commit(kept.hint);
      return this.published(key, kept);
    };
    return {
      write: (data) => writer.write(data),
      commit: () => (committing ??= commit()),
      // A commit under way is let finish (it may already have replaced the live file).
      abort: async () => {
        if (committing === undefined) await writer.abort();
        else await committing.then(noop, noop);
      },
    };
  }

  /**
   * Keeps the live file as a version if it is verified (called before it is replaced). Returns
   * what the lookup told about the live file, for the commit that follows, and where it was kept.
   */
  private async keepCurrent(clientIdHex: string, fileName: string): Promise<Kept> {
    if (this.keepVersions === 0) return { hint: {} };
    const clientId = Buffer.from(clientIdHex, 'hex');
    const current = await this.catalog.findFile(clientId, fileName);
    // A failed file's bytes were removed with its 1031.
    if (current === undefined || current.status === 'failed') {
      return { hint: { replacesNothing: true } };
    }
    if (current.status !== 'verified') return { hint: {} };
    const versions = await this.catalog.listVersions({ clientId, fileName });
    const as = this.archiveAs(clientIdHex, fileName, nextVersion(versions));
    // Nothing to keep when the bytes are gone (removed by hand): the row alone restores nothing.
    if (!(await this.bytes.copy(liveKey(clientIdHex, fileName), as.objectKey))) return { hint: {} };
    const result = await this.catalog.archiveFile(clientId, fileName, as, this.keepVersions);
    if (result.archived === undefined) await this.bytes.remove(as.objectKey);
    await this.removeBytesOf(result.pruned);
    return result.archived === undefined ? { hint: {} } : { hint: {}, versionKey: as.objectKey };
  }

  /** The publish of `key`, and how to take it back (see Published). */
  private published(key: string, kept: Kept): Published {
    return { objectKey: key, unpublish: () => this.unpublish(key, kept.versionKey) };
  }

  /**
   * Takes back the publish of `key` whose row could not be written: puts back the verified
   * bytes it replaced from where they were kept (their row is still the live one), or removes
   * the published bytes when it replaced nothing kept. The kept version stays either way.
   */
  private async unpublish(key: string, keptAt: string | undefined): Promise<void> {
    let putBack = false;
    try {
      putBack = keptAt !== undefined && (await this.bytes.copy(keptAt, key));
    } finally {
      // New bytes under the old row would pass for the old file: none rather than those.
      if (!putBack) await this.bytes.remove(key);
    }
  }

  private archiveAs(clientIdHex: string, fileName: string, version: number): ArchiveAs {
    return {
      version,
      objectKey: versionKey(clientIdHex, fileName, version),
      archivedAt: this.now(),
    };
  }

  /** Bytes of versions whose rows are gone; a leftover is an unlisted copy, never a loss. */
  private async removeBytesOf(versions: readonly FileVersion[]): Promise<void> {
    for (const version of versions) await this.bytes.remove(version.objectKey);
  }

  async remove(clientIdHex: string, fileName: string): Promise<void> {
    await this.bytes.remove(liveKey(clientIdHex, fileName));
  }

  async removeClient(clientIdHex: string): Promise<void> {
    for (const prefix of clientPrefixes(clientIdHex)) await this.bytes.removePrefix(prefix);
  }

  /**
   * Brings back a kept version (default the newest): the live file, unless failed or missing,
   * becomes a version first; the restored version stays listed. NOT_FOUND when there is no
   * such version or its bytes are gone.
   */
  async restore(
    clientId: Buffer,
    fileName: string,
    options: RestoreOptions = {},
  ): Promise<RestoreResult> {
    const clientIdHex = clientId.toString('hex');
    const live = liveKey(clientIdHex, fileName);
    const versions = await this.catalog.listVersions({ clientId, fileName });
    const wanted =
      options.version === undefined
        ? versions[versions.length - 1]
        : versions.find((kept) => kept.version === options.version);
    if (wanted === undefined) {
      throw notFound(
        options.version === undefined
          ? `no kept versions of ${live}`
          : `no version ${options.version} of ${live}`,
      );
    }
    const current = await this.catalog.findFile(clientId, fileName);
    let keptCurrent: ArchiveAs | undefined;
    if (current !== undefined && current.status !== 'failed') {
      const as = this.archiveAs(clientIdHex, fileName, nextVersion(versions));
      if (await this.bytes.copy(live, as.objectKey)) keptCurrent = as;
    }
    const putBack = async (): Promise<void> => {
      if (keptCurrent === undefined) return;
      await this.bytes.copy(keptCurrent.objectKey, live);
      await this.bytes.remove(keptCurrent.objectKey);
    };
    if (!(await this.bytes.copy(wanted.objectKey, live))) {
      if (keptCurrent !== undefined) await this.bytes.remove(keptCurrent.objectKey);
      throw notFound(`the bytes of version ${wanted.version} of ${live} are gone`);
    }
    let result;
    try {
      result = await this.catalog.restoreVersion(clientId, fileName, wanted.version, {
        objectKey: live,
        keep: Math.max(this.keepVersions, 1),
        now: this.now(),
        ...(keptCurrent === undefined ? {} : { current: keptCurrent }),
        ...(options.audit === undefined ? {} : { audit: options.audit }),
      });
    } catch (err) {
      await putBack();
      throw err;
    }
    if (result === undefined) {
      await putBack();
      throw notFound(`version ${wanted.version} of ${live} went away during the restore`);
    }
    if (keptCurrent !== undefined && result.archived === undefined) {
      await this.bytes.remove(keptCurrent.objectKey);
    }
    await this.removeBytesOf(result.pruned);
    return { restored: wanted, archived: result.archived };
  }
}
