/**
 * Writes of a file row together with its audit row as ONE statement. A change and its audit row
 * must commit together; as two statements that takes a transaction of four trips to the thread
 * pool (BEGIN, change, audit row, COMMIT), as one statement SQLite commits both, or neither, by
 * itself. The statements insert into per-connection (TEMP) views whose INSTEAD OF triggers make
 * the change and add the audit row: made at every open, never written to the file, so they are
 * not part of the schema version.
 */
import type { AuditEntry, FileStatus } from '../types';
import { sqliteCode, type AsyncStatement } from './async';
import { auditParams } from './rows';

/** The message of the trigger's abort when no row changed (a missing or, if asked, failed file). */
const NO_ROW_CHANGED = 'no row changed';

/** `file_stored`: as SQL.putFile. `file_status_set`: as SQL.setFileStatus[UnlessFailed]. */
export const CONNECTION_OBJECTS = `
CREATE TEMP VIEW file_stored (
  ID, FileName, PathName, Verified, Status, Size, Cksum, UpdatedAt,
  Time, RemoteAddress, ClientID, Name, RequestCode, Outcome, Detail
) AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE 0;
CREATE TEMP TRIGGER file_stored_insert INSTEAD OF INSERT ON file_stored BEGIN
  INSERT INTO files (ID, FileName, PathName, Verified, Status, Size, Cksum, UpdatedAt)
    VALUES (NEW.ID, NEW.FileName, NEW.PathName, NEW.Verified, NEW.Status, NEW.Size, NEW.Cksum,
      NEW.UpdatedAt)
    ON CONFLICT (ID, FileName) DO UPDATE SET PathName = excluded.PathName,
      Verified = excluded.Verified, Status = excluded.Status, Size = excluded.Size,
      Cksum = excluded.Cksum, UpdatedAt = excluded.UpdatedAt;
  INSERT INTO auth_log (Time, RemoteAddress, ClientID, Name, RequestCode, Outcome, Detail)
    VALUES (NEW.Time, NEW.RemoteAddress, NEW.ClientID, NEW.Name, NEW.RequestCode, NEW.Outcome,
      NEW.Detail);
END;
CREATE TEMP VIEW file_status_set (
  Status, Verified, UpdatedAt, ID, FileName, UnlessFailed,
  Time, RemoteAddress, ClientID, Name, RequestCode, Outcome, Detail
) AS SELECT NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE 0;
CREATE TEMP TRIGGER file_status_set_insert INSTEAD OF INSERT ON file_status_set BEGIN
  UPDATE files SET Status = NEW.Status, Verified = NEW.Verified, UpdatedAt = NEW.UpdatedAt
    WHERE ID = NEW.ID AND FileName = NEW.FileName
      AND (NEW.UnlessFailed = 0 OR Status <> 'failed');
  SELECT RAISE(ABORT, '${NO_ROW_CHANGED}') WHERE changes() = 0;
  INSERT INTO auth_log (Time, RemoteAddress, ClientID, Name, RequestCode, Outcome, Detail)
    VALUES (NEW.Time, NEW.RemoteAddress, NEW.ClientID, NEW.Name, NEW.RequestCode, NEW.Outcome,
      NEW.Detail);
END;`;

/** True for the abort of file_status_set when it changed no row: nothing was written. */
function isNoRowChanged(err: unknown): boolean {
  if (sqliteCode(err) !== 'SQLITE_CONSTRAINT') return false;
  // Duck-typed: the driver's errors are not always of this realm's Error class.
  const message = (err as { cause?: { message?: unknown } }).cause?.message;
  return typeof message === 'string' && message.endsWith(NO_ROW_CHANGED);
}

/**
 * Sets a file's status and writes `audit` with it, in one statement (`fileStatusAudited`);
 * false, with no audit row, when there is no such row (or it failed, with `unlessFailed`).
 */
export async function setFileStatusAudited(
  statement: AsyncStatement,
  key: { readonly owner: Buffer; readonly fileName: string },
  change: { readonly status: FileStatus; readonly now: number; readonly unlessFailed: boolean },
  audit: AuditEntry,
): Promise<boolean> {
  const { status, now, unlessFailed } = change;
  try {
    await statement.run([
      status,
      status === 'verified' ? 1 : 0,
      now,
      key.owner,
      key.fileName,
      unlessFailed ? 1 : 0,
      ...auditParams(audit),
    ]);
    return true;
  } catch (err) {
    if (isNoRowChanged(err)) return false;
    throw err;
  }
}
