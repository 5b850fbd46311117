/**
 * The upload requests of one v4 connection (docs/protocol-v4.md §5.4, §5.10): UPLOAD_BEGIN[_FLAGS],
 * DATA, DATA_DEFLATE and UPLOAD_END, plain or pipelined.
 *
 * A pipelined upload's UPLOAD_END is answered later: its commit runs while the next pipelined
 * upload is read, so uploads that end close together share their syncs (group commit) instead
 * of one connection making one file durable at a time. The transport sends answers in request
 * order. Any other request waits until those commits are answered (`drained`), so it sees the
 * files stored before it.
 */
import type { Logger } from 'pino';
import {
  CLIENT_FILE_FLAGS,
  FileFlag,
  RequestCode,
  UploadFlag,
} from '../../../protocol/v4/constants';
import type {
  Response,
  UploadBegin,
  UploadBeginFlags,
  UploadData,
  UploadDataDeflate,
  UploadEnd,
} from '../../../protocol/v4/messages';
import { isDiskFull } from '../../storage/space-reserve';
import type { AuditEntry, AuditOutcome } from '../../storage/types';
import { V4SessionError, v4Error, type V4Context } from './context';
import { inflateChunk } from './file-flows';
import type { BoundClient } from './identity-flows';
import { V4Upload } from './upload-flow';

/** Pipelined UPLOAD_ENDs of one connection committing at once, at most (§5.10). */
export const MAX_PIPELINED_COMMITS = 16;

/** An answer the transport sends when it settles, after every answer before it. */
export interface LaterAnswer {
  readonly later: Promise<Response>;
}

export function isLaterAnswer(reply: Response | LaterAnswer | undefined): reply is LaterAnswer {
  return reply !== undefined && 'later' in reply;
}

/** What the requests need of their session. */
export interface UploadRequestsHost {
  readonly ctx: V4Context;
  readonly log: Logger;
  /** The negotiated DATA limit (DATA_DEFLATE inflates to at most this). */
  chunk(): number;
  entry(code: number, outcome: AuditOutcome, detail: string): AuditEntry;
  auditRefusal(code: number, err: unknown, subject: string): Promise<void>;
  /** The ERROR answer of a failure. */
  refuse(code: number, err: unknown): Response;
}

type Begin = UploadBegin | UploadBeginFlags;

/**
 * Whether a failed upload loses its partial (docs/protocol-v4.md §5.4): a refusal of its bytes
 * does, and so does a full disk, where the partial's space is better given back than kept for
 * a resume; any other storage failure keeps it.
 */
function endsPartial(err: unknown): boolean {
  return err instanceof V4SessionError || isDiskFull(err);
}

export class UploadRequests {
  private upload: V4Upload | undefined;
  /** FileFlag bits of the upload in progress (§4.12, §4.13). */
  private flags = 0;
  private pipelined = false;
  /**
   * A pipelined upload was refused (its UPLOAD_BEGIN or a DATA frame): its remaining DATA and
   * its UPLOAD_END are dropped unanswered (§5.10).
   */
  private dropping = false;
  /** Commits of pipelined UPLOAD_ENDs not answered yet, by file name. */
  private readonly committing = new Map<Promise<unknown>, string>();

  constructor(private readonly host: UploadRequestsHost) {}

  get inProgress(): boolean {
    return this.upload !== undefined;
  }

  /** True for the requests that go on while pipelined commits run. */
  static isPipelineRequest(code: number, flags: number): boolean {
    return (
      code === RequestCode.UPLOAD_DATA ||
      code === RequestCode.UPLOAD_DATA_DEFLATE ||
      code === RequestCode.UPLOAD_END ||
      (code === RequestCode.UPLOAD_BEGIN_FLAGS && (flags & UploadFlag.PIPELINED) !== 0)
    );
  }

  /** Resolves once every pipelined commit of this connection is done; never rejects. */
  async drained(): Promise<void> {
    while (this.committing.size > 0) await Promise.allSettled([...this.committing.keys()]);
  }

  async begin(client: BoundClient, req: Begin): Promise<Response> {
    const flags = req.code === RequestCode.UPLOAD_BEGIN_FLAGS ? req.flags : 0;
    const pipelined = (flags & UploadFlag.PIPELINED) !== 0;
    this.dropping = false;
    await this.suspend();
    const { fileName, size, check } = req;
    for (let wait = this.blocking(fileName); wait.length > 0; wait = this.blocking(fileName)) {
      await Promise.race(wait);
    }
    const begin = { code: RequestCode.UPLOAD_BEGIN, fileName, size, check } as const;
    try {
      const begun = await V4Upload.begin(this.host.ctx, client, begin, { fresh: pipelined });
      this.upload = begun.upload;
      this.flags = flags & CLIENT_FILE_FLAGS;
      this.pipelined = pipelined;
      // One info line per transfer, at its end (stored, suspended or refused): a line here
      // too would double the log of a folder of small files.
      this.host.log.debug(
        {
          client: client.clientIdHex,
          file: fileName,
          size,
          offset: begun.response.offset,
          pipelined,
        },
        'v4 upload begins',
      );
      return begun.response;
    } catch (err) {
      this.dropping = pipelined;
      await this.host.auditRefusal(req.code, err, fileName);
      throw err;
    }
  }

