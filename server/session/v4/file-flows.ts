/**
 * A client's own files over version 4 (docs/protocol-v4.md §5.6, §5.7): LIST pages through
 * them newest first, GET opens a download at an offset and READ takes its next chunk, DELETE
 * removes a file and its row. Every name is looked up under the bound client's id only, so a
 * client never sees or touches another's files: a name it does not have is NOT_FOUND, whoever
 * else has it.
 */
import { createHash } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import {
  FileFlag,
  LIST_PAGE_SIZE,
  RequestCode,
  ResponseCode,
  Size,
} from '../../../protocol/v4/constants';
import type {
  Deleted,
  FileData,
  FileEntry,
  FileInfo,
  FileList,
  Get,
  List,
} from '../../../protocol/v4/messages';
import type { FileRecord } from '../../storage/types';
import { v4Error, type V4Context } from './context';
import { ChunkReader } from './chunk-reader';
import { metaOfFile, type V4FileAccess, type V4FileMeta } from './file-meta';
import type { BoundClient } from './identity-flows';
import type { AuditFor } from './upload-flow';

const UNKNOWN_SHA256 = Buffer.alloc(Size.SHA256);

interface Download {
  readonly fileName: string;
  readonly size: number;
  readonly reader: ChunkReader;
  position: number;
}

/** The original bytes of one deflated DATA payload, at most `chunkSize` of them. */
export function inflateChunk(data: Buffer, chunkSize: number): Buffer {
  let out: Buffer;
  try {
    out = inflateRawSync(data, { maxOutputLength: chunkSize });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw v4Error(
      'BAD_MESSAGE',
      `deflated DATA does not inflate to at most ${chunkSize} bytes: ${reason}`,
    );
  }
  if (out.length === 0) throw v4Error('BAD_MESSAGE', 'deflated DATA inflates to nothing');
  return out;
}

export class V4Files {
  private download: Download | undefined;
  /**
   * The listing this connection pages through, taken at its first page (start 0): the pages
   * after it neither repeat nor skip files stored or deleted meanwhile, and the client's rows
   * are read once per listing, not once per page (docs/protocol-v4.md §4.8). Dropped at the
   * listing's last page.
   */
  private listing: FileRecord[] | undefined;

  constructor(
    private readonly ctx: V4Context,
    private readonly auditFor: AuditFor,
  ) {}

  private access(): V4FileAccess {
    const access = this.ctx.files;
    if (access === undefined) throw v4Error('STORAGE', 'this server does not serve files');
    return access;
  }

  /** The live files of a client (a failed upload's row has no bytes), newest first. */
  private async filesOf(client: BoundClient): Promise<FileRecord[]> {
    const own = await this.ctx.base.store.listFiles(client.clientId);
    return own
      .filter((f) => f.status !== 'failed')
      .sort((a, b) => b.updatedAt - a.updatedAt || (a.fileName < b.fileName ? -1 : 1));
  }

  private async find(client: BoundClient, fileName: string): Promise<FileRecord> {
    const file = await this.ctx.base.store.findFile(client.clientId, fileName);
    if (file === undefined || file.status === 'failed') {
      throw v4Error('NOT_FOUND', `no file ${JSON.stringify(fileName)}`);
    }
    return file;
  }

  private metaOf(file: FileRecord): Promise<V4FileMeta | undefined> {
    return metaOfFile(file, this.access().meta);
  }

  async list(client: BoundClient, req: List): Promise<FileList> {
    this.access();
    if (req.start === 0 || this.listing === undefined) this.listing = await this.filesOf(client);
    const files = this.listing;
    const page: FileEntry[] = [];
    for (const file of files.slice(req.start, req.start + LIST_PAGE_SIZE)) {
      const meta = await this.metaOf(file);
      page.push({
        fileName: file.fileName,
        size: file.size,
        storedAt: file.updatedAt,
        sha256: meta?.sha256 ?? UNKNOWN_SHA256,
        flags: (meta?.flags ?? 0) | (file.verified ? FileFlag.VERIFIED : 0),
      });
    }
    // Held only while the listing is paged through: its last page lets it go.
    if (req.start + LIST_PAGE_SIZE >= files.length) this.listing = undefined;
    return { code: ResponseCode.FILE_LIST, total: files.length, files: page };
  }

