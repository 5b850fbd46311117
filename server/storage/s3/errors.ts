/** StorageErrors of the S3 backend, and how the SDK's errors are told apart. */
import { StorageError, StorageErrorCode } from '../types';

interface SdkErrorShape {
  readonly name?: string;
  readonly Code?: string;
  readonly $metadata?: { readonly httpStatusCode?: number };
}

/** The object (or upload) does not exist: S3 says NoSuchKey, NotFound or NoSuchUpload, or 404. */
export function isMissing(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const shape = err as SdkErrorShape;
  const name = shape.name ?? shape.Code;
  return (
    name === 'NoSuchKey' ||
    name === 'NotFound' ||
    name === 'NoSuchUpload' ||
    shape.$metadata?.httpStatusCode === 404
  );
}

/** A failure of the object store as a StorageError (FILESYSTEM: the byte store failed). */
export function s3Error(what: string, err: unknown): StorageError {
  if (err instanceof StorageError) return err;
  const shape = (typeof err === 'object' && err !== null ? err : {}) as SdkErrorShape;
  const name = shape.name ?? shape.Code;
  const status = shape.$metadata?.httpStatusCode;
  const detail = [name, status === undefined ? undefined : `HTTP ${status}`]
    .filter((part) => part !== undefined)
    .join(', ');
  const message = err instanceof Error ? err.message : String(err);
  return new StorageError(
    StorageErrorCode.FILESYSTEM,
    `${what} (${detail === '' ? message : detail})`,
    { cause: err },
  );
}
