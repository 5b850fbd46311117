/**
 * Resumable partial uploads of version 4 on disk (docs/protocol-v4.md §5.5), under
 * `<data-dir>/.partial-v4/<client hex>/<digest of the name>.{data,meta}`.
 *
 * - `.data` holds the bytes received so far, written in order.
 * - `.meta` (JSON, replaced atomically) names the upload (name, size, content check) and its
 *   durable offset: the bytes of `.data` fdatasynced before the meta was written. After a
 *   crash `.data` may hold more (or, after power loss, garbage past that point): it is cut back
 *   to the durable offset when the upload resumes.
 * - A new upload writes no `.meta` until its first checkpoint: until then there is nothing
 *   durable to resume, and a `.data` without a `.meta` starts again at 0, as the answered
 *   offset said. So a small file, published before any checkpoint, costs no record at all.
 *   A `.meta` that exists but no longer fits (another upload of the name, or more than `.data`
 *   holds) is replaced at once: it would otherwise vouch for bytes that were never synced.
 * - Paths are built from a checked client hex and a SHA-256 of the name, never from the name
 *   itself, so nothing a client sends chooses a path.
 */
import { createHash } from 'node:crypto';
import { createReadStream, lstatSync, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../../shared/atomic-file';
import { isNotFound } from '../../../shared/errno';
import type { PartialKey, PartialStore, PartialUpload } from '../../session/v4/context';
import { StorageError, StorageErrorCode } from '../types';
import { fsError } from './errors';
import { ensureRecordFolder } from './v4-folders';

export const PARTIALS_DIR = '.partial-v4';
const FILE_MODE = 0o600;
const CLIENT_HEX = /^[0-9a-f]{32}$/;
const READ_CHUNK = 1024 * 1024;

interface Meta {
  readonly fileName: string;
  readonly size: number;
  readonly check: string;
  readonly durable: number;
  readonly updatedAt: number;
}

/**
 * Whether anything is at `path`. On this thread, as directories.ts checks its folders: a
 * lookup in a folder in use is answered from the kernel's cache, cheaper than a round trip
 * through the thread pool, and most uploads find no partial.
 */
function exists(path: string): boolean {
  try {
    return lstatSync(path, { throwIfNoEntry: false }) !== undefined;
  } catch (err) {
    throw fsError(`cannot inspect ${path}`, err);
  }
}

async function readMeta(path: string): Promise<Meta | undefined> {
  try {
    const meta = JSON.parse(await fsp.readFile(path, 'utf8')) as Partial<Meta>;
    if (
      typeof meta.fileName !== 'string' ||
      !Number.isSafeInteger(meta.size) ||
      typeof meta.check !== 'string' ||
      !Number.isSafeInteger(meta.durable) ||
      typeof meta.updatedAt !== 'number'
    ) {
      return undefined;
    }
    return meta as Meta;
  } catch (err) {
    if (isNotFound(err) || err instanceof SyntaxError) return undefined;
    throw fsError(`cannot read ${path}`, err);
  }
}

class DiskPartial implements PartialUpload {
  private written: number;
  private durable: number;
  /**
   * A failed sync: the OS reports it once, so a later sync would pass over the lost pages.
   * No checkpoint is recorded after it; a resume continues from the last good one.
   */
  private syncFailure: unknown;

  constructor(
    private readonly handle: FileHandle,
    private readonly dataPath: string,
    private readonly metaPath: string,
    private readonly meta: Omit<Meta, 'durable' | 'updatedAt'>,
    readonly offset: number,
    private readonly now: () => number,
    /** A `.meta` is on disk (recorded earlier, or written since): `remove` deletes it. */
    private metaOnDisk: boolean,
  ) {
    this.written = offset;
    this.durable = offset;
  }

  get localPath(): string {
    return this.dataPath;
  }

  async *contents(end: number): AsyncIterable<Buffer> {
    if (end === 0) return;
    const stream = createReadStream(this.dataPath, {
      start: 0,
      end: end - 1,
      highWaterMark: READ_CHUNK,
    });
    let seen = 0;
    try {
      for await (const chunk of stream) {
        seen += (chunk as Buffer).length;
        yield chunk as Buffer;
      }
    } catch (err) {
      throw fsError(`cannot read ${this.dataPath}`, err);
    }
    if (seen !== end) throw fsError(`${this.dataPath} is short`, new Error(`${seen} < ${end}`));
  }

  async write(data: Buffer): Promise<void> {
    try {
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await this.handle.write(
          data,
          done,
          data.length - done,
          this.written + done,
        );
        done += bytesWritten;
      }
    } catch (err) {
      throw fsError(`cannot write ${this.dataPath}`, err);
    }
    this.written += data.length;
  }

  async checkpoint(): Promise<number> {
    if (this.syncFailure !== undefined) throw this.syncFailure;
    if (this.written === this.durable) return this.durable;
    const reached = this.written;
    try {
      await this.handle.datasync();
    } catch (err) {
      this.syncFailure = fsError(`cannot checkpoint ${this.dataPath}`, err);
      throw this.syncFailure;
    }
    try {
      await this.writeMeta(reached);
    } catch (err) {
      throw fsError(`cannot checkpoint ${this.dataPath}`, err);
    }
    this.durable = reached;
    return reached;
  }

  async close(): Promise<void> {
    try {
      await this.checkpoint();
    } finally {
      await this.handle.close().catch(() => undefined);
    }
  }

  async remove(): Promise<void> {
    await this.handle.close().catch(() => undefined);
    // `.data` is usually gone already: the file store adopted it (moved it into place).
    const paths = this.metaOnDisk ? [this.metaPath, this.dataPath] : [this.dataPath];
    for (const path of paths) {
      if (path === this.dataPath && !exists(path)) continue;
      await fsp.unlink(path).catch((err: unknown) => {
        if (!isNotFound(err)) throw fsError(`cannot remove ${path}`, err);
      });
    }
    this.metaOnDisk = false;
  }

  async writeMeta(durable: number): Promise<void> {
    const meta: Meta = { ...this.meta, durable, updatedAt: this.now() };
    await writeFileAtomic(this.metaPath, JSON.stringify(meta), { mode: FILE_MODE });
    this.metaOnDisk = true;
  }
}

