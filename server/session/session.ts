/**
 * The per-connection dispatcher of docs/protocol.md §5: it sees requests in order, hands each
 * to the handler of its flow and returns the answer (or none, §5.5 1030). It knows nothing of
 * sockets or files, only the storage interfaces, so tests drive it with any store backend.
 *
 * `handle` is synchronous for the common case, a packet continuing the upload in progress: its
 * ciphertext goes into the batch and nothing is awaited. Everything else runs as one async
 * step; the connection does not hand in the next request before that step resolves.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { RequestCode, Size } from '../../protocol/v3/constants';
import { assertNever } from '../../protocol/errors';
import type { DecodedRequest } from '../../protocol/v3/decode';
import type { Request, RequestHeader, Response } from '../../protocol/v3/messages';
import { readSendFileFrame } from '../../protocol/v3/send-file-view';
import { clientIdToHex } from '../../shared/client-id';
import { Auditor, describe, elapsed, requestNames } from './audit';
import { handleChecksum } from './checksum';
import { SessionState, type Flow, type SessionContext } from './context';
import { handleReconnect, handleSendPublicKey } from './key-exchange';
import { handleRegister } from './register';
import { toWire } from './to-wire';
import { abandonUpload, breakUpload, dropsAsBroken, fieldsOf, handleSendFile } from './upload-flow';

export type { SessionContext } from './context';

/** Copies the views of a decoded request so it can be handled after the callback returned. */
export function ownDecodedRequest(d: DecodedRequest): DecodedRequest {
  const header: RequestHeader = { ...d.header, clientId: Buffer.from(d.header.clientId) };
  if (!d.ok) return { ok: false, header, error: d.error, payload: Buffer.from(d.payload) };
  const request = d.request;
  if (request.code !== RequestCode.SEND_FILE) return { ok: true, header, request };
  return {
    ok: true,
    header,
    request: {
      ...request,
      clientId: header.clientId,
      // Bytes past content size are dropped anyway (§9); do not keep the padding.
      content: Buffer.from(request.content.subarray(0, request.contentSize)),
    },
  };
}

export class Session {
  private readonly state = new SessionState();
  private readonly flow: Flow;

  constructor(ctx: SessionContext, remoteAddress: string, log: Logger) {
    const audit = new Auditor(ctx.store, ctx.sources, remoteAddress, log);
    this.flow = { ctx, state: this.state, remoteAddress, log, audit };
  }

  /** An upload has started and not finished: the connection is not idle. */
  get uploadInProgress(): boolean {
    return this.state.upload !== undefined;
  }

  /** Plaintext waiting for the disk; the connection stops reading above a threshold. */
  get pendingWriteBytes(): number {
    return this.state.upload?.pendingBytes ?? 0;
  }

  /**
   * Called after each socket read: while the server-wide buffer budget is under pressure, the
   * upload's gathered data goes to the disk now rather than waiting in memory for more.
   */
  relieve(): void {
    if (this.flow.ctx.budget?.underPressure) this.state.upload?.relieve();
  }

  /** Waits until the upload's queued writes are done (failures surface at the next packet). */
  async drain(): Promise<void> {
    await this.state.upload?.drain().catch(() => undefined);
  }

  /**
   * The fast path for the bulk of an upload, on the raw frame (header at `offset` of `buf`): a
   * 1028 continuing the upload in progress (not its last packet) is taken here and true
   * returned; anything else is left to `handle`. `buf` is used synchronously only.
   */
  fastPacket(buf: Buffer, offset: number, code: number, payloadSize: number): boolean {
    const up = this.state.upload;
    if (up === undefined || code !== RequestCode.SEND_FILE || up.failed) return false;
    if (!up.continuesFrame(buf, offset, payloadSize)) return false;
    up.acceptFrameContent(buf, offset, payloadSize);
    up.nextPacket++;
    return true;
  }

