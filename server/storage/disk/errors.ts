/** StorageErrors of the disk backend: the errno code in the message, the cause kept. */
import { errnoCode } from '../../../shared/errno';
import { StorageError, StorageErrorCode } from '../types';

export function fsError(what: string, err: unknown): StorageError {
  if (err instanceof StorageError) return err;
  const detail = errnoCode(err) ?? (err instanceof Error ? err.message : String(err));
  return new StorageError(StorageErrorCode.FILESYSTEM, `${what} (${detail})`, { cause: err });
}

export function escapeError(message: string): StorageError {
  return new StorageError(StorageErrorCode.PATH_ESCAPE, message);
}
