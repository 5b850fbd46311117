/**
 * Uploads of version 4 (docs/protocol-v4.md §5.4, §5.5): UPLOAD_BEGIN opens or resumes the
 * partial of (client, name, size, content check) and answers the durable offset; DATA is
 * hashed (SHA-256 and cksum, once each) and written to the partial, what a resume continues
 * from; UPLOAD_END compares the client's SHA-256 with the bytes received and only then
 * publishes, verified, through the same file store and catalog as v3.
 *
 * Publishing moves the partial into place when the file store can adopt a local file (disk:
 * fsync, rename, folder fsync), so each byte is written once. Where it cannot (an object
 * store, memory), DATA also goes to the file store's upload sink as it arrives and the sink
 * is committed, so a finished upload still needs no copy.
 */
import { createHash, type Hash } from 'node:crypto';
import { RequestCode, ResponseCode } from '../../../protocol/v4/constants';
import type { Stored, UploadBegin, UploadEnd, UploadOffset } from '../../../protocol/v4/messages';
import { Cksum } from '../../../shared/cksum';
import type { AuditEntry, Published, UploadSink } from '../../storage/types';
import { v4Error, type PartialUpload, type V4Context } from './context';
import type { BoundClient } from './identity-flows';

/**
 * Bytes received after which a checkpoint is taken even before its interval is up: the disk
 * then writes the data while more arrives, so the sync that publishes the file (on the way to
 * STORED) has only the tail left, and a resume loses less.
 */
const CHECKPOINT_BYTES = 8 * 1024 * 1024;

/** v4 message codes in audit rows sit beside v3's 1025–1031 (docs/protocol-v4.md §7). */
export type AuditFor = (code: number, outcome: AuditEntry['outcome'], detail: string) => AuditEntry;

interface Opened {
  readonly partial: PartialUpload;
  /** Absent when the partial itself is published (adopted). */
  readonly sink: UploadSink | undefined;
  /** Makes the received bytes the file; returns its object key. */
  readonly publish: () => Promise<Published>;
  readonly sha: Hash;
  readonly cksum: Cksum;
}

export class V4Upload {
  private received: number;
  private lastCheckpoint: number;
  /** Bytes received when the last checkpoint began. */
  private checkpointedAt: number;
  private done = false;
  private checkpointing: Promise<void> | undefined;
  private checkpointFailure: unknown;
  private readonly partial: PartialUpload;
  private readonly sink: UploadSink | undefined;
  private readonly publish: () => Promise<Published>;
  private readonly sha: Hash;
  private readonly cksum: Cksum;
  /** Bytes the server held when this upload began (UPLOAD_OFFSET): where it resumed. */
  readonly resumedFrom: number;

  private constructor(
    private readonly ctx: V4Context,
    readonly key: string,
    readonly fileName: string,
    readonly size: number,
    opened: Opened,
    private readonly releaseQuota: () => void,
    now: number,
  ) {
    ({
      partial: this.partial,
      sink: this.sink,
      publish: this.publish,
      sha: this.sha,
      cksum: this.cksum,
    } = opened);
    this.received = opened.partial.offset;
    this.resumedFrom = this.received;
    this.lastCheckpoint = now;
    this.checkpointedAt = this.received;
  }

  get offset(): number {
    return this.received;
  }

  /**
   * Checks limits, opens (or resumes) the partial and hashes what it holds (replayed into a new
   * sink when the partial cannot be adopted).
   */
  static async begin(
    ctx: V4Context,
    client: BoundClient,
    req: UploadBegin,
    options: { readonly fresh?: boolean } = {},
  ): Promise<{ upload: V4Upload; response: UploadOffset }> {
    const { limits, quotaLedger, store, files } = ctx.base;
    if (req.size > limits.maxFileSize) {
      throw v4Error('FILE_TOO_LARGE', `${req.size} bytes is over ${limits.maxFileSize}`);
    }
    await ctx.base.space?.admit(req.size);
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
    let partial: PartialUpload | undefined;
    let sink: UploadSink | undefined;
    try {
      const now = ctx.base.sources.now();
      partial = await ctx.partials.open({
        clientIdHex: client.clientIdHex,
        fileName: req.fileName,
        size: req.size,
        check: req.check,
        fresh: options.fresh === true,
      });
      const { adoptUpload } = files;
      const localPath = partial.localPath;
      let publish: () => Promise<Published>;
      if (adoptUpload !== undefined && localPath !== undefined) {
        publish = () => adoptUpload(client.clientIdHex, req.fileName, localPath);
      } else {
        const opened = await files.beginUpload(client.clientIdHex, req.fileName);
        sink = opened;
        publish = () => opened.commit();
      }
      const sha = createHash('sha256');
      const cksum = new Cksum();
      for await (const chunk of partial.contents(partial.offset)) {
        sha.update(chunk);
        cksum.update(chunk);
        if (sink !== undefined) await sink.write(chunk);
      }
      const upload = new V4Upload(
        ctx,
        key,
        req.fileName,
        req.size,
        { partial, sink, publish, sha, cksum },
        releaseQuota,
        now,
      );
      return { upload, response: { code: ResponseCode.UPLOAD_OFFSET, offset: partial.offset } };
    } catch (err) {
      await sink?.abort().catch(() => undefined);
      await partial?.close().catch(() => undefined);
      ctx.activeUploads.delete(key);
      releaseQuota();
      throw err;
    }
  }

