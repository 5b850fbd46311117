/**
 * The S3 ByteStore: each key of object-keys.ts is one object under the configured prefix of a
 * bucket, on AWS S3 or any S3-compatible store (MinIO, Ceph, R2) given by its endpoint. Writes
 * are multipart uploads fed as the data streams in (object-writer.ts) and published atomically
 * on completion; copies are server-side CopyObject calls, so the bytes never pass through here.
 *
 * Keys are checked against the grammar of object-keys.ts before any request (PATH_ESCAPE), so
 * nothing is ever read or written outside the prefix.
 */
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { parseKey, parsePrefix } from '../object-keys';
import type { ByteStore, ObjectWriter } from '../types';
import { isMissing, s3Error } from './errors';
import type { S3Location } from './location';
import { S3ObjectWriter, type S3WriteSettings } from './object-writer';

/** S3 deletes at most this many keys per DeleteObjects request. */
const DELETE_BATCH = 1000;

export interface S3ByteStoreSettings extends S3WriteSettings {
  /**
   * Unfinished multipart uploads older than this are aborted by `sweepIncomplete`. Younger
   * ones may belong to another instance's upload in flight, so they are left alone.
   */
  readonly staleAfterMs: number;
  /** Milliseconds since the epoch (injected). */
  readonly now: () => number;
}

/** The ByteStore of S3, plus a reachability probe for `/readyz`. */
export interface S3ByteStore extends ByteStore {
  readonly location: S3Location;
  /** Resolves when the bucket answers; rejects with a StorageError otherwise. */
  ping(): Promise<void>;
}

export class S3Store implements S3ByteStore {
  constructor(
    private readonly client: S3Client,
    readonly location: S3Location,
    private readonly settings: S3ByteStoreSettings,
  ) {}

  /** The object name of a checked key. */
  private name(key: string): string {
    parseKey(key);
    return `${this.location.prefix}${key}`;
  }

  async begin(key: string): Promise<ObjectWriter> {
    const name = this.name(key);
    return S3ObjectWriter.begin(this.client, this.location.bucket, name, this.settings);
  }

  async read(key: string): Promise<NodeJS.ReadableStream | undefined> {
    const name = this.name(key);
    try {
      const result = await this.client.send(
        new GetObjectCommand({ Bucket: this.location.bucket, Key: name }),
      );
      return result.Body as Readable;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw s3Error(`cannot read ${key}`, err);
    }
  }

  async copy(from: string, to: string): Promise<boolean> {
    const source = this.name(from);
    const target = this.name(to);
    try {
      await this.client.send(
        new CopyObjectCommand({
          Bucket: this.location.bucket,
          Key: target,
          CopySource: encodeURI(`${this.location.bucket}/${source}`),
        }),
      );
      return true;
    } catch (err) {
      if (isMissing(err)) return false;
      throw s3Error(`cannot copy ${from} to ${to}`, err);
    }
  }

  async remove(key: string): Promise<void> {
    const name = this.name(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.location.bucket, Key: name }));
    } catch (err) {
      if (isMissing(err)) return;
      throw s3Error(`cannot remove ${key}`, err);
    }
  }

  async removePrefix(prefix: string): Promise<void> {
    parsePrefix(prefix);
    const under = `${this.location.prefix}${prefix}`;
    let token: string | undefined;
    do {
      let names: string[];
      try {
        const page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.location.bucket,
            Prefix: under,
            MaxKeys: DELETE_BATCH,
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        );
        names = (page.Contents ?? []).flatMap((object) => (object.Key ? [object.Key] : []));
        token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
      } catch (err) {
        throw s3Error(`cannot list ${prefix}`, err);
      }
      if (names.length === 0) continue;
      try {
        const result = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.location.bucket,
            Delete: { Objects: names.map((Key) => ({ Key })), Quiet: true },
          }),
        );
        const failed = result.Errors ?? [];
        if (failed.length > 0) {
          throw s3Error(`cannot remove ${failed.length} objects under ${prefix}`, failed[0]);
        }
      } catch (err) {
        throw s3Error(`cannot remove objects under ${prefix}`, err);
      }
    } while (token !== undefined);
  }

  async sweepIncomplete(): Promise<number> {
    const cutoff = this.settings.now() - this.settings.staleAfterMs;
    let aborted = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      let page;
      try {
        page = await this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.location.bucket,
            Prefix: this.location.prefix,
            ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker }),
            ...(uploadIdMarker === undefined ? {} : { UploadIdMarker: uploadIdMarker }),
          }),
        );
      } catch (err) {
        throw s3Error('cannot list unfinished uploads', err);
      }
      for (const upload of page.Uploads ?? []) {
        if (upload.Key === undefined || upload.UploadId === undefined) continue;
        if (upload.Initiated !== undefined && upload.Initiated.getTime() > cutoff) continue;
        try {
          await this.client.send(
            new AbortMultipartUploadCommand({
              Bucket: this.location.bucket,
              Key: upload.Key,
              UploadId: upload.UploadId,
            }),
          );
          aborted += 1;
        } catch (err) {
          // Finished or aborted by someone else meanwhile: nothing left to sweep.
          if (!isMissing(err)) throw s3Error(`cannot abort the upload of ${upload.Key}`, err);
        }
      }
      if (page.IsTruncated !== true) return aborted;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  async ping(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.location.bucket }));
    } catch (err) {
      throw s3Error(`bucket ${this.location.bucket} is not reachable`, err);
    }
  }
}
