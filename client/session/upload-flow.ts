/**
 * One file's upload (docs/protocol.md §5.4, §5.5): whole uploads until the server's cksum
 * matches (1029), at most `maxResends` re-sends after 1030; then 1031 and `verified: false`.
 */
import {
  RequestCode,
  ResponseCode,
  encodeRequest,
  type FileReceivedResponse,
} from '../../protocol';
import { ClientErrorCode, isClientError } from '../errors';
import { describe, ok, unusable, type FlowContext } from './flow';
import { fileNameField, sendFile } from './send-file';
import type { UploadResult } from './types';
import type { UploadPlan } from './upload-plan';

export interface UploadFlowOptions {
  readonly maxResends: number;
  /** Plaintext bytes per read/encrypt/send step. */
  readonly blockSize?: number;
  /** Milliseconds, monotonic. */
  readonly now: () => number;
}

interface Receipt {
  readonly response: FileReceivedResponse;
  /** Our cksum of the plaintext sent. */
  readonly ours: number;
}

export async function uploadFile(
  ctx: FlowContext,
  plan: UploadPlan,
  options: UploadFlowOptions,
): Promise<UploadResult> {
  const started = options.now();
  const nameField = fileNameField(plan.fileName);
  const what = `upload of ${plan.fileName}`;
  let uploads = 0;
  for (let mismatches = 0; ; mismatches++) {
    const receipt = await ctx.attempts<Receipt>(what, async () => {
      uploads++;
      ctx.events.uploadStarted?.(plan, uploads);
      const conn = ctx.conn;
      // Read per attempt: a new connection after a failed upload brings a new session key.
      const { identity, aesKey } = ctx.keys();
      const sent = await sendFile(plan, identity.clientId, aesKey, conn, {
        blockSize: options.blockSize,
        onProgress: (bytes) => ctx.events.uploadProgress?.(plan, bytes),
      });
      const r = await conn.receive(`${what} (1028)`);
      ctx.log.debug(
        r.ok ? { response: r.response.code } : { response: r.header.code },
        `answer to ${what}`,
      );
      if (sent.complete && r.ok && r.response.code === ResponseCode.FILE_RECEIVED) {
        return ok({ response: r.response, ours: sent.cksum });
      }
      // After a failed upload the server may still be answering packets we sent (§9 lets it
      // answer 1607 to each out-of-order packet), so only a new connection is in step again.
      return {
        ok: false,
        reason: sent.complete
          ? describe(r)
          : `the server answered before the upload was complete (${describe(r)})`,
        resync: true,
      };
    });
    const matched = receiptMatches(ctx, plan, receipt.response, receipt.ours);
    const result = (verified: boolean): UploadResult => ({
      file: plan.path,
      fileName: plan.fileName,
      bytes: plan.size,
      cksum: receipt.ours,
      verified,
      uploads,
      seconds: (options.now() - started) / 1000,
    });
    if (matched) {
      await confirm(ctx, RequestCode.CHECKSUM_OK, plan, nameField);
      return result(true);
    }
    if (mismatches >= options.maxResends) {
      try {
        await confirm(ctx, RequestCode.CHECKSUM_ABORT, plan, nameField);
      } catch (err) {
        // The failed checksum is what matters to the user; the missing ack only gets logged.
        if (!isClientError(err) || err.code !== ClientErrorCode.SERVER_ERROR) throw err;
        ctx.log.debug({ error: err.message }, '1031 was not acknowledged');
      }
      return result(false);
    }
    ctx.events.checksumMismatch?.(plan, receipt.ours, receipt.response.cksum, mismatches + 1);
    await ctx.conn.write(
      encodeRequest({
        code: RequestCode.CHECKSUM_RETRY,
        clientId: ctx.keys().identity.clientId,
        fileName: plan.fileName,
      }),
    );
  }
}

/**
 * §5.5 compares the cksum only. Other servers are known to fill the receipt's size or name
 * loosely, so a difference there is logged, not held against the upload.
 */
function receiptMatches(
  ctx: FlowContext,
  plan: UploadPlan,
  receipt: FileReceivedResponse,
  ours: number,
): boolean {
  if (receipt.contentSize !== plan.contentSize || receipt.fileName !== plan.fileName) {
    ctx.log.debug(
      { contentSize: receipt.contentSize, fileName: receipt.fileName },
      'receipt names another size or file name than the upload',
    );
  }
  if (receipt.cksum !== ours) {
    ctx.log.debug({ ours, theirs: receipt.cksum }, 'cksum mismatch');
    return false;
  }
  return true;
}

/** 1029 or 1031, answered by 1604, after which an echo of the file-name field is tolerated (§9). */
async function confirm(
  ctx: FlowContext,
  code: typeof RequestCode.CHECKSUM_OK | typeof RequestCode.CHECKSUM_ABORT,
  plan: UploadPlan,
  nameField: Buffer,
): Promise<void> {
  const what =
    code === RequestCode.CHECKSUM_OK
      ? `confirmation of ${plan.fileName} (1029)`
      : `report of the failed upload of ${plan.fileName} (1031)`;
  await ctx.attempts(what, async () => {
    const { identity } = ctx.keys();
    ctx.conn.skipAfterAck(nameField);
    const r = await ctx.exchange(
      encodeRequest({ code, clientId: identity.clientId, fileName: plan.fileName }),
      what,
    );
    if (r.ok && r.response.code === ResponseCode.ACKNOWLEDGED) return ok(undefined);
    return unusable(r);
  });
}
