/**
 * The SQLite database backend: `openSqliteStore` opens `defensive.db` (connection.ts), prepares
 * the hot statements (rows.ts) and returns the Catalog (catalog.ts).
 */
import type { Logger } from '../../../shared/logger';
import { StorageError, StorageErrorCode } from '../types';
import type { AsyncStatement } from './async';
import { SqliteCatalog, type SqliteStore } from './catalog';
import { openConnection, type ConnectionOptions } from './connection';
import { SqliteReader } from './reader';
import { SQL, type StatementName } from './rows';
import { CONNECTION_OBJECTS } from './audited-writes';

export { DATABASE_FILE_NAME } from './connection';
export type { SqliteStore } from './catalog';

export interface SqliteStoreOptions extends ConnectionOptions {
  /** 32-byte master key: AESKey values are stored sealed with it (../master-key.ts). */
  readonly masterKey?: Buffer;
  readonly logger?: Logger;
  /** How long LastSeen updates of `touch` may wait before being written. Default 1000 ms. */
  readonly touchFlushMs?: number;
}

export async function openSqliteStore(options: SqliteStoreOptions): Promise<SqliteStore> {
  if (options.masterKey && options.masterKey.length !== 32) {
    throw new StorageError(StorageErrorCode.MASTER_KEY, 'master key must be 32 bytes');
  }
  const readOnly = options.readOnly ?? false;
  return openConnection(options, async (db, file) => {
    await db.exec(CONNECTION_OBJECTS, 'cannot create the objects of the connection');
    const statements = new Map<StatementName, AsyncStatement>();
    for (const [name, sql] of Object.entries(SQL) as Array<[StatementName, string]>) {
      statements.set(name, await db.prepare(sql, name));
    }
    // Opened after the write connection made the schema current.
    const reader = readOnly ? undefined : await SqliteReader.open(file, options.busyTimeoutMs);
    return new SqliteCatalog(db, file, statements, {
      readOnly,
      ...(reader === undefined ? {} : { reader }),
      ...(options.masterKey === undefined ? {} : { masterKey: options.masterKey }),
      ...(options.logger === undefined ? {} : { logger: options.logger }),
      ...(options.touchFlushMs === undefined ? {} : { touchFlushMs: options.touchFlushMs }),
    });
  });
}
