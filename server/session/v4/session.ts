/**
 * The per-connection state machine of version 4 (docs/protocol-v4.md §5): HELLO first, then
 * REGISTER or MIGRATE unless the certificate is known, then uploads. It sees decoded messages
 * in order and returns the answer (DATA has none); it knows nothing of sockets or files.
 * Every refusal is an ERROR message with its code; only framing errors and a wrong version
 * close the connection.
 */
import type { Logger } from 'pino';
import { assertNever } from '../../../protocol/errors';
import { RequestCode, ResponseCode, Size, WireErrorCode } from '../../../protocol/v4/constants';
import type { ErrorMessage, Request, Response } from '../../../protocol/v4/messages';
import { isDiskFull } from '../../storage/space-reserve';
import { StorageError } from '../../storage/types';
import type { AuditEntry, AuditOutcome } from '../../storage/types';
import { V4SessionError, v4Error, type V4Context } from './context';
import {
  lookUpPeer,
  migrate,
  negotiateChunk,
  register,
  welcome,
  type BoundClient,
  type PeerIdentity,
} from './identity-flows';
import { V4Files } from './file-flows';
import { UploadRequests, type LaterAnswer } from './upload-requests';

/** The protocol version written into audit details and logs. */
const PROTOCOL_TAG = 'v4';

/** The text of a STORAGE answer: people can act on a full disk (by deleting), not on the rest. */
function storageText(err: unknown): string {
  if (isDiskFull(err)) return "the server's disk is full: delete files, or try again later";
  return err instanceof StorageError ? 'the server could not store this' : 'internal error';
}

export class V4Session {
  private chunk = 0;
  private challenge: Buffer | undefined;
  private client: BoundClient | undefined;
  private readonly uploads: UploadRequests;
  private readonly files: V4Files;
  private closed = false;

  constructor(
    private readonly ctx: V4Context,
    private readonly peer: PeerIdentity,
    private readonly remoteAddress: string,
    private readonly log: Logger,
  ) {
    this.files = new V4Files(ctx, (code, outcome, detail) => this.entry(code, outcome, detail));
    this.uploads = new UploadRequests({
      ctx,
      log,
      chunk: () => this.chunk,
      entry: (code, outcome, detail) => this.entry(code, outcome, detail),
      auditRefusal: (code, err, subject) => this.auditRefusal(code, err, subject),
      refuse: (code, err) => this.refuse(code, err),
    });
  }

  /** The negotiated DATA limit; 0 before HELLO, so DATA then is a framing error. */
  get chunkSize(): number {
    return this.chunk;
  }

  get uploadInProgress(): boolean {
    return this.uploads.inProgress;
  }

  /**
   * Handles one message; refusals come back as ERROR messages, never as exceptions. A
   * pipelined UPLOAD_END comes back as a LaterAnswer (docs/protocol-v4.md §5.10).
   */
  async handle(req: Request): Promise<Response | LaterAnswer | undefined> {
    try {
      const flags = req.code === RequestCode.UPLOAD_BEGIN_FLAGS ? req.flags : 0;
      // Anything but the next pipelined upload sees the commits before it answered.
      if (!UploadRequests.isPipelineRequest(req.code, flags)) await this.uploads.drained();
      return await this.dispatch(req);
    } catch (err) {
      return this.refuse(req.code, err);
    }
  }

  /**
   * A frame that did not decode: BAD_MESSAGE, unless it belongs to a pipelined upload being
   * dropped, which it ends as an ERROR to its frame would (docs/protocol-v4.md §5.10).
   */
  async undecodable(code: number, payload: Buffer, text: string): Promise<Response | undefined> {
    const answered = await this.uploads.undecodable(code, payload).catch((err: unknown) => {
      this.log.error({ err }, 'could not end a pipelined upload');
      return true;
    });
    return answered
      ? { code: ResponseCode.ERROR, error: WireErrorCode.BAD_MESSAGE, fatal: false, text }
      : undefined;
  }

