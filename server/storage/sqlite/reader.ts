/**
 * A second, read-only connection for the lookup on the way to an answer: a file's row, read
 * before an upload is published (to keep the file it replaces) and before a 1029 is
 * acknowledged. On the one write connection such a read waits for the group commit in progress,
 * whose COMMIT holds the connection for a WAL fsync (synchronous = FULL); in WAL mode a reader
 * never waits for the writer and sees every commit finished before its read began, so a row
 * written and awaited earlier is always seen.
 */
import { SerialQueue, type AsyncDatabase, type AsyncStatement } from './async';
import { openConnection } from './connection';
import { SQL, type FileRow } from './rows';

export class SqliteReader {
  private readonly queue = new SerialQueue();

  private constructor(
    private readonly db: AsyncDatabase,
    private readonly fileByKey: AsyncStatement,
  ) {}

  /** Opens `path` (already migrated by the write connection) for reads. */
  static open(path: string, busyTimeoutMs?: number): Promise<SqliteReader> {
    return openConnection(
      {
        path,
        readOnly: true,
        quickCheck: false,
        ...(busyTimeoutMs === undefined ? {} : { busyTimeoutMs }),
      },
      async (db) => new SqliteReader(db, await db.prepare(SQL.fileByKey, 'fileByKey')),
    );
  }

  findFile(owner: Buffer, fileName: string): Promise<FileRow | undefined> {
    return this.queue.run(() => this.fileByKey.get<FileRow>([owner, fileName]));
  }

  /** Closes after the reads queued so far. */
  close(): Promise<void> {
    return this.queue.run(async () => {
      await this.fileByKey.finalize();
      await this.db.close();
    });
  }
}
