/**
 * The per-connection state machine of PROTOCOL.md §5. It sees decoded requests in order and
 * returns the response of each (or none, §5.5 1030); it knows nothing of sockets or files,
 * only the storage interfaces, so tests drive it with an in-memory or failing store.
 *
 * `handle` is synchronous for the common case, a packet continuing the upload in progress:
 * its ciphertext goes into the batch and nothing is awaited. Everything else runs as one
 * async step; the connection does not hand in the next request before that step resolves.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { RequestCode, ResponseCode, Size } from '../../protocol/v3/constants';
import { assertNever } from '../../protocol/errors';
import type { DecodedRequest } from '../../protocol/v3/decode';
import type {
  ChecksumRequest,
  ReconnectRequest,
  RegisterRequest,
  Request,
  RequestHeader,
  Response,
  SendFileRequest,
  SendPublicKeyRequest,
} from '../../protocol/v3/messages';
import { clientIdToHex } from '../../shared/client-id';
import { encodePublicKeyField, parsePublicKeyField, wrapAesKey } from '../../shared/crypto';
import type { ServerLimits } from '../transport/limits';
import type { MemoryNudge } from '../gc-nudge';
import type { QuotaLedger } from './quota-ledger';
import { sessionError, SessionErrorCode } from './session-error';
import type { Sources } from './sources';
import type {
  AuditEntry,
  AuditOutcome,
  ClientRecord,
  ClientStore,
  FileStore,
} from '../storage/types';
import { toWire } from './to-wire';
import { Upload } from './upload';

/** What every session of one server shares. */
export interface SessionContext {
  readonly store: ClientStore;
  readonly files: FileStore;
  readonly sources: Sources;
  readonly limits: ServerLimits;
  /** Registration rate limit per remote address (issue 6). */
  readonly registerLimiter: { take(key: string): boolean };
  /** Serializes changes to one stored file (`<client hex>/<name>`) across connections. */
  readonly fileLocks: { run<T>(key: string, work: () => Promise<T>): Promise<T> };
  /** Bytes of uploads in progress per client, for `--quota`. */
  readonly quotaLedger: QuotaLedger;
  /** Keeps dead buffers of uploads from piling up between collections (gc-nudge.ts). */
  readonly memory?: MemoryNudge;
}

/** Offsets of the fixed 1028 fields in its payload (§3). */
const SEND_FILE_AT = { CONTENT_SIZE: 0, ORIG_SIZE: 4, PACKET: 8, TOTAL: 10, NAME: 12 } as const;

/**
 * An upload that was answered with 1607: its remaining packets are dropped without an answer,
 * so a client that sends all packets before reading sees one 1607 per attempt.
 */
interface BrokenUpload {
  readonly clientId: Buffer;
  /** Raw file-name field bytes up to the NUL, as latin1 (the name may not decode). */
  readonly nameKey: string;
  readonly contentSize: number;
  readonly origSize: number;
  readonly totalPackets: number;
  lastPacket: number;
}

interface RawSendFileFields {
  readonly contentSize: number;
  readonly origSize: number;
  readonly packetNumber: number;
  readonly totalPackets: number;
  readonly nameKey: string;
}

/** Reads 1028 fields without validating them; undefined if the payload is too short. */
function readRawSendFile(payload: Buffer): RawSendFileFields | undefined {
  if (payload.length < Size.SEND_FILE_FIXED) return undefined;
  const nameStart = SEND_FILE_AT.NAME;
  const nul = payload.indexOf(0, nameStart);
  const nameEnd = nul < 0 || nul > nameStart + Size.STRING255 ? nameStart + Size.STRING255 : nul;
  return {
    contentSize: payload.readUInt32LE(SEND_FILE_AT.CONTENT_SIZE),
    origSize: payload.readUInt32LE(SEND_FILE_AT.ORIG_SIZE),
    packetNumber: payload.readUInt16LE(SEND_FILE_AT.PACKET),
    totalPackets: payload.readUInt16LE(SEND_FILE_AT.TOTAL),
    nameKey: payload.toString('latin1', nameStart, nameEnd),
  };
}

function nameKeyOf(fileName: string): string {
  return Buffer.from(fileName, 'utf8').toString('latin1');
}

/** A decoded request whose buffers outlive the decoder callback. */
type OwnedRequest = DecodedRequest;

