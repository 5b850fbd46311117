/**
 * One object being written to S3 as the data arrives: a multipart upload (lib-storage's Upload)
 * fed from a stream. Memory stays bounded: the stream holds at most its high-water mark, the
 * uploader one part being filled plus `queueSize` parts in flight; `write` resolves only when
 * the stream took the data, so a slow store slows the connection instead of growing a buffer.
 *
 * Nothing is visible under the key until `commit`: S3 publishes a multipart upload atomically
 * when it is completed (an object smaller than one part goes up as one PutObject at commit).
 * `abort` fails the stream, which makes the uploader abort the multipart upload and wait for it.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { PassThrough } from 'node:stream';
import { StorageError, StorageErrorCode, type ObjectWriter } from '../types';
import { s3Error } from './errors';

export interface S3WriteSettings {
  /** Bytes per part (S3's minimum is 5 MiB for all parts but the last). */
  readonly partSize: number;
  /** Parts uploaded at once. */
  readonly queueSize: number;
  /** Bytes the feeding stream holds before `write` waits. */
  readonly highWaterMark: number;
}

const ABORTED = 'aborted by the server';

type State = 'open' | 'committing' | 'committed' | 'aborted';

export class S3ObjectWriter implements ObjectWriter {
  private readonly body: PassThrough;
  private readonly done: Promise<void>;
  /** The upload's failure, once it failed (a part or the completion was refused). */
  private failure: unknown;
  private state: State = 'open';

  constructor(
    client: S3Client,
    bucket: string,
    private readonly objectName: string,
    settings: S3WriteSettings,
  ) {
    this.body = new PassThrough({ highWaterMark: settings.highWaterMark });
    const upload = new Upload({
      client,
      params: { Bucket: bucket, Key: objectName, Body: this.body },
      partSize: settings.partSize,
      queueSize: settings.queueSize,
      leavePartsOnError: false,
    });
    this.done = upload.done().then(
      () => undefined,
      (err: unknown) => {
        this.failure = err;
        // A failed upload reads no more: unblock a write waiting for the stream to drain.
        this.body.emit('upload-failed');
        throw err;
      },
    );
    // Observed in commit or abort; never an unhandled rejection meanwhile.
    this.done.catch(() => undefined);
  }

  private failedError(): StorageError {
    return s3Error(`cannot store ${this.objectName}`, this.failure);
  }

  async write(data: Buffer): Promise<void> {
    if (this.state !== 'open') {
      throw new StorageError(
        StorageErrorCode.FILESYSTEM,
        `${this.objectName}: write after ${this.state}`,
      );
    }
    if (this.failure !== undefined) throw this.failedError();
    if (this.body.write(data)) return;
    await new Promise<void>((resolve) => {
      const settle = (): void => {
        this.body.off('drain', settle);
        this.body.off('upload-failed', settle);
        this.body.off('close', settle);
        resolve();
      };
      this.body.on('drain', settle);
      this.body.on('upload-failed', settle);
      this.body.on('close', settle);
    });
    if (this.failure !== undefined) throw this.failedError();
  }

  async commit(): Promise<void> {
    if (this.state === 'committed') return;
    if (this.state !== 'open') {
      throw new StorageError(
        StorageErrorCode.FILESYSTEM,
        `${this.objectName}: commit after ${this.state}`,
      );
    }
    this.state = 'committing';
    this.body.end();
    try {
      await this.done;
    } catch {
      this.state = 'aborted';
      throw this.failedError();
    }
    this.state = 'committed';
  }

  async abort(): Promise<void> {
    if (this.state === 'committed' || this.state === 'aborted') return;
    this.state = 'aborted';
    // The uploader sees the stream fail, aborts the multipart upload, then rejects `done`.
    this.body.destroy(new Error(ABORTED));
    await this.done.catch(() => undefined);
  }
}