  /** The connection closed: an upload in progress keeps its partial for a later resume. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.files.close().catch((err) => this.log.error({ err }, 'could not end a download'));
    const upload = await this.uploads
      .suspend()
      .catch((err: unknown) => this.log.error({ err }, 'could not keep a partial'));
    if (upload) {
      this.log.info({ file: upload.fileName, offset: upload.offset }, 'v4 upload suspended');
    }
    // Commits of pipelined uploads finish (their answers have nowhere to go).
    await this.uploads.drained();
  }

  private async dispatch(req: Request): Promise<Response | LaterAnswer | undefined> {
    if (this.challenge === undefined && req.code !== RequestCode.HELLO) {
      throw v4Error('UNEXPECTED', 'HELLO must come first', true);
    }
    switch (req.code) {
      case RequestCode.HELLO: {
        if (this.challenge !== undefined) throw v4Error('UNEXPECTED', 'second HELLO', true);
        this.chunk = negotiateChunk(this.ctx, req);
        this.challenge = this.ctx.random(Size.CHALLENGE);
        this.client = await lookUpPeer(this.ctx, this.peer);
        if (this.client) {
          await this.ctx.base.store.touch(this.client.clientId, this.ctx.base.sources.now());
          await this.audit(req.code, 'reconnected', '');
        }
        return welcome(this.chunk, this.challenge, this.client);
      }
      case RequestCode.REGISTER: {
        this.requireUnbound();
        const done = await register(this.ctx, this.peer, this.remoteAddress, req).catch(
          async (err: unknown) => {
            await this.auditRefusal(req.code, err, req.name);
            throw err;
          },
        );
        this.client = done.bound;
        await this.audit(req.code, 'registered', '');
        return done.response;
      }
      case RequestCode.MIGRATE: {
        this.requireUnbound();
        const challenge = this.challenge;
        if (challenge === undefined) throw v4Error('UNEXPECTED', 'HELLO must come first', true);
        const done = await migrate(this.ctx, this.peer, challenge, req).catch(
          async (err: unknown) => {
            await this.auditRefusal(req.code, err, req.name);
            throw err;
          },
        );
        this.client = done.bound;
        await this.audit(req.code, 'key_set', 'migrated from v3');
        return done.response;
      }
      case RequestCode.UPLOAD_BEGIN:
      case RequestCode.UPLOAD_BEGIN_FLAGS:
        return this.uploads.begin(this.requireClient(), req);
      case RequestCode.UPLOAD_DATA:
      case RequestCode.UPLOAD_DATA_DEFLATE:
        return this.uploads.data(req);
      case RequestCode.UPLOAD_END:
        return this.uploads.end(this.requireClient(), req);
      case RequestCode.KEYS: {
        const keySet = this.ctx.keySet?.();
        if (keySet === undefined) throw v4Error('UNEXPECTED', 'this server publishes no key set');
        return keySet;
      }
      case RequestCode.LIST:
        return this.files.list(this.requireClient(), req);
      case RequestCode.GET:
        return this.files.get(this.requireClient(), req);
      case RequestCode.READ:
        this.requireClient();
        return this.files.read(this.chunk);
      case RequestCode.DELETE: {
        const client = this.requireClient();
        return this.files.delete(client, req.fileName).catch(async (err: unknown) => {
          await this.auditRefusal(req.code, err, req.fileName);
          throw err;
        });
      }
      default:
        return assertNever(req, 'v4 request');
    }
  }

  private requireUnbound(): void {
    if (this.client) throw v4Error('ALREADY_REGISTERED', 'this connection has a client already');
  }

  private requireClient(): BoundClient {
    if (!this.client) throw v4Error('NOT_AUTHENTICATED', 'register or migrate first');
    return this.client;
  }

  private refuse(code: number, err: unknown): ErrorMessage {
    if (err instanceof V4SessionError) {
      this.log.warn({ code, error: err.code, reason: err.message }, 'v4 request refused');
      return { code: ResponseCode.ERROR, error: err.wire, fatal: err.fatal, text: err.message };
    }
    const storage = err instanceof StorageError;
    this.log.error({ err, code }, storage ? 'v4 storage failure' : 'v4 internal error');
    // Gives up the space reserve on a full disk, so a DELETE can still commit.
    void this.ctx.base.space?.failed(err);
    const error = v4Error('STORAGE', storageText(err));
    return { code: ResponseCode.ERROR, error: error.wire, fatal: false, text: error.message };
  }

  private entry(code: number, outcome: AuditOutcome, detail: string): AuditEntry {
    const tag = [PROTOCOL_TAG, this.peer.fingerprint ?? 'no certificate', detail]
      .filter((part) => part !== '')
      .join(' ');
    return {
      time: this.ctx.base.sources.now(),
      remoteAddress: this.remoteAddress,
      clientId: this.client?.clientId ?? null,
      name: this.client?.name ?? null,
      requestCode: code,
      outcome,
      detail: tag,
    };
  }

  private async audit(code: number, outcome: AuditOutcome, detail: string): Promise<void> {
    try {
      await this.ctx.base.store.audit(this.entry(code, outcome, detail));
    } catch (err) {
      this.log.error({ err, outcome }, 'could not write the audit trail');
    }
  }

  private async auditRefusal(code: number, err: unknown, subject: string): Promise<void> {
    if (!(err instanceof V4SessionError)) return;
    const outcome = AUDIT_OUTCOMES[err.code];
    if (outcome !== undefined) await this.audit(code, outcome, `${subject}: ${err.message}`);
  }
}

/** Refusals worth an audit row, as the v3 outcomes that mean the same. */
const AUDIT_OUTCOMES: Partial<Record<V4SessionError['code'], AuditOutcome>> = {
  NAME_TAKEN: 'name_taken',
  INVALID_NAME: 'invalid_name',
  RATE_LIMITED: 'rate_limited',
  MIGRATION_REFUSED: 'reconnect_refused',
  ALREADY_REGISTERED: 'reconnect_refused',
  FILE_TOO_LARGE: 'file_rejected',
  QUOTA_EXCEEDED: 'quota_exceeded',
  DIGEST_MISMATCH: 'checksum_failed',
  SIZE_MISMATCH: 'file_rejected',
  BUSY: 'file_rejected',
};
