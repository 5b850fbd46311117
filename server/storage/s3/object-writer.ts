/**
 * One object being written to S3 as the data arrives, as a multipart upload created at `begin`:
 * the bytes go up in parts of `partSize` while they stream in, at most `queueSize` parts in
 * flight (a write waits when the queue is full, so a slow store slows the connection instead
 * of growing a buffer: memory per upload stays below (queueSize + 1) × partSize).
 *
 * Nothing is visible under the key until `commit`, which sends the last part and completes the
 * upload: S3 publishes the object atomically then. `abort` aborts the multipart upload, so
 * S3 drops its parts. The upload exists from `begin` on, so a write cut by a crash is always an
 * unfinished multipart upload that `sweepIncomplete` finds.
 *
 * The AWS SDK's lib-storage Upload does the same part loop, but creates the multipart upload
 * only once a first full part has arrived, and keeps its id to itself; this writer needs the id
 * at `begin` (an unfinished write must be sweepable), so the loop is written here.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import { StorageError, StorageErrorCode, type ObjectWriter } from '../types';
import { isMissing, s3Error } from './errors';

export interface S3WriteSettings {
  /** Bytes per part (S3's minimum is 5 MiB for all parts but the last). */
  readonly partSize: number;
  /** Parts uploaded at once. */
  readonly queueSize: number;
}

type State = 'open' | 'committing' | 'committed' | 'aborted';

export class S3ObjectWriter implements ObjectWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private nextPart = 1;
  private readonly parts: CompletedPart[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  /** The first failure of a part: the upload cannot complete any more. */
  private failure: unknown;
  private state: State = 'open';

  private constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly objectName: string,
    private readonly uploadId: string,
    private readonly settings: S3WriteSettings,
  ) {}

  /** Creates the multipart upload of `objectName`. */
  static async begin(
    client: S3Client,
    bucket: string,
    objectName: string,
    settings: S3WriteSettings,
  ): Promise<S3ObjectWriter> {
    let uploadId: string | undefined;
    try {
      const created = await client.send(
        new CreateMultipartUploadCommand({ Bucket: bucket, Key: objectName }),
      );
      uploadId = created.UploadId;
    } catch (err) {
      throw s3Error(`cannot start storing ${objectName}`, err);
    }
    if (uploadId === undefined) {
      throw new StorageError(StorageErrorCode.FILESYSTEM, `no upload id for ${objectName}`);
    }
    return new S3ObjectWriter(client, bucket, objectName, uploadId, settings);
  }

  private stateError(action: string): StorageError {
    return new StorageError(
      StorageErrorCode.FILESYSTEM,
      `${this.objectName}: ${action} after ${this.state}`,
    );
  }

  private failedError(): StorageError {
    return s3Error(`cannot store ${this.objectName}`, this.failure);
  }

  /** Starts uploading one part; resolves once the queue has room for another. */
  private async send(body: Buffer): Promise<void> {
    const partNumber = this.nextPart;
    this.nextPart += 1;
    const sent: Promise<void> = this.client
      .send(
        new UploadPartCommand({
          Bucket: this.bucket,
          Key: this.objectName,
          UploadId: this.uploadId,
          PartNumber: partNumber,
          Body: body,
          ContentLength: body.length,
        }),
      )
      .then(
        (result) => {
          this.parts.push({ PartNumber: partNumber, ETag: result.ETag });
        },
        (err: unknown) => {
          this.failure ??= err;
        },
      )
      .finally(() => this.inFlight.delete(sent));
    this.inFlight.add(sent);
    while (this.inFlight.size >= this.settings.queueSize) await Promise.race(this.inFlight);
  }

  /** The pending bytes as one part of at most `partSize` bytes (the rest stays pending). */
  private takePart(): Buffer {
    const all =
      this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending);
    const part = all.subarray(0, this.settings.partSize);
    const rest = all.subarray(part.length);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingBytes = rest.length;
    return part;
  }

  async write(data: Buffer): Promise<void> {
    if (this.state !== 'open') throw this.stateError('write');
    if (this.failure !== undefined) throw this.failedError();
    // Callers may reuse their buffer once this resolves: keep a copy.
    this.pending.push(Buffer.from(data));
    this.pendingBytes += data.length;
    while (this.pendingBytes >= this.settings.partSize) await this.send(this.takePart());
    if (this.failure !== undefined) throw this.failedError();
  }

  async commit(): Promise<void> {
    if (this.state === 'committed') return;
    if (this.state !== 'open') throw this.stateError('commit');
    this.state = 'committing';
    try {
      // The last part may be short, or empty for an empty object (S3 needs one part).
      if (this.pendingBytes > 0 || this.parts.length + this.inFlight.size === 0) {
        await this.send(this.takePart());
      }
      await Promise.all(this.inFlight);
      if (this.failure !== undefined) throw this.failedError();
      const parts = [...this.parts].sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: this.objectName,
          UploadId: this.uploadId,
          MultipartUpload: { Parts: parts },
        }),
      );
    } catch (err) {
      this.state = 'open';
      // The commit's failure is what the caller needs; a failed abort is left to the sweep.
      await this.abort().catch(() => undefined);
      throw s3Error(`cannot store ${this.objectName}`, err);
    }
    this.state = 'committed';
  }

  async abort(): Promise<void> {
    if (this.state === 'committed' || this.state === 'aborted') return;
    this.state = 'aborted';
    this.pending = [];
    this.pendingBytes = 0;
    await Promise.all(this.inFlight);
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({
          Bucket: this.bucket,
          Key: this.objectName,
          UploadId: this.uploadId,
        }),
      );
    } catch (err) {
      // Already gone is what abort wants; anything else leaves it to sweepIncomplete.
      if (!isMissing(err)) throw s3Error(`cannot abort the upload of ${this.objectName}`, err);
    }
  }
}
