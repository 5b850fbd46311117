/**
 * The S3 byte backend: `--storage s3://bucket/prefix`, with `--s3-endpoint URL` for an
 * S3-compatible store (MinIO, Ceph, R2, s3rver in tests; path-style addressing there, since
 * such stores seldom have per-bucket host names). Credentials and region come from the AWS
 * SDK's standard sources (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
 * AWS_REGION, shared config files, instance roles) unless given here.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { S3Store, type S3ByteStore } from './byte-store';
import { parseS3Url } from './location';

export type { S3ByteStore } from './byte-store';
export { parseS3Url, formatS3Url, type S3Location } from './location';
export { createS3SegmentStore, type SegmentStore } from './segments';

const MIB = 1024 * 1024;
/** 8 MiB parts: above S3's 5 MiB minimum, and 4 GiB (the protocol's limit) in 512 parts. */
export const DEFAULT_PART_SIZE = 8 * MIB;
export const DEFAULT_QUEUE_SIZE = 2;
/** S3's own lifecycle rules count incomplete uploads in days; one day is their usual choice. */
export const DEFAULT_STALE_UPLOAD_MS = 24 * 60 * 60 * 1000;
const DEFAULT_REGION = 'us-east-1';

export interface S3BackendOptions {
  /** `s3://bucket/prefix`. */
  readonly url: string;
  /** An S3-compatible endpoint (`http://host:port`); default AWS S3 itself. */
  readonly endpoint?: string;
  /** Explicit credentials (tests); default the SDK's standard chain. */
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string };
  readonly region?: string;
  readonly partSize?: number;
  readonly queueSize?: number;
  readonly staleAfterMs?: number;
  readonly now: () => number;
}

/** The SDK client of `options`: endpoint path-style, credentials from the standard chain. */
export function createS3Client(options: Omit<S3BackendOptions, 'url' | 'now'>): S3Client {
  return new S3Client({
    region: options.region ?? process.env.AWS_REGION ?? DEFAULT_REGION,
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint, forcePathStyle: true }),
    ...(options.credentials === undefined ? {} : { credentials: { ...options.credentials } }),
    // Checksums only where S3 requires them: many S3-compatible stores do not understand the
    // streamed (aws-chunked) checksums the SDK would otherwise add to every upload.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

export function openS3ByteStore(options: S3BackendOptions): S3ByteStore {
  const location = parseS3Url(options.url);
  const client = createS3Client(options);
  const partSize = options.partSize ?? DEFAULT_PART_SIZE;
  return new S3Store(client, location, {
    partSize,
    queueSize: options.queueSize ?? DEFAULT_QUEUE_SIZE,
    staleAfterMs: options.staleAfterMs ?? DEFAULT_STALE_UPLOAD_MS,
    now: options.now,
  });
}