export function createDiskPartialStore(dataDir: string, now: () => number): PartialStore {
  const root = join(dataDir, PARTIALS_DIR);

  return {
    async open(key: PartialKey): Promise<PartialUpload> {
      if (!CLIENT_HEX.test(key.clientIdHex)) {
        throw new StorageError(StorageErrorCode.PATH_ESCAPE, 'client id is not 32 hex digits');
      }
      const dir = join(root, key.clientIdHex);
      await ensureRecordFolder(root, dataDir, true);
      await ensureRecordFolder(dir, root, false);
      const base = join(dir, createHash('sha256').update(key.fileName, 'utf8').digest('hex'));
      const dataPath = `${base}.data`;
      const metaPath = `${base}.meta`;
      const check = key.check.toString('hex');
      const metaFound = exists(metaPath);
      // A fresh upload never resumes: whatever its record says, it is not read.
      const recorded = metaFound && key.fresh !== true ? await readMeta(metaPath) : undefined;
      const resumes =
        recorded !== undefined &&
        recorded.fileName === key.fileName &&
        recorded.size === key.size &&
        recorded.check === check &&
        recorded.durable <= key.size;
      let handle: FileHandle;
      let offset = 0;
      try {
        if (resumes) {
          handle = await fsp.open(dataPath, 'r+').catch(async (err: unknown) => {
            if (!isNotFound(err)) throw err;
            return fsp.open(dataPath, 'w+', FILE_MODE);
          });
          const { size } = await handle.stat();
          offset = Math.min(recorded.durable, size);
          await handle.truncate(offset);
        } else {
          handle = await fsp.open(dataPath, 'w+', FILE_MODE);
        }
      } catch (err) {
        throw fsError(`cannot open ${dataPath}`, err);
      }
      const partial = new DiskPartial(
        handle,
        dataPath,
        metaPath,
        { fileName: key.fileName, size: key.size, check },
        offset,
        now,
        metaFound,
      );
      // A record that does not say exactly this offset of this upload is replaced now (see
      // above); with none, the first checkpoint writes one. Bytes kept below a record that
      // promised more are synced first: the new record vouches for them.
      if (metaFound && (!resumes || recorded?.durable !== offset)) {
        const replaced = async (): Promise<void> => {
          if (offset > 0) await handle.datasync();
          await partial.writeMeta(offset);
        };
        await replaced().catch(async (err: unknown) => {
          await handle.close().catch(() => undefined);
          throw fsError(`cannot write ${metaPath}`, err);
        });
      }
      return partial;
    },

    async sweep(olderThan: number): Promise<number> {
      let removed = 0;
      let clients: string[];
      try {
        clients = await fsp.readdir(root);
      } catch (err) {
        if (isNotFound(err)) return 0;
        throw fsError(`cannot list ${root}`, err);
      }
      for (const client of clients.filter((name) => CLIENT_HEX.test(name))) {
        const dir = join(root, client);
        const names = await fsp.readdir(dir).catch(() => [] as string[]);
        const bases = new Set(names.map((name) => name.replace(/\.(data|meta)$/, '')));
        for (const base of bases) {
          const meta = await readMeta(join(dir, `${base}.meta`));
          let stale = meta === undefined || meta.updatedAt < olderThan;
          if (meta === undefined) {
            // A data file without its meta: stale once its own time is past the age too.
            const stats = await fsp.stat(join(dir, `${base}.data`)).catch(() => undefined);
            stale = stats === undefined || stats.mtimeMs < olderThan;
          }
          if (!stale) continue;
          for (const suffix of ['.data', '.meta']) {
            await fsp.unlink(join(dir, base + suffix)).catch(() => undefined);
          }
          removed++;
        }
        await fsp.rmdir(dir).catch(() => undefined);
      }
      return removed;
    },
  };
}
