/**
 * Failure injection for the memory backend: any operation can be told to reject with a
 * StorageError (full disk, locked database) for its next call(s), so the session's handling of
 * every storage failure can be tested without a real disk or database. Operation names are
 * the method names, with `writer.` for ObjectWriter methods (`writer.write`, `writer.commit`).
 */
import { StorageError, StorageErrorCode } from '../types';

interface Failure {
  readonly error: StorageError;
  remaining: number;
}

const BYTE_OPERATIONS: ReadonlySet<string> = new Set([
  'begin',
  'read',
  'copy',
  'remove',
  'removePrefix',
  'sweepIncomplete',
]);

export class FailureInjector {
  private readonly failures = new Map<string, Failure>();

  /** Makes the next `times` (default 1) calls of `operation` reject. */
  fail(operation: string, options: { times?: number; error?: StorageError } = {}): void {
    const bytes = operation.startsWith('writer.') || BYTE_OPERATIONS.has(operation);
    this.failures.set(operation, {
      error:
        options.error ??
        new StorageError(
          bytes ? StorageErrorCode.FILESYSTEM : StorageErrorCode.DATABASE,
          `injected failure of ${operation}`,
        ),
      remaining: options.times ?? 1,
    });
  }

  clear(): void {
    this.failures.clear();
  }

  /** Throws the injected error of `operation`, if one is armed. */
  check(operation: string): void {
    const failure = this.failures.get(operation);
    if (failure === undefined) return;
    failure.remaining -= 1;
    if (failure.remaining <= 0) this.failures.delete(operation);
    throw failure.error;
  }
}
