/**
 * Writes of a client or file row together with its audit row as ONE statement. A change and its audit row
 * must commit together; as two statements that takes a transaction of four trips to the thread
 * pool (BEGIN, change, audit row, COMMIT), as one statement SQLite commits both, or neither, by
 * itself. The statements insert into per-connection (TEMP) views whose INSTEAD OF triggers make
 * the change and add the audit row: made at every open, never written to the file, so they are
 * not part of the schema version.
 */
import type { AuditEntry, FileStatus } from '../types';
import { sqliteCode, type AsyncStatement, type SqlParams } from './async';
import {
  AUDIT_INSERT_COLUMNS,
  auditParams,
  CHECK_AUDIT_COLUMNS,
  FILE_COLUMNS,
  FILE_UPSERT,
} from './rows';

/** The message of the trigger's abort when no row changed (a missing or, if asked, failed file). */
const NO_ROW_CHANGED = 'no row changed';
/** The message of client_registered's abort when the name has a row: nothing was written. */
const NAME_IN_USE = 'name in use';

const AUDIT_VIEW_COLUMNS = AUDIT_INSERT_COLUMNS;
const AUDIT_VIEW_NULLS = 'NULL, NULL, NULL, NULL, NULL, NULL, NULL';
const AUDIT_ROW_INSERT = `INSERT INTO auth_log (${AUDIT_VIEW_COLUMNS})
    VALUES (NEW.Time, NEW.RemoteAddress, NEW.ClientID, NEW.Name, NEW.RequestCode, NEW.Outcome,
      NEW.Detail);`;

/**
 * `client_registered`: SQL.insertClient for a name with no row yet; a name in use (to refuse or
 * to replace, §5.1) aborts it and takes the statements of SqliteCatalog.registerClient.
 * `client_key_set`: as SQL.setPublicKey. `client_aes_key_set`: as SQL.setAesKey.
 */
const CLIENT_OBJECTS = `
CREATE TEMP VIEW client_registered (ClientName, LastSeen, NewID, ${AUDIT_VIEW_COLUMNS})
  AS SELECT NULL, NULL, NULL, ${AUDIT_VIEW_NULLS} WHERE 0;
CREATE TEMP TRIGGER client_registered_insert INSTEAD OF INSERT ON client_registered BEGIN
  SELECT RAISE(ABORT, '${NAME_IN_USE}') FROM clients WHERE Name = NEW.ClientName;
  INSERT INTO clients (ID, Name, PublicKey, LastSeen, AESKey)
    VALUES (NEW.NewID, NEW.ClientName, NULL, NEW.LastSeen, NULL);
  ${AUDIT_ROW_INSERT}
END;
CREATE TEMP VIEW client_key_set (PublicKey, AESKey, LastSeen, KeyID, ${AUDIT_VIEW_COLUMNS})
  AS SELECT NULL, NULL, NULL, NULL, ${AUDIT_VIEW_NULLS} WHERE 0;
CREATE TEMP TRIGGER client_key_set_insert INSTEAD OF INSERT ON client_key_set BEGIN
  UPDATE clients SET PublicKey = NEW.PublicKey, AESKey = NEW.AESKey, LastSeen = NEW.LastSeen
    WHERE ID = NEW.KeyID AND PublicKey IS NULL;
  SELECT RAISE(ABORT, '${NO_ROW_CHANGED}') WHERE changes() = 0;
  ${AUDIT_ROW_INSERT}
END;
CREATE TEMP VIEW client_aes_key_set (AESKey, LastSeen, KeyID, ${AUDIT_VIEW_COLUMNS})
  AS SELECT NULL, NULL, NULL, ${AUDIT_VIEW_NULLS} WHERE 0;
CREATE TEMP TRIGGER client_aes_key_set_insert INSTEAD OF INSERT ON client_aes_key_set BEGIN
  UPDATE clients SET AESKey = NEW.AESKey, LastSeen = max(LastSeen, NEW.LastSeen)
    WHERE ID = NEW.KeyID;
  SELECT RAISE(ABORT, '${NO_ROW_CHANGED}') WHERE changes() = 0;
  ${AUDIT_ROW_INSERT}
END;`;

/** One NULL per column of FILE_COLUMNS, for the file views' empty SELECT. */
const FILE_VIEW_NULLS = FILE_COLUMNS.split(', ')
  .map(() => 'NULL')
  .join(', ');
/** The file row of a view's inserted row, inserted or replacing the row it has (SQL.putFile). */
const FILE_ROW_UPSERT = `INSERT INTO files (${FILE_COLUMNS})
    VALUES (${FILE_COLUMNS.split(', ')
      .map((column) => `NEW.${column}`)
      .join(', ')})
    ${FILE_UPSERT};`;
/** The second audit row of a view's inserted row (its `Check` columns, CHECK_AUDIT_COLUMNS). */
const CHECK_ROW_INSERT = `INSERT INTO auth_log (${AUDIT_VIEW_COLUMNS})
    VALUES (${CHECK_AUDIT_COLUMNS.split(', ')
      .map((column) => `NEW.${column}`)
      .join(', ')});`;

