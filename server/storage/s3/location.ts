/**
 * Where the S3 backend keeps objects: `s3://bucket/prefix` from `--storage`. The prefix lets
 * one bucket hold several deployments; every object key of object-keys.ts lies below it.
 */
import { StorageError, StorageErrorCode } from '../types';

export interface S3Location {
  readonly bucket: string;
  /** Empty, or ends in `/`. */
  readonly prefix: string;
}

/** S3's bucket naming rules (lowercase letters, digits, dots and hyphens; 3 to 63). */
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/** Prefix segments: printable, no control characters, no `.`/`..` segments. */
const PREFIX_SEGMENT = /^[A-Za-z0-9!_.*'()-]+$/;

function locationError(message: string): StorageError {
  return new StorageError(StorageErrorCode.BACKEND, message);
}

/** Parses `s3://bucket` or `s3://bucket/some/prefix` (a trailing `/` is optional). */
export function parseS3Url(url: string): S3Location {
  const match = /^s3:\/\/([^/]*)(?:\/(.*))?$/i.exec(url);
  if (match === null)
    throw locationError(`--storage ${JSON.stringify(url)} is not s3://bucket/prefix`);
  const bucket = match[1] ?? '';
  if (!BUCKET_NAME.test(bucket)) {
    throw locationError(`--storage: ${JSON.stringify(bucket)} is not a valid S3 bucket name`);
  }
  const segments = (match[2] ?? '').split('/').filter((segment) => segment !== '');
  for (const segment of segments) {
    if (!PREFIX_SEGMENT.test(segment) || segment === '.' || segment === '..') {
      throw locationError(`--storage: prefix segment ${JSON.stringify(segment)} is not allowed`);
    }
  }
  return { bucket, prefix: segments.length === 0 ? '' : `${segments.join('/')}/` };
}

export function formatS3Url(location: S3Location): string {
  return `s3://${location.bucket}/${location.prefix}`;
}