  async data(req: UploadData | UploadDataDeflate): Promise<undefined> {
    if (this.dropping) return undefined;
    const upload = this.require();
    try {
      if (req.code === RequestCode.UPLOAD_DATA) {
        await upload.data(req.data);
      } else {
        this.flags |= FileFlag.COMPRESSED;
        await upload.data(inflateChunk(req.data, this.host.chunk()));
      }
    } catch (err) {
      this.upload = undefined;
      this.dropping = this.pipelined;
      if (endsPartial(err)) await upload.discard();
      else await upload.suspend().catch(() => undefined);
      throw err;
    }
    return undefined;
  }

  async end(client: BoundClient, req: UploadEnd): Promise<Response | LaterAnswer | undefined> {
    if (this.dropping) {
      this.dropping = false;
      return undefined;
    }
    const upload = this.require();
    this.upload = undefined;
    const finished = this.finish(client, req, upload, this.flags);
    if (!this.pipelined) return finished;
    const later = finished.catch((err: unknown) => this.host.refuse(req.code, err));
    this.committing.set(later, upload.fileName);
    void later.finally(() => this.committing.delete(later));
    return { later };
  }

  /**
   * A frame that did not decode. A pipelined UPLOAD_BEGIN_FLAGS (its last byte, the flags, says
   * so) or a DATA or UPLOAD_END of the pipelined upload in progress ends that upload, as a
   * refusal would; a frame of an upload being dropped gets no answer. False: no answer.
   */
  async undecodable(code: number, payload: Buffer): Promise<boolean> {
    if (code === RequestCode.UPLOAD_BEGIN_FLAGS) {
      const flags = payload.length > 0 ? (payload[payload.length - 1] as number) : 0;
      if ((flags & UploadFlag.PIPELINED) === 0) return true;
      this.dropping = false;
      await this.suspend();
      this.dropping = true;
      return true;
    }
    const ofUpload =
      code === RequestCode.UPLOAD_DATA ||
      code === RequestCode.UPLOAD_DATA_DEFLATE ||
      code === RequestCode.UPLOAD_END;
    if (!ofUpload) return true;
    if (this.dropping) {
      if (code === RequestCode.UPLOAD_END) this.dropping = false;
      return false;
    }
    const upload = this.upload;
    if (upload === undefined || !this.pipelined) return true;
    this.upload = undefined;
    this.dropping = code !== RequestCode.UPLOAD_END;
    await upload.discard();
    return true;
  }

  /** Keeps the partial of the upload in progress for a later resume. */
  async suspend(): Promise<V4Upload | undefined> {
    const upload = this.upload;
    this.upload = undefined;
    if (upload) await upload.suspend();
    return upload;
  }

  /**
   * The commits an upload of `fileName` waits for: one of that name still committing here (one
   * name's uploads apply in order), else all of them while the connection holds its most.
   */
  private blocking(fileName: string): Promise<unknown>[] {
    const sameName = [...this.committing].flatMap(([c, name]) => (name === fileName ? [c] : []));
    if (sameName.length > 0) return sameName;
    return this.committing.size >= MAX_PIPELINED_COMMITS ? [...this.committing.keys()] : [];
  }

  private require(): V4Upload {
    if (!this.upload) throw v4Error('UNEXPECTED', 'no upload in progress');
    return this.upload;
  }

  private async finish(
    client: BoundClient,
    req: UploadEnd,
    upload: V4Upload,
    flags: number,
  ): Promise<Response> {
    try {
      const stored = await upload.end(
        client,
        req,
        (code, outcome, detail) => this.host.entry(code, outcome, detail),
        flags,
      );
      this.host.log.info(
        {
          client: client.clientIdHex,
          file: upload.fileName,
          size: stored.size,
          resumedFrom: upload.resumedFrom,
        },
        'v4 file stored',
      );
      return stored;
    } catch (err) {
      await this.host.auditRefusal(req.code, err, upload.fileName);
      if (endsPartial(err)) await upload.discard().catch(() => undefined);
      else await upload.suspend().catch(() => undefined);
      throw err;
    }
  }
}