/**
 * `file_stored`: as SQL.putFile, with its audit row. `file_stored_checked`: the same and a
 * second audit row after it (a v4 upload's row, verified, with its file_stored and checksum_ok
 * rows). `file_status_set`: as SQL.setFileStatus[UnlessFailed].
 */
export const CONNECTION_OBJECTS = `${CLIENT_OBJECTS}
CREATE TEMP VIEW file_stored (${FILE_COLUMNS}, ${AUDIT_VIEW_COLUMNS})
  AS SELECT ${FILE_VIEW_NULLS}, ${AUDIT_VIEW_NULLS} WHERE 0;
CREATE TEMP TRIGGER file_stored_insert INSTEAD OF INSERT ON file_stored BEGIN
  ${FILE_ROW_UPSERT}
  ${AUDIT_ROW_INSERT}
END;
CREATE TEMP VIEW file_stored_checked (
  ${FILE_COLUMNS}, ${AUDIT_VIEW_COLUMNS}, ${CHECK_AUDIT_COLUMNS}
) AS SELECT ${FILE_VIEW_NULLS}, ${AUDIT_VIEW_NULLS}, ${AUDIT_VIEW_NULLS} WHERE 0;
CREATE TEMP TRIGGER file_stored_checked_insert INSTEAD OF INSERT ON file_stored_checked BEGIN
  ${FILE_ROW_UPSERT}
  ${AUDIT_ROW_INSERT}
  ${CHECK_ROW_INSERT}
END;
CREATE TEMP VIEW file_status_set (
  Status, Verified, UpdatedAt, ID, FileName, UnlessFailed, ${AUDIT_VIEW_COLUMNS}
) AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, ${AUDIT_VIEW_NULLS} WHERE 0;
CREATE TEMP TRIGGER file_status_set_insert INSTEAD OF INSERT ON file_status_set BEGIN
  UPDATE files SET Status = NEW.Status, Verified = NEW.Verified, UpdatedAt = NEW.UpdatedAt
    WHERE ID = NEW.ID AND FileName = NEW.FileName
      AND (NEW.UnlessFailed = 0 OR Status <> 'failed');
  SELECT RAISE(ABORT, '${NO_ROW_CHANGED}') WHERE changes() = 0;
  ${AUDIT_ROW_INSERT}
END;`;

/** True for a trigger's abort with `reason` (nothing was written). */
function isAbortFor(err: unknown, reason: string): boolean {
  if (sqliteCode(err) !== 'SQLITE_CONSTRAINT') return false;
  // Duck-typed: the driver's errors are not always of this realm's Error class.
  const message = (err as { cause?: { message?: unknown } }).cause?.message;
  return typeof message === 'string' && message.endsWith(reason);
}

/** Runs an audited write; false, with nothing written, when its trigger aborted for `reason`. */
async function runUnless(
  statement: AsyncStatement,
  params: SqlParams,
  reason: string,
): Promise<boolean> {
  try {
    await statement.run(params);
    return true;
  } catch (err) {
    if (isAbortFor(err, reason)) return false;
    throw err;
  }
}

/**
 * Inserts a client row for a name that has none, with `audit` (`registerClientAudited`); false,
 * with nothing written, when the name has a row.
 */
export function registerNewClientAudited(
  statement: AsyncStatement,
  client: { readonly id: Buffer; readonly name: string; readonly now: number },
  audit: AuditEntry,
): Promise<boolean> {
  const params = [client.name, client.now, client.id, ...auditParams(audit)];
  return runUnless(statement, params, NAME_IN_USE);
}

/**
 * Sets a client's public key and (stored) AES key with `audit` (`setPublicKeyAudited`); false,
 * with nothing written, when the client is unknown or already has a key.
 */
export function setPublicKeyAudited(
  statement: AsyncStatement,
  key: { readonly id: Buffer; readonly publicKey: Buffer; readonly storedAesKey: Buffer },
  now: number,
  audit: AuditEntry,
): Promise<boolean> {
  const params = [key.publicKey, key.storedAesKey, now, key.id, ...auditParams(audit)];
  return runUnless(statement, params, NO_ROW_CHANGED);
}

/** Sets a client's (stored) AES key with `audit` (`setAesKeyAudited`); false for no client. */
export function setAesKeyAudited(
  statement: AsyncStatement,
  key: { readonly id: Buffer; readonly storedAesKey: Buffer },
  now: number,
  audit: AuditEntry,
): Promise<boolean> {
  return runUnless(
    statement,
    [key.storedAesKey, now, key.id, ...auditParams(audit)],
    NO_ROW_CHANGED,
  );
}

/**
 * Sets a file's status and writes `audit` with it, in one statement (`fileStatusAudited`);
 * false, with no audit row, when there is no such row (or it failed, with `unlessFailed`).
 */
export function setFileStatusAudited(
  statement: AsyncStatement,
  key: { readonly owner: Buffer; readonly fileName: string },
  change: { readonly status: FileStatus; readonly now: number; readonly unlessFailed: boolean },
  audit: AuditEntry,
): Promise<boolean> {
  const { status, now, unlessFailed } = change;
  const params = [
    status,
    status === 'verified' ? 1 : 0,
    now,
    key.owner,
    key.fileName,
    unlessFailed ? 1 : 0,
    ...auditParams(audit),
  ];
  return runUnless(statement, params, NO_ROW_CHANGED);
}
