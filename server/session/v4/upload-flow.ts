/**
 * Uploads of version 4 (docs/protocol-v4.md §5.4, §5.5): UPLOAD_BEGIN opens or resumes the
 * partial of (client, name, size, content check) and answers the durable offset; DATA is
 * appended and hashed; UPLOAD_END compares the client's SHA-256 with the bytes received and
 * only then publishes the file, verified, through the same file store and catalog as v3.
 */
import { createHash, type Hash } from 'node:crypto';
import { RequestCode, ResponseCode } from '../../../protocol/v4/constants';
import type { Stored, UploadBegin, UploadEnd, UploadOffset } from '../../../protocol/v4/messages';
import { Cksum } from '../../../shared/cksum';
import type { AuditEntry } from '../../storage/types';
import { v4Error, type PartialUpload, type V4Context } from './context';
import type { BoundClient } from './identity-flows';

/** v4 message codes in audit rows sit beside v3's 1025–1031 (docs/protocol-v4.md §7). */
export type AuditFor = (code: number, outcome: AuditEntry['outcome'], detail: string) => AuditEntry;

export class V4Upload {
  private received: number;
  private lastCheckpoint: number;
  private done = false;
  private checkpointing: Promise<void> | undefined;
  private checkpointFailure: unknown;

  private constructor(
    private readonly ctx: V4Context,
    readonly key: string,
    readonly fileName: string,
    readonly size: number,
    private readonly partial: PartialUpload,
    private readonly sha: Hash,
    private readonly cksum: Cksum,
    private readonly releaseQuota: () => void,
    now: number,
  ) {
    this.received = partial.offset;
    this.lastCheckpoint = now;
  }

  get offset(): number {
    return this.received;
  }

  /** Checks limits, opens (or resumes) the partial and re-hashes what it already holds. */
  static async begin(
    ctx: V4Context,
    client: BoundClient,
    req: UploadBegin,
  ): Promise<{ upload: V4Upload; response: UploadOffset }> {
    const { limits, quotaLedger, store } = ctx.base;
    if (req.size > limits.maxFileSize) {
      throw v4Error('FILE_TOO_LARGE', `${req.size} bytes is over ${limits.maxFileSize}`);
    }
    const key = `${client.clientIdHex}/${req.fileName}`;
    if (ctx.activeUploads.has(key)) {
      throw v4Error('BUSY', 'another connection is uploading this file');
    }
    let releaseQuota = (): void => undefined;
    if (limits.quota < Number.MAX_SAFE_INTEGER) {
      const stored = await store.storedBytes(client.clientId);
      const previous = await store.findFile(client.clientId, req.fileName);
      // Replacing a file frees its bytes, as in v3.
      const after = stored - (previous && previous.status !== 'failed' ? previous.size : 0);
      if (after + quotaLedger.reservedBy(client.clientIdHex) + req.size > limits.quota) {
        throw v4Error('QUOTA_EXCEEDED', `storing ${req.size} bytes would pass the quota`);
      }
      releaseQuota = quotaLedger.reserve(client.clientIdHex, req.size);
    }
    ctx.activeUploads.add(key);
    try {
      const now = ctx.base.sources.now();
      const partial = await ctx.partials.open({
        clientIdHex: client.clientIdHex,
        fileName: req.fileName,
        size: req.size,
        check: req.check,
      });
      const sha = createHash('sha256');
      const cksum = new Cksum();
      for await (const chunk of partial.contents(partial.offset)) {
        sha.update(chunk);
        cksum.update(chunk);
      }
      const upload = new V4Upload(
        ctx,
        key,
        req.fileName,
        req.size,
        partial,
        sha,
        cksum,
        releaseQuota,
        now,
      );
      return { upload, response: { code: ResponseCode.UPLOAD_OFFSET, offset: partial.offset } };
    } catch (err) {
      ctx.activeUploads.delete(key);
      releaseQuota();
      throw err;
    }
  }

  /** Appends one DATA payload (a copy the caller no longer touches). */
  async data(data: Buffer): Promise<void> {
    if (this.received + data.length > this.size) {
      throw v4Error('SIZE_MISMATCH', `data past the announced ${this.size} bytes`);
    }
    this.sha.update(data);
    this.cksum.update(data);
    this.received += data.length;
    await this.partial.write(data);
    const now = this.ctx.base.sources.now();
    if (now - this.lastCheckpoint >= this.ctx.checkpointIntervalMs && !this.checkpointing) {
      this.lastCheckpoint = now;
      // In the background: the data keeps flowing while the disk syncs what came before.
      this.checkpointing = this.partial
        .checkpoint()
        .then(
          () => undefined,
          (err: unknown) => {
            this.checkpointFailure ??= err;
          },
        )
        .finally(() => {
          this.checkpointing = undefined;
        });
    }
    if (this.checkpointFailure !== undefined) throw this.checkpointFailure;
  }

  /**
   * Verifies and publishes. The file becomes visible only here, after its SHA-256 matched;
   * a mismatch removes the partial (its bytes are wrong, resuming them would not help).
   */
  async end(client: BoundClient, req: UploadEnd, auditFor: AuditFor): Promise<Stored> {
    if (this.received !== this.size) {
      throw v4Error('SIZE_MISMATCH', `END after ${this.received} of ${this.size} bytes`);
    }
    const sha256 = this.sha.digest();
    const cksum = this.cksum.digest();
    if (!sha256.equals(req.sha256)) {
      await this.discard();
      throw v4Error('DIGEST_MISMATCH', 'SHA-256 of the received bytes differs; nothing stored');
    }
    // No checkpoint here: the published file is made durable by the file store's commit, and
    // until then the partial's last checkpoint is what a crash would resume from.
    await this.checkpointing;
    const { files, store, fileLocks, sources } = this.ctx.base;
    await fileLocks.run(this.key, async () => {
      const sink = await files.beginUpload(client.clientIdHex, this.fileName);
      try {
        await this.partial.publish(sink);
        const objectKey = await sink.commit();
        const now = sources.now();
        await store.putFile(
          {
            clientId: client.clientId,
            fileName: this.fileName,
            objectKey,
            size: this.size,
            cksum,
            updatedAt: now,
          },
          auditFor(RequestCode.UPLOAD_END, 'file_stored', `${this.fileName}: ${this.size} bytes`),
        );
        await store.setFileStatus(
          client.clientId,
          this.fileName,
          'verified',
          now,
          auditFor(
            RequestCode.UPLOAD_END,
            'checksum_ok',
            `${this.fileName}: sha256 ${sha256.toString('hex')}`,
          ),
        );
      } catch (err) {
        await sink.abort().catch(() => undefined);
        throw err;
      }
    });
    this.done = true;
    await this.partial.remove();
    this.release();
    return { code: ResponseCode.STORED, size: this.size, sha256, cksum };
  }

  /** Deletes the partial and lets go (bad bytes). */
  async discard(): Promise<void> {
    this.done = true;
    await this.checkpointing;
    try {
      await this.partial.remove();
    } finally {
      this.release();
    }
  }

  /** The connection went away or the client began another upload: keep the partial to resume. */
  async suspend(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.checkpointing;
    try {
      await this.partial.close();
    } finally {
      this.release();
    }
  }

  private release(): void {
    this.ctx.activeUploads.delete(this.key);
    this.releaseQuota();
  }
}
