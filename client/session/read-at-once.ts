/**
 * A small local file read at once, synchronously, for both protocols' uploads: open, fstat,
 * read and close from the page cache take microseconds, less than the thread-pool round trips
 * they cost asynchronously, and a folder of small files is hundreds of them. Larger files keep
 * asynchronous reads, so the event loop never waits on a long one.
 */
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from 'node:fs';

export interface ReadAtOnce {
  /** Bytes read into the buffer: its length, or fewer where the file ended. */
  readonly bytesRead: number;
  /** The file's size and modification time when it was opened. */
  readonly size: number;
  readonly mtimeMs: number;
}

/** Fills `into` from the start of the file at `path`; errors are the file system's own. */
export function readAtOnce(path: string, into: Buffer): ReadAtOnce {
  const fd = openSync(path, fsConstants.O_RDONLY);
  try {
    const { size, mtimeMs } = fstatSync(fd);
    let bytesRead = 0;
    while (bytesRead < into.length) {
      const n = readSync(fd, into, bytesRead, into.length - bytesRead, bytesRead);
      if (n === 0) break;
      bytesRead += n;
    }
    return { bytesRead, size, mtimeMs };
  } finally {
    closeSync(fd);
  }
}