/** Copies the views of a decoded request so it can be handled after the callback returned. */
export function ownDecodedRequest(d: DecodedRequest): OwnedRequest {
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
  private upload: Upload | undefined;
  private broken: BrokenUpload | undefined;
  /** Gives back the `--quota` reservation of the upload in progress. */
  private releaseQuota: () => void = () => undefined;
  private disposed = false;

  constructor(
    private readonly ctx: SessionContext,
    private readonly remoteAddress: string,
    private readonly log: Logger,
  ) {}

  /** An upload has started and not finished: the connection is not idle. */
  get uploadInProgress(): boolean {
    return this.upload !== undefined;
  }

  /** Plaintext waiting for the disk; the connection stops reading above a threshold. */
  get pendingWriteBytes(): number {
    return this.upload?.pendingBytes ?? 0;
  }

  /** Waits until the upload's queued writes are done (failures surface at the next packet). */
  async drain(): Promise<void> {
    await this.upload?.drain().catch(() => undefined);
  }

  /**
   * The fast path for the bulk of an upload, on the raw frame (header at `offset` of `buf`): a
   * 1028 continuing the upload in progress (not its last packet) is taken here and true
   * returned; anything else is left to `handle`. `buf` is used synchronously only.
   */
  fastPacket(buf: Buffer, offset: number, code: number, payloadSize: number): boolean {
    const up = this.upload;
    if (up === undefined || code !== RequestCode.SEND_FILE || up.failed) return false;
    if (payloadSize < Size.SEND_FILE_FIXED) return false;
    const payload = offset + Size.REQUEST_HEADER;
    const packet = buf.readUInt16LE(payload + SEND_FILE_AT.PACKET);
    if (packet !== up.nextPacket || packet >= up.id.totalPackets) return false;
    if (!up.matchesRaw(buf, offset)) return false;
    up.acceptRange(buf, payload + Size.SEND_FILE_FIXED, payload + payloadSize);
    up.nextPacket++;
    return true;
  }

  /**
   * Handles one request. Synchronous (undefined: no answer) for a packet that continues the
   * upload in progress or belongs to a broken one; otherwise a promise of the answer. Views in
   * `d` may be used only synchronously: they are copied before anything is awaited.
   */
  handle(d: DecodedRequest): Promise<Response | undefined> | undefined {
    if (d.ok && d.request.code === RequestCode.SEND_FILE) {
      const req = d.request;
      const up = this.upload;
      if (
        up !== undefined &&
        !up.failed &&
        req.packetNumber === up.nextPacket &&
        req.packetNumber < req.totalPackets &&
        up.matches(req.clientId, req)
      ) {
        up.accept(req.content);
        up.nextPacket++;
        return undefined;
      }
      if (this.dropsAsBroken(req.clientId, { ...req, nameKey: nameKeyOf(req.fileName) })) {
        return undefined;
      }
    } else if (!d.ok && d.header.code === RequestCode.SEND_FILE) {
      const raw = readRawSendFile(d.payload);
      if (raw !== undefined && this.dropsAsBroken(d.header.clientId, raw)) return undefined;
    }
    return this.run(ownDecodedRequest(d));
  }

  /** A framing error (§9): answer 1607; the connection closes after it. */
  async fatal(err: unknown, code: number | undefined): Promise<Response> {
    await this.abandonUpload('framing error');
    const wire = toWire(err, { code: code ?? 0, clientId: Buffer.alloc(Size.CLIENT_ID) });
    this.log[wire.level]({ code, reason: wire.reason, err: describe(err) }, 'request refused');
    return wire.response;
  }

  /** The connection is gone: drop an unfinished upload (no file, no row, §5.4). */
  async dispose(): Promise<void> {
    this.disposed = true;
    await this.abandonUpload('connection closed');
  }

  // ------------------------------------------------------------ dispatch

  private async run(d: OwnedRequest): Promise<Response | undefined> {
    const started = performance.now();
    const { header } = d;
    let response: Response | undefined;
    // Any request that was not dropped in `handle` ends a broken upload's silence.
    this.broken = undefined;
    try {
      if (!d.ok) throw d.error;
      response = await this.dispatch(d.request);
      if (d.request.code !== RequestCode.SEND_FILE) {
        this.logOutcome(d.request, header, response, started);
      }
      return response;
    } catch (err) {
      const wire = toWire(err, { code: header.code, clientId: header.clientId });
      if (header.code === RequestCode.SEND_FILE) await this.breakUpload(d);
      if (wire.outcome !== undefined) {
        const clientId = header.code === RequestCode.REGISTER ? null : header.clientId;
        const req = d.ok ? d.request : undefined;
        await this.audit(header.code, clientId, req, wire.outcome, wire.reason);
      }
      this.log[wire.level](
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
    switch (request.code) {
      case RequestCode.REGISTER:
        return this.register(request);
      case RequestCode.SEND_PUBLIC_KEY:
        return this.sendPublicKey(request);
      case RequestCode.RECONNECT:
        return this.reconnect(request);
      case RequestCode.SEND_FILE:
        return this.sendFile(request);
      case RequestCode.CHECKSUM_OK:
      case RequestCode.CHECKSUM_RETRY:
      case RequestCode.CHECKSUM_ABORT:
        return this.checksum(request);
      default:
        return assertNever(request, 'request');
    }
  }

  // ------------------------------------------------------------ §5.1–§5.3

  private async register(req: RegisterRequest): Promise<Response> {
    await this.abandonUpload('new request');
    if (!this.ctx.registerLimiter.take(this.remoteAddress)) {
      throw sessionError(SessionErrorCode.RATE_LIMITED, 'registrations over the rate limit');
    }
    const result = await this.ctx.store.registerClient(
      this.ctx.sources.clientId(),
      req.name,
      this.ctx.sources.now(),
    );
    if (!result.ok) {
      throw sessionError(SessionErrorCode.NAME_TAKEN, 'name is taken by a client with a key');
    }
    if (result.replacedId !== undefined) {
      // §5.1: the keyless record of this name was replaced; its folder goes with it.
      const replacedHex = clientIdToHex(result.replacedId);
      await this.ctx.files.removeClient(replacedHex);
      this.log.info({ replaced: replacedHex, name: req.name }, 'keyless registration replaced');
    }
    const id = result.client.id;
    await this.audit(req.code, id, req, 'registered');
    return { code: ResponseCode.REGISTERED, clientId: id };
  }

  /** The client of a 1026/1027: its id must be known and its name the one on record (§5.2-5.3). */
  private async clientNamed(req: SendPublicKeyRequest | ReconnectRequest): Promise<ClientRecord> {
    const client = await this.ctx.store.findClientById(req.clientId);
    if (!client) throw sessionError(SessionErrorCode.UNKNOWN_CLIENT, 'unknown client id');
    if (client.name !== req.name) {
      throw sessionError(SessionErrorCode.NAME_MISMATCH, 'name does not match the client id');
    }
    return client;
  }

  private async sendPublicKey(req: SendPublicKeyRequest): Promise<Response> {
    await this.abandonUpload('new request');
    const { store, sources } = this.ctx;
    const client = await this.clientNamed(req);
    if (client.publicKey !== null) {
      throw sessionError(SessionErrorCode.KEY_ALREADY_SET, 'client already has a public key');
    }
    const publicKey = parsePublicKeyField(req.publicKey);
    const aesKey = sources.aesKey();
    const wrappedKey = wrapAesKey(publicKey, aesKey);
    const der = publicKey.export({ type: 'spki', format: 'der' });
    if (!(await store.setPublicKey(client.id, der, aesKey, sources.now()))) {
      throw sessionError(SessionErrorCode.KEY_ALREADY_SET, 'client already has a public key');
    }
    await this.audit(req.code, client.id, req, 'key_set');
    return { code: ResponseCode.KEY_ACCEPTED, clientId: client.id, wrappedKey };
  }

  private async reconnect(req: ReconnectRequest): Promise<Response> {
    await this.abandonUpload('new request');
    const { store, sources } = this.ctx;
    const client = await this.clientNamed(req);
    if (client.publicKey === null) {
      throw sessionError(SessionErrorCode.NO_KEY, 'client never sent a public key');
    }
    const publicKey = parsePublicKeyField(encodePublicKeyField(client.publicKey));
    const aesKey = sources.aesKey();
    const wrappedKey = wrapAesKey(publicKey, aesKey);
    await store.setAesKey(client.id, aesKey, sources.now());
    await this.audit(req.code, client.id, req, 'reconnected');
    return { code: ResponseCode.RECONNECTED, clientId: client.id, wrappedKey };
  }

  // ------------------------------------------------------------ §5.4 upload

  private continuesUpload(req: SendFileRequest): boolean {
    const up = this.upload;
    return up !== undefined && req.packetNumber === up.nextPacket && up.matches(req.clientId, req);
  }

  private async sendFile(req: SendFileRequest): Promise<Response | undefined> {
    const up = this.upload;
    if (up !== undefined && this.continuesUpload(req)) {
      if (up.failed) await up.drain(); // throws the write failure
      up.accept(req.content);
      up.nextPacket++;
      // Only the last packet leaves the fast path while continuing (see `handle`).
      return this.finishUpload(up, req);
    }
    if (up !== undefined) {
      const why = req.packetNumber === 1 ? 'restarted by packet 1' : 'broken by a packet';
      await this.abandonUpload(why);
      if (req.packetNumber !== 1) {
        throw up.matches(req.clientId, req)
          ? sessionError(
              SessionErrorCode.OUT_OF_ORDER,
              `packet ${req.packetNumber} arrived, ${up.nextPacket} expected`,
            )
          : sessionError(SessionErrorCode.FIELDS_CHANGED, 'packet fields differ from packet 1');
      }
    } else if (req.packetNumber !== 1) {
      throw sessionError(
        SessionErrorCode.NO_UPLOAD,
        `packet ${req.packetNumber} with no upload in progress`,
      );
    }
    return this.startUpload(req);
  }

  private async startUpload(req: SendFileRequest): Promise<Response | undefined> {
    const { store, files, sources, limits } = this.ctx;
    const client = await store.findClientById(req.clientId);
    if (!client) throw sessionError(SessionErrorCode.UNKNOWN_CLIENT, 'unknown client id');
    if (client.aesKey === null) {
      throw sessionError(SessionErrorCode.NO_KEY, 'client has no AES key yet');
    }
    if (req.origSize > limits.maxFileSize) {
      throw sessionError(
        SessionErrorCode.FILE_TOO_LARGE,
        `file of ${req.origSize} bytes is over the limit of ${limits.maxFileSize}`,
      );
    }
    const clientIdHex = clientIdToHex(client.id);
    let releaseQuota = (): void => undefined;
    if (limits.quota < Number.MAX_SAFE_INTEGER) {
      const replaced = await store.findFile(client.id, req.fileName);
      // Read last and used at once: the store's queue is in order, so an upload that commits
      // after this read still holds its reservation when the check below runs.
      const stored = await store.storedBytes(client.id);
      const reserved = this.ctx.quotaLedger.reservedBy(clientIdHex);
      const after = stored - (replaced?.status === 'failed' ? 0 : (replaced?.size ?? 0));
      if (after + reserved + req.origSize > limits.quota) {
        throw sessionError(
          SessionErrorCode.QUOTA_EXCEEDED,
          `storing ${req.origSize} bytes would pass the quota of ${limits.quota}` +
            (reserved > 0 ? ` (${reserved} bytes are being uploaded)` : ''),
        );
      }
      releaseQuota = this.ctx.quotaLedger.reserve(clientIdHex, req.origSize);
    }
    let sink;
    try {
      await store.touch(client.id, sources.now());
      sink = await files.beginUpload(clientIdHex, req.fileName);
    } catch (err) {
      releaseQuota();
      throw err;
    }
    const upload = new Upload(
      {
        clientId: client.id,
        clientIdHex,
        fileName: req.fileName,
        contentSize: req.contentSize,
        origSize: req.origSize,
        totalPackets: req.totalPackets,
      },
      client.aesKey,
      sink,
      performance.now(),
      this.ctx.memory,
    );
    if (this.disposed) {
      // The connection closed while the sink was being opened.
      releaseQuota();
      await upload.abort();
      return undefined;
    }
    this.upload = upload;
    this.releaseQuota = releaseQuota;
    upload.accept(req.content);
    upload.nextPacket = 2;
    this.log.debug(
      { client: clientIdHex, file: req.fileName, bytes: req.origSize, packets: req.totalPackets },
      'upload started',
    );
    return req.totalPackets === 1 ? this.finishUpload(upload, req) : undefined;
  }

  private async finishUpload(up: Upload, req: SendFileRequest): Promise<Response> {
    const { store, files, sources } = this.ctx;
    // Detached first: whatever happens below, this upload is over.
    this.upload = undefined;
    const releaseQuota = this.takeQuotaRelease();
    const { clientId, clientIdHex, fileName } = up.id;
    const now = sources.now();
    // The rename and the row change together: another connection of this client may be
    // uploading or removing (1031) the same file right now.
    const done = await this.ctx.fileLocks
      .run(`${clientIdHex}/${fileName}`, async () => {
        let committed;
        try {
          committed = await up.finish();
        } catch (err) {
          await up.abort();
          throw err;
        }
        try {
          await store.putFile(
            {
              clientId,
              fileName,
              pathName: committed.pathName,
              size: committed.plaintextBytes,
              cksum: committed.cksum,
              updatedAt: now,
            },
            this.auditEntry(req.code, clientId, req, 'file_stored'),
          );
        } catch (err) {
          // No row, no file: remove what the commit made visible.
          await files.remove(clientIdHex, fileName).catch(() => undefined);
          throw err;
        }
        return committed;
      })
      .finally(releaseQuota);
    await store.touch(clientId, now);
    this.log.info(
      {
        client: clientIdHex,
        file: fileName,
        code: RequestCode.SEND_FILE,
        result: ResponseCode.FILE_RECEIVED,
        bytes: done.plaintextBytes,
        packets: req.totalPackets,
        cksum: done.cksum,
        ms: elapsed(up.startedAt),
      },
      'upload stored',
    );
    return {
      code: ResponseCode.FILE_RECEIVED,
      clientId,
      contentSize: req.contentSize,
      fileName,
      cksum: done.cksum,
    };
  }

  /** Drops the upload in progress, if any (a new request means the client gave it up). */
  private async abandonUpload(reason: string): Promise<void> {
    const up = this.upload;
    if (up === undefined) return;
    this.upload = undefined;
    this.takeQuotaRelease()();
    this.log.info(
      {
        client: up.id.clientIdHex,
        file: up.id.fileName,
        packet: up.nextPacket - 1,
        packets: up.id.totalPackets,
        reason,
      },
      'upload abandoned',
    );
    try {
      await up.abort();
    } catch (err) {
      this.log.error({ err, client: up.id.clientIdHex }, 'could not remove temp file');
    }
  }

  /** The quota release of the upload in progress, leaving a no-op in its place. */
  private takeQuotaRelease(): () => void {
    const release = this.releaseQuota;
    this.releaseQuota = () => undefined;
    return release;
  }

  /** After a 1607 to a packet: later packets of the same upload get no answer (§9). */
  private async breakUpload(d: OwnedRequest): Promise<void> {
    const up = this.upload;
    let fields: RawSendFileFields | undefined;
    if (d.ok && d.request.code === RequestCode.SEND_FILE) {
      fields = { ...d.request, nameKey: nameKeyOf(d.request.fileName) };
    } else if (!d.ok) {
      fields = readRawSendFile(d.payload);
    }
    if (up !== undefined) await this.abandonUpload('refused packet');
    this.broken =
      fields !== undefined && fields.packetNumber < fields.totalPackets
        ? {
            clientId: Buffer.from(d.header.clientId),
            nameKey: fields.nameKey,
            contentSize: fields.contentSize,
            origSize: fields.origSize,
            totalPackets: fields.totalPackets,
            lastPacket: fields.packetNumber,
          }
        : undefined;
  }

  private dropsAsBroken(clientId: Buffer, f: RawSendFileFields): boolean {
    const b = this.broken;
    if (
      b === undefined ||
      f.packetNumber !== b.lastPacket + 1 ||
      f.contentSize !== b.contentSize ||
      f.origSize !== b.origSize ||
      f.totalPackets !== b.totalPackets ||
      f.nameKey !== b.nameKey ||
      !clientId.equals(b.clientId)
    ) {
      return false;
    }
    b.lastPacket = f.packetNumber;
    if (b.lastPacket >= b.totalPackets) this.broken = undefined;
    return true;
  }

  // ------------------------------------------------------------ §5.5 confirm

  private async checksum(req: ChecksumRequest): Promise<Response | undefined> {
    await this.abandonUpload('new request');
    const { store, files, sources } = this.ctx;
    const client = await store.findClientById(req.clientId);
    if (!client) throw sessionError(SessionErrorCode.UNKNOWN_CLIENT, 'unknown client id');
    const now = sources.now();
    await store.touch(client.id, now);
    const ack: Response = { code: ResponseCode.ACKNOWLEDGED, clientId: client.id };
    switch (req.code) {
      case RequestCode.CHECKSUM_OK: {
        // A file given up by 1031 is deleted: it cannot be verified any more.
        const known = await this.ctx.fileLocks.run(
          `${clientIdToHex(client.id)}/${req.fileName}`,
          async () => {
            const file = await store.findFile(client.id, req.fileName);
            if (file === undefined || file.status === 'failed') return false;
            const audit = this.auditEntry(req.code, client.id, req, 'checksum_ok');
            return store.setFileStatus(client.id, req.fileName, 'verified', now, audit);
          },
        );
        if (!known) {
          throw sessionError(SessionErrorCode.UNKNOWN_FILE, 'no such file for this client');
        }
        return ack;
      }
      case RequestCode.CHECKSUM_RETRY:
        // No answer: the client re-sends the whole upload, whose packet 1 restarts it (§5.5).
        await this.audit(req.code, client.id, req, 'checksum_retry');
        return undefined;
      case RequestCode.CHECKSUM_ABORT: {
        const hex = clientIdToHex(client.id);
        // Under the file's lock, so an upload of this name committing now cannot interleave.
        const known = await this.ctx.fileLocks.run(`${hex}/${req.fileName}`, async () => {
          const audit = this.auditEntry(req.code, client.id, req, 'checksum_failed');
          if (!(await store.setFileStatus(client.id, req.fileName, 'failed', now, audit))) {
            return false;
          }
          await files.remove(hex, req.fileName);
          return true;
        });
        if (!known) {
          throw sessionError(SessionErrorCode.UNKNOWN_FILE, 'no such file for this client');
        }
        return ack;
      }
      default:
        return assertNever(req.code, 'checksum request code');
    }
  }

  // ------------------------------------------------------------ audit and logs

  /** Writes an audit row; a failing audit write is logged, never fails the request. */
  private async audit(
    code: number,
    clientId: Buffer | null,
    req: Request | undefined,
    outcome: AuditOutcome,
    reason?: string,
  ): Promise<void> {
    const entry = this.auditEntry(code, clientId, req, outcome, reason);
    try {
      await this.ctx.store.audit(entry);
    } catch (err) {
      this.log.error({ err, outcome }, 'could not write the audit trail');
    }
  }

  /** The audit row of a request; state changes pass it to the store to commit with them. */
  private auditEntry(
    code: number,
    clientId: Buffer | null,
    req: Request | undefined,
    outcome: AuditOutcome,
    reason?: string,
  ): AuditEntry {
    const names = requestNames(req);
    const detail = [names.file, reason].filter((s) => s !== undefined).join(': ');
    return {
      time: this.ctx.sources.now(),
      remoteAddress: this.remoteAddress,
      clientId,
      name: names.name ?? null,
      requestCode: code,
      outcome,
      ...(detail ? { detail } : {}),
    };
  }

  private logOutcome(
    req: Request,
    header: RequestHeader,
    response: Response | undefined,
    started: number,
  ): void {
    const client =
      response !== undefined && 'clientId' in response ? response.clientId : header.clientId;
    this.log.info(
      {
        client: clientIdToHex(client),
        code: req.code,
        ...requestNames(req),
        result: response?.code ?? 'none',
        ms: elapsed(started),
      },
      'request',
    );
  }
}

function requestNames(req: Request | undefined): { name?: string; file?: string } {
  if (req === undefined) return {};
  switch (req.code) {
    case RequestCode.REGISTER:
    case RequestCode.SEND_PUBLIC_KEY:
    case RequestCode.RECONNECT:
      return { name: req.name };
    case RequestCode.SEND_FILE:
    case RequestCode.CHECKSUM_OK:
    case RequestCode.CHECKSUM_RETRY:
    case RequestCode.CHECKSUM_ABORT:
      return { file: req.fileName };
    default:
      return assertNever(req, 'request');
  }
}

function elapsed(since: number): number {
  return Math.round((performance.now() - since) * 100) / 100;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