  /**
   * Handles one request. Synchronous (undefined: no answer) for a packet that continues the
   * upload in progress or belongs to a broken one; otherwise a promise of the answer. Views in
   * `d` may be used only synchronously: they are copied before anything is awaited.
   */
  handle(d: DecodedRequest): Promise<Response | undefined> | undefined {
    const flow = this.flow;
    if (d.ok && d.request.code === RequestCode.SEND_FILE) {
      const req = d.request;
      const up = this.state.upload;
      const fields = fieldsOf(req);
      if (
        up !== undefined &&
        up.continues(req.clientId, fields) &&
        !up.failed &&
        !up.isLast(fields)
      ) {
        up.accept(req.content);
        up.nextPacket++;
        return undefined;
      }
      if (dropsAsBroken(flow, req.clientId, fields)) return undefined;
    } else if (!d.ok && d.header.code === RequestCode.SEND_FILE) {
      const raw = readSendFileFrame(d.payload);
      if (raw !== undefined && dropsAsBroken(flow, d.header.clientId, raw)) return undefined;
    }
    return this.run(ownDecodedRequest(d));
  }

  /** A framing error (§9): answer 1607; the connection closes after it. */
  async fatal(err: unknown, code: number | undefined): Promise<Response> {
    await abandonUpload(this.flow, 'framing error');
    const wire = toWire(err, { code: code ?? 0, clientId: Buffer.alloc(Size.CLIENT_ID) });
    this.flow.log[wire.level]({ code, reason: wire.reason, err: describe(err) }, 'request refused');
    return wire.response;
  }

  /** The connection is gone: drop an unfinished upload (no file, no row, §5.4). */
  async dispose(): Promise<void> {
    this.state.disposed = true;
    await abandonUpload(this.flow, 'connection closed');
  }

  private async run(d: DecodedRequest): Promise<Response | undefined> {
    const started = performance.now();
    const { header } = d;
    const flow = this.flow;
    // Any request that was not dropped in `handle` ends a broken upload's silence.
    this.state.broken = undefined;
    try {
      if (!d.ok) throw d.error;
      const response = await this.dispatch(d.request);
      if (d.request.code !== RequestCode.SEND_FILE) {
        flow.audit.logOutcome(d.request, header, response, started);
      }
      return response;
    } catch (err) {
      // First: on a full disk this gives up the space reserve, so the audit row below commits.
      await flow.ctx.space?.failed(err);
      const wire = toWire(err, { code: header.code, clientId: header.clientId });
      if (header.code === RequestCode.SEND_FILE) {
        const fields = d.ok
          ? d.request.code === RequestCode.SEND_FILE
            ? fieldsOf(d.request)
            : undefined
          : readSendFileFrame(d.payload);
        await breakUpload(flow, header.clientId, fields);
      }
      if (wire.outcome !== undefined) {
        const clientId = header.code === RequestCode.REGISTER ? null : header.clientId;
        await flow.audit.write(
          header.code,
          clientId,
          d.ok ? d.request : undefined,
          wire.outcome,
          wire.reason,
        );
      }
      flow.log[wire.level](
        {
          client: clientIdToHex(header.clientId),
          code: header.code,
          ...requestNames(d.ok ? d.request : undefined),
          result: wire.response.code,
          reason: wire.reason,
          ms: elapsed(started),
          ...(wire.level === 'error' ? { err } : { detail: describe(err) }),
        },
        'request refused',
      );
      return wire.response;
    }
  }

  private dispatch(request: Request): Promise<Response | undefined> {
    const flow = this.flow;
    switch (request.code) {
      case RequestCode.REGISTER:
        return handleRegister(flow, request);
      case RequestCode.SEND_PUBLIC_KEY:
        return handleSendPublicKey(flow, request);
      case RequestCode.RECONNECT:
        return handleReconnect(flow, request);
      case RequestCode.SEND_FILE:
        return handleSendFile(flow, request);
      case RequestCode.CHECKSUM_OK:
      case RequestCode.CHECKSUM_RETRY:
      case RequestCode.CHECKSUM_ABORT:
        return handleChecksum(flow, request);
      default:
        return assertNever(request, 'request');
    }
  }
}
