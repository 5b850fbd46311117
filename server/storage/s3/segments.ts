/**
 * Raw objects of the S3 backend outside the file-key grammar: the segments of resumable v4
 * uploads, under `<prefix>.partial-v4/`. Their names are built by the caller from a checked
 * client id and digests (never from client text), and checked here against that shape.
 */
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { StorageError, StorageErrorCode } from '../types';
import { isMissing, s3Error } from './errors';
import type { S3Location } from './location';

export const SEGMENTS_FOLDER = '.partial-v4/';
const SEGMENT_NAME = /^[0-9a-f]{32}\/[0-9a-f]{64}\/[0-9]{1,15}-[0-9]{1,9}$/;
const DELETE_BATCH = 1000;

/** Whole objects written once and read back in order. */
export interface SegmentStore {
  put(name: string, data: Buffer): Promise<void>;
  /** The segment's bytes; NOT_FOUND when it is gone. */
  get(name: string): AsyncIterable<Buffer>;
  remove(names: readonly string[]): Promise<void>;
}

function checked(name: string): string {
  if (!SEGMENT_NAME.test(name)) {
    throw new StorageError(StorageErrorCode.PATH_ESCAPE, `${JSON.stringify(name)} is no segment`);
  }
  return name;
}

export function createS3SegmentStore(client: S3Client, location: S3Location): SegmentStore {
  const key = (name: string): string => `${location.prefix}${SEGMENTS_FOLDER}${checked(name)}`;
  return {
    async put(name, data) {
      try {
        await client.send(
          new PutObjectCommand({
            Bucket: location.bucket,
            Key: key(name),
            Body: data,
            ContentLength: data.length,
          }),
        );
      } catch (err) {
        throw s3Error(`cannot store upload segment ${name}`, err);
      }
    },
    async *get(name) {
      let body: Readable;
      try {
        const result = await client.send(
          new GetObjectCommand({ Bucket: location.bucket, Key: key(name) }),
        );
        body = result.Body as Readable;
      } catch (err) {
        if (isMissing(err)) {
          throw new StorageError(StorageErrorCode.NOT_FOUND, `upload segment ${name} is gone`);
        }
        throw s3Error(`cannot read upload segment ${name}`, err);
      }
      for await (const chunk of body) yield chunk as Buffer;
    },
    async remove(names) {
      for (let from = 0; from < names.length; from += DELETE_BATCH) {
        const batch = names.slice(from, from + DELETE_BATCH).map((name) => ({ Key: key(name) }));
        try {
          await client.send(
            new DeleteObjectsCommand({
              Bucket: location.bucket,
              Delete: { Objects: batch, Quiet: true },
            }),
          );
        } catch (err) {
          throw s3Error('cannot remove upload segments', err);
        }
      }
    },
  };
}