  /**
   * Appends one DATA payload: a view the caller reuses once this resolves, so nothing keeps it
   * (partials and upload sinks are done with a buffer, or copied it, when their write resolves).
   */
  async data(data: Buffer): Promise<void> {
    if (this.received + data.length > this.size) {
      throw v4Error('SIZE_MISMATCH', `data past the announced ${this.size} bytes`);
    }
    this.sha.update(data);
    this.cksum.update(data);
    this.received += data.length;
    // The TLS records that carried this data were fresh buffers, now garbage (gc-nudge.ts).
    this.ctx.base.memory?.note(data.length);
    if (this.sink === undefined) await this.partial.write(data);
    else await Promise.all([this.partial.write(data), this.sink.write(data)]);
    const now = this.ctx.base.sources.now();
    const due =
      now - this.lastCheckpoint >= this.ctx.checkpointIntervalMs ||
      this.received - this.checkpointedAt >= CHECKPOINT_BYTES;
    if (due && !this.checkpointing) {
      this.lastCheckpoint = now;
      this.checkpointedAt = this.received;
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
   * What was verified (SHA-256, `flags`) is recorded before the answer, under the file's lock,
   * tied to the row just written (docs/protocol-v4.md §7).
   */
  async end(
    client: BoundClient,
    req: UploadEnd,
    auditFor: AuditFor,
    flags: number,
  ): Promise<Stored> {
    if (this.received !== this.size) {
      throw v4Error('SIZE_MISMATCH', `END after ${this.received} of ${this.size} bytes`);
    }
    const sha256 = this.sha.digest();
    const cksum = this.cksum.digest();
    if (!sha256.equals(req.sha256)) {
      await this.discard();
      throw v4Error('DIGEST_MISMATCH', 'SHA-256 of the received bytes differs; nothing stored');
    }
    // The commit makes the file durable; until it is done, the partial's last checkpoint is
    // what a crash resumes from.
    await this.checkpointing;
    // A failed sync is reported once, to whoever synced: the publish's own fsync would pass.
    if (this.checkpointFailure !== undefined) throw this.checkpointFailure;
    const { store, fileLocks, sources } = this.ctx.base;
    await fileLocks.run(this.key, async () => {
      const { objectKey, unpublish } = await this.publish();
      const now = sources.now();
      try {
        // Verified already (the SHA-256 matched): the row is written verified, with the audit
        // rows of its storing and of its check, in one durable write.
        await store.putFile(
          {
            clientId: client.clientId,
            fileName: this.fileName,
            objectKey,
            size: this.size,
            cksum,
            updatedAt: now,
            // What was verified commits with the row: durable before STORED, and gone with
            // the row when a v3 upload replaces the file.
            v4: { sha256, flags },
          },
          auditFor(RequestCode.UPLOAD_END, 'file_stored', `${this.fileName}: ${this.size} bytes`),
          {
            verified: {
              audit: auditFor(
                RequestCode.UPLOAD_END,
                'checksum_ok',
                `${this.fileName}: sha256 ${sha256.toString('hex')}`,
              ),
            },
          },
        );
      } catch (err) {
        // The old row stays: put back the file it names, or remove what the commit made
        // visible (as v3 does).
        await unpublish().catch(() => undefined);
        throw err;
      }
    });
    this.done = true;
    await this.partial.remove();
    this.release();
    return { code: ResponseCode.STORED, size: this.size, sha256, cksum };
  }

  /** Deletes the partial and the unpublished bytes, and lets go (bad bytes). */
  async discard(): Promise<void> {
    this.done = true;
    await this.checkpointing;
    try {
      await this.sink?.abort().catch(() => undefined);
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
      await this.sink?.abort().catch(() => undefined);
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
