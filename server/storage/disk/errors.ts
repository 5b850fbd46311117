/** StorageErrors of the disk backend: the errno code in the message, the cause kept. */
import { errnoCode } from '../../../shared/errno';
import { StorageError, StorageErrorCode } from '../types';

export function fsError(what: string, err: unknown): StorageError {
  if (err instanceof StorageError) return err;
  const errno = errnoCode(err);
  const detail = errno ?? (err instanceof Error ? err.message : String(err));
  const code =
    errno === 'ENOSPC' || errno === 'EDQUOT'
      ? StorageErrorCode.DISK_FULL
      : StorageErrorCode.FILESYSTEM;
  return new StorageError(code, `${what} (${detail})`, { cause: err });
}

export function escapeError(message: string): StorageError {
  return new StorageError(StorageErrorCode.PATH_ESCAPE, message);
}
