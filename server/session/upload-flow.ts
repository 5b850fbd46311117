/**
 * 1028 uploads (docs/protocol.md §5.4): packet 1 opens an upload on this connection's bound
 * client, packets 2..N continue it, packet N commits it and is answered 1603. A packet that is
 * refused breaks the upload: its later packets are dropped without an answer (§9).
 */
import { performance } from 'node:perf_hooks';
import { RequestCode, ResponseCode } from '../../protocol/v3/constants';
import type { Response, SendFileRequest } from '../../protocol/v3/messages';
import { CryptoError, CryptoErrorCode } from '../../shared/crypto';
import { requireBinding, requireNotLockedOut } from './binding';
import type { BrokenUpload, Flow } from './context';
import { elapsed } from './audit';
import { SessionError, sessionError, SessionErrorCode } from './session-error';
import { Upload, type UploadFrameFields } from './upload';

export async function handleSendFile(
  flow: Flow,
  req: SendFileRequest,
): Promise<Response | undefined> {
  const up = flow.state.upload;
  const fields = fieldsOf(req);
  if (up !== undefined && up.continues(req.clientId, fields)) {
    if (up.failed) await up.drain(); // throws the write failure
    up.accept(req.content);
    up.nextPacket++;
    // Only the last packet leaves the fast path while continuing (see Session.handle).
    return finishUpload(flow, up, req);
  }
  if (up !== undefined) {
    const why = req.packetNumber === 1 ? 'restarted by packet 1' : 'broken by a packet';
    await abandonUpload(flow, why);
    if (req.packetNumber !== 1) {
      throw up.matches(req.clientId, fields)
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
  return startUpload(flow, req);
}

async function startUpload(flow: Flow, req: SendFileRequest): Promise<Response | undefined> {
  const { ctx, state } = flow;
  const { store, files, sources, limits } = ctx;
  const binding = requireBinding(flow, req.clientId, '1028');
  const clientIdHex = binding.clientIdHex;
  requireNotLockedOut(flow, clientIdHex);
  if (req.origSize > limits.maxFileSize) {
    throw sessionError(
      SessionErrorCode.FILE_TOO_LARGE,
      `file of ${req.origSize} bytes is over the limit of ${limits.maxFileSize}`,
    );
  }
  const clientId = binding.clientId;
  let releaseQuota = (): void => undefined;
  if (limits.quota < Number.MAX_SAFE_INTEGER) {
    const replaced = await store.findFile(clientId, req.fileName);
    // Read last and used at once: the store's queue is in order, so an upload that commits
    // after this read still holds its reservation when the check below runs.
    const stored = await store.storedBytes(clientId);
    const reserved = ctx.quotaLedger.reservedBy(clientIdHex);
    const after = stored - (replaced?.status === 'failed' ? 0 : (replaced?.size ?? 0));
    if (after + reserved + req.origSize > limits.quota) {
      throw sessionError(
        SessionErrorCode.QUOTA_EXCEEDED,
        `storing ${req.origSize} bytes would pass the quota of ${limits.quota}` +
          (reserved > 0 ? ` (${reserved} bytes are being uploaded)` : ''),
      );
    }
    releaseQuota = ctx.quotaLedger.reserve(clientIdHex, req.origSize);
  }
  let sink;
  try {
    await ctx.space?.admit(req.origSize);
    await store.touch(clientId, sources.now());
    sink = await files.beginUpload(clientIdHex, req.fileName);
  } catch (err) {
    releaseQuota();
    throw err;
  }
  const upload = new Upload(
    {
      clientId,
      clientIdHex,
      fileName: req.fileName,
      contentSize: req.contentSize,
      origSize: req.origSize,
      totalPackets: req.totalPackets,
    },
    binding.aesKey,
    sink,
    performance.now(),
    ctx.budget,
    ctx.memory,
  );
  if (state.disposed) {
    // The connection closed while the sink was being opened.
    releaseQuota();
    await upload.abort();
    return undefined;
  }
  state.upload = upload;
  state.setQuotaRelease(releaseQuota);
  upload.accept(req.content);
  upload.nextPacket = 2;
  flow.log.debug(
    { client: clientIdHex, file: req.fileName, bytes: req.origSize, packets: req.totalPackets },
    'upload started',
  );
  return req.totalPackets === 1 ? finishUpload(flow, upload, req) : undefined;
}

async function finishUpload(flow: Flow, up: Upload, req: SendFileRequest): Promise<Response> {
  const { ctx, state } = flow;
  const { store, sources } = ctx;
  // Detached first: whatever happens below, this upload is over.
  state.upload = undefined;
  const releaseQuota = state.takeQuotaRelease();
  const { clientId, clientIdHex, fileName } = up.id;
  const now = sources.now();
  // The rename and the row change together: another connection of this client may be
  // uploading or removing (1031) the same file right now.
  const done = await ctx.fileLocks
    .run(`${clientIdHex}/${fileName}`, async () => {
      let committed;
      try {
        committed = await up.finish();
      } catch (err) {
        await up.abort();
        if (isDecryptFailure(err)) await countDecryptFailure(flow, up, req);
        throw err;
      }
      try {
        await store.putFile(
          {
            clientId,
            fileName,
            objectKey: committed.pathName,
            size: committed.plaintextBytes,
            cksum: committed.cksum,
            updatedAt: now,
          },
          flow.audit.entry(req.code, clientId, req, 'file_stored'),
        );
      } catch (err) {
        // The old row stays: put back the file it names, or remove what the commit made visible.
        await committed.unpublish().catch(() => undefined);
        throw err;
      }
      return committed;
    })
    .finally(releaseQuota);
  state.storedHere.add(fileName);
  await store.touch(clientId, now);
  flow.log.info(
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

/** The repeated fields of a decoded 1028, in the form the predicate compares. */
export function fieldsOf(req: SendFileRequest): UploadFrameFields {
  return {
    contentSize: req.contentSize,
    origSize: req.origSize,
    packetNumber: req.packetNumber,
    totalPackets: req.totalPackets,
    nameKey: nameKeyOf(req.fileName),
  };
}

/** The name's bytes as latin1: the key raw frames are compared by, even undecodable ones. */
export function nameKeyOf(fileName: string): string {
  return Buffer.from(fileName, 'utf8').toString('latin1');
}

/** Bad padding or sizes that do not add up: what a key guesser produces (§9). */
function isDecryptFailure(err: unknown): boolean {
  return (
    (err instanceof CryptoError && err.code === CryptoErrorCode.BAD_PADDING) ||
    (err instanceof SessionError && err.code === SessionErrorCode.SIZE_MISMATCH)
  );
}

async function countDecryptFailure(flow: Flow, up: Upload, req: SendFileRequest): Promise<void> {
  const { clientId, clientIdHex } = up.id;
  await flow.audit.write(req.code, clientId, req, 'decrypt_failed');
  if (flow.ctx.lockout.recordFailure(clientIdHex, flow.remoteAddress) === 'locked') {
    const { lockMs } = flow.ctx.limits.lockout;
    await flow.audit.write(req.code, clientId, req, 'locked_out', `for ${lockMs} ms`);
    flow.log.warn(
      { client: clientIdHex, lockMs },
      'repeated decrypt failures: 1027/1028 for this client from this address refused',
    );
  }
}

/** Drops the upload in progress, if any (a new request means the client gave it up). */
export async function abandonUpload(flow: Flow, reason: string): Promise<void> {
  const { state } = flow;
  const up = state.upload;
  if (up === undefined) return;
  state.upload = undefined;
  state.takeQuotaRelease()();
  flow.log.info(
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
    flow.log.error({ err, client: up.id.clientIdHex }, 'could not remove temp file');
  }
}

/** After a 1607 to a packet: later packets of the same upload get no answer (§9). */
export async function breakUpload(
  flow: Flow,
  clientId: Buffer,
  fields: UploadFrameFields | undefined,
): Promise<void> {
  if (flow.state.upload !== undefined) await abandonUpload(flow, 'refused packet');
  flow.state.broken =
    fields !== undefined && fields.packetNumber < fields.totalPackets
      ? {
          clientId: Buffer.from(clientId),
          nameKey: fields.nameKey,
          contentSize: fields.contentSize,
          origSize: fields.origSize,
          totalPackets: fields.totalPackets,
          lastPacket: fields.packetNumber,
        }
      : undefined;
}

/** True (and counted) if the packet is the next one of the broken upload: dropped silently. */
export function dropsAsBroken(flow: Flow, clientId: Buffer, f: UploadFrameFields): boolean {
  const b: BrokenUpload | undefined = flow.state.broken;
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
  if (b.lastPacket >= b.totalPackets) flow.state.broken = undefined;
  return true;
}