  private async open(file: FileRecord): Promise<ChunkReader> {
    const stream = await this.access().bytes.read(file.objectKey);
    if (stream === undefined) throw v4Error('NOT_FOUND', `the bytes of ${file.fileName} are gone`);
    return new ChunkReader(stream);
  }

  /** The SHA-256 of a file the server has no record for (stored over v3, or replaced since). */
  private async computeMeta(client: BoundClient, file: FileRecord): Promise<V4FileMeta> {
    const reader = await this.open(file);
    const hash = createHash('sha256');
    let size = 0;
    try {
      for (;;) {
        const piece = await reader.next(1 << 20);
        if (piece.length === 0) break;
        hash.update(piece);
        size += piece.length;
      }
    } finally {
      await reader.close();
    }
    if (size !== file.size) {
      throw v4Error('STORAGE', `${file.fileName} holds ${size} bytes, its row says ${file.size}`);
    }
    const meta: V4FileMeta = { size, updatedAt: file.updatedAt, sha256: hash.digest(), flags: 0 };
    await this.access().meta.put(client.clientIdHex, file.fileName, meta);
    return meta;
  }

  async get(client: BoundClient, req: Get): Promise<FileInfo> {
    await this.close();
    const file = await this.find(client, req.fileName);
    if (req.offset > file.size) {
      throw v4Error('SIZE_MISMATCH', `offset ${req.offset} is past the ${file.size} bytes`);
    }
    const meta = (await this.metaOf(file)) ?? (await this.computeMeta(client, file));
    const reader = await this.open(file);
    if (!(await reader.skip(req.offset))) {
      await reader.close();
      throw v4Error('STORAGE', `${file.fileName} is shorter than its row says`);
    }
    this.download = { fileName: file.fileName, size: file.size, reader, position: req.offset };
    if (req.offset === file.size) await this.close();
    return {
      code: ResponseCode.FILE_INFO,
      size: file.size,
      sha256: meta.sha256,
      storedAt: file.updatedAt,
      flags: meta.flags | (file.verified ? FileFlag.VERIFIED : 0),
    };
  }

  async read(chunkSize: number): Promise<FileData> {
    const download = this.download;
    if (download === undefined) throw v4Error('UNEXPECTED', 'no download in progress');
    const data = await download.reader.next(Math.min(chunkSize, download.size - download.position));
    if (data.length === 0) {
      await this.close();
      throw v4Error('STORAGE', `${download.fileName} ended before its ${download.size} bytes`);
    }
    download.position += data.length;
    // Each piece read, framed and encrypted is a fresh buffer, garbage once sent (gc-nudge.ts).
    this.ctx.base.memory?.note(data.length);
    if (download.position >= download.size) await this.close();
    return { code: ResponseCode.FILE_DATA, data };
  }

  async delete(client: BoundClient, fileName: string): Promise<Deleted> {
    const access = this.access();
    const key = `${client.clientIdHex}/${fileName}`;
    if (this.ctx.activeUploads.has(key)) {
      throw v4Error('BUSY', 'another connection is uploading this file');
    }
    const { store, files, fileLocks } = this.ctx.base;
    return fileLocks.run(key, async () => {
      const file = await this.find(client, fileName);
      // The row first: a crash before the bytes go leaves unlisted bytes, never a row without.
      const audit = this.auditFor(
        RequestCode.DELETE,
        'file_deleted',
        `${fileName}: ${file.size} bytes`,
      );
      const removeRow = (): Promise<boolean> => store.deleteFile(client.clientId, fileName, audit);
      const space = this.ctx.base.space;
      if (!(await (space === undefined ? removeRow() : space.freeing(removeRow)))) {
        throw v4Error('NOT_FOUND', `no file ${JSON.stringify(fileName)}`);
      }
      await files.remove(client.clientIdHex, fileName);
      await access.meta.remove(client.clientIdHex, fileName);
      return { code: ResponseCode.DELETED, size: file.size };
    });
  }

  /** Ends the download in progress, if any. */
  async close(): Promise<void> {
    const download = this.download;
    this.download = undefined;
    await download?.reader.close();
  }
}
