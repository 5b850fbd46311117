/**
 * V4Store on SQLite: the bindings of client-certificate fingerprints to client ids
 * (docs/protocol-v4.md §2, §5), in table `v4_identities` of `defensive.db`.
 *
 * Its own connection to the database file (WAL lets it share the file with the catalog's
 * connection), and its own table made with CREATE TABLE IF NOT EXISTS: the table only adds to
 * the §7 schema, so a v3-only server and other §7 implementations read the file as before.
 */
import { join } from 'node:path';
import type { V4Identity, V4Store } from '../../session/v4/context';
import { AsyncDatabase, OPEN_CREATE, OPEN_READWRITE, sqliteCode } from './async';
import { DATABASE_FILE_NAME } from './connection';

const BUSY_TIMEOUT_MS = 5000;

const CREATE_TABLE = `
CREATE TABLE IF NOT EXISTS v4_identities (
  ClientID BLOB PRIMARY KEY NOT NULL CHECK (typeof(ClientID) = 'blob' AND length(ClientID) = 16),
  Fingerprint TEXT NOT NULL UNIQUE,
  BoundAt INTEGER NOT NULL,
  Via TEXT NOT NULL CHECK (Via IN ('register', 'migrate'))
)`;

interface IdentityRow {
  [column: string]: unknown;
  ClientID: Buffer;
  Fingerprint: string;
  BoundAt: number;
  Via: string;
}

function toIdentity(row: IdentityRow): V4Identity {
  return {
    clientId: row.ClientID,
    fingerprint: row.Fingerprint,
    boundAt: row.BoundAt,
    via: row.Via === 'migrate' ? 'migrate' : 'register',
  };
}

const COLUMNS = 'ClientID, Fingerprint, BoundAt, Via';

class SqliteV4Store implements V4Store {
  constructor(private readonly db: AsyncDatabase) {}

  async findByFingerprint(fingerprint: string): Promise<V4Identity | undefined> {
    const row = await this.db.get<IdentityRow>(
      `SELECT ${COLUMNS} FROM v4_identities WHERE Fingerprint = ?`,
      [fingerprint],
    );
    return row && toIdentity(row);
  }

  async findByClientId(clientId: Buffer): Promise<V4Identity | undefined> {
    const row = await this.db.get<IdentityRow>(
      `SELECT ${COLUMNS} FROM v4_identities WHERE ClientID = ?`,
      [Buffer.from(clientId)],
    );
    return row && toIdentity(row);
  }

  async bind(identity: V4Identity): Promise<boolean> {
    try {
      await this.db.run(`INSERT INTO v4_identities (${COLUMNS}) VALUES (?, ?, ?, ?)`, [
        Buffer.from(identity.clientId),
        identity.fingerprint,
        identity.boundAt,
        identity.via,
      ]);
      return true;
    } catch (err) {
      // A taken fingerprint or client id: the caller refuses, nothing changed.
      if (sqliteCode((err as { cause?: unknown }).cause ?? err) === 'SQLITE_CONSTRAINT') {
        return false;
      }
      throw err;
    }
  }

  async unbind(fingerprint: string): Promise<void> {
    await this.db.run('DELETE FROM v4_identities WHERE Fingerprint = ?', [fingerprint]);
  }

  async listIdentities(): Promise<V4Identity[]> {
    const rows = await this.db.all<IdentityRow>(
      `SELECT ${COLUMNS} FROM v4_identities ORDER BY BoundAt`,
    );
    return rows.map(toIdentity);
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

/** Opens the V4Store of the database in `dataDir` (created with the table if missing). */
export async function openSqliteV4Store(dataDir: string): Promise<V4Store> {
  const db = await AsyncDatabase.open(
    join(dataDir, DATABASE_FILE_NAME),
    OPEN_READWRITE | OPEN_CREATE,
  );
  try {
    db.configureBusyTimeout(BUSY_TIMEOUT_MS);
    await db.run('PRAGMA journal_mode = WAL');
    await db.run('PRAGMA synchronous = FULL');
    await db.run(CREATE_TABLE);
  } catch (err) {
    await db.close().catch(() => undefined);
    throw err;
  }
  return new SqliteV4Store(db);
}
