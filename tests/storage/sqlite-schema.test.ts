/**
 * The schema of `defensive.db` (docs/protocol.md §7, docs/storage.md): the §7 tables and
 * columns, WAL and owner-only files, BLOB ids and keys, the version and its migrations, and the
 * adoption of another §7 server's database.
 */
import { stat } from 'node:fs/promises';
import * as path from 'node:path';
import { SCHEMA_VERSION } from '../../server/storage/sqlite/schema';
import { DATABASE_FILE_NAME, openSqliteStore } from '../../server/storage/sqlite';
import { StorageErrorCode } from '../../server/storage/types';
import { PUBLIC_KEY, raw, sqliteStores } from './sqlite-fixture';
import { aesKeyOf, idOf } from './temp-dir';

const { newStore, makeDir } = sqliteStores('schema');

describe('schema (PROTOCOL.md §7)', () => {
  it('creates clients, files and auth_log with the §7 column names, indices and version', async () => {
    const { store, file } = await newStore();
    await store.close();
    const db = await raw(file);
    try {
      const columns = async (table: string): Promise<string[]> =>
        (await db.all<{ name: string }>(`PRAGMA table_info(${table})`)).map((row) => row.name);
      expect(await columns('clients')).toEqual(['ID', 'Name', 'PublicKey', 'LastSeen', 'AESKey']);
      expect((await columns('files')).slice(0, 4)).toEqual([
        'ID',
        'FileName',
        'PathName',
        'Verified',
      ]);
      expect(await columns('files')).toEqual(
        expect.arrayContaining(['Status', 'Size', 'Cksum', 'UpdatedAt']),
      );
      expect(await columns('auth_log')).toEqual([
        'LogID',
        'Time',
        'RemoteAddress',
        'ClientID',
        'Name',
        'RequestCode',
        'Outcome',
        'Detail',
      ]);
      const indexColumns = async (index: string): Promise<string[]> =>
        (await db.all<{ name: string }>(`PRAGMA index_info(${index})`)).map((row) => row.name);
      expect(await indexColumns('auth_log_time')).toEqual(['Time']);
      expect(await indexColumns('files_owner_name')).toEqual(['ID', 'FileName']);
      const version = await db.get<{ user_version: number }>('PRAGMA user_version');
      expect(version?.user_version).toBe(SCHEMA_VERSION);
    } finally {
      await db.close();
    }
  });

  it('runs in WAL mode and keeps the database file owner-only', async () => {
    const { store, file } = await newStore();
    expect(await store.journalMode()).toBe('wal');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await store.integrityCheck()).toEqual(['ok']);
  });

  it('stores ids and keys as BLOBs', async () => {
    const { store, file } = await newStore();
    await store.registerClient(idOf(1), 'alice', 1000);
    await store.setPublicKey(idOf(1), PUBLIC_KEY, aesKeyOf(9), 2000);
    await store.close();
    const db = await raw(file);
    try {
      const row = await db.get<Record<string, string>>(
        'SELECT typeof(ID) AS id, typeof(PublicKey) AS pk, typeof(AESKey) AS aes FROM clients',
      );
      expect(row).toEqual({ id: 'blob', pk: 'blob', aes: 'blob' });
    } finally {
      await db.close();
    }
  });

  it('refuses a database with a newer schema version', async () => {
    const { store, file } = await newStore();
    await store.close();
    const db = await raw(file);
    await db.run(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
    await db.close();
    await expect(openSqliteStore({ path: file })).rejects.toMatchObject({
      code: StorageErrorCode.DATABASE,
    });
  });

  it('adopts the tables of another §7 server and keeps its rows', async () => {
    const dir = await makeDir();
    const file = path.join(dir, DATABASE_FILE_NAME);
    const db = await raw(file);
    await db.exec(`
      CREATE TABLE clients (ID BLOB PRIMARY KEY, Name TEXT, PublicKey BLOB, LastSeen INTEGER,
                            AESKey BLOB);
      CREATE TABLE files (ID BLOB, FileName TEXT, PathName TEXT, Verified INTEGER);
    `);
    await db.run('INSERT INTO clients VALUES (?, ?, ?, ?, ?)', [
      idOf(3),
      'old',
      PUBLIC_KEY,
      5,
      aesKeyOf(4),
    ]);
    await db.run('INSERT INTO files VALUES (?, ?, ?, ?)', [idOf(3), 'a.txt', 'x/a.txt', 1]);
    await db.close();

    const { store } = await newStore(dir);
    expect((await store.findClientByName('old'))?.aesKey).toEqual(aesKeyOf(4));
    expect(await store.findFile(idOf(3), 'a.txt')).toMatchObject({
      verified: true,
      status: 'verified',
    });
    await store.putFile({
      clientId: idOf(3),
      fileName: 'a.txt',
      objectKey: 'x/a.txt',
      size: 9,
      cksum: 1,
      updatedAt: 6,
    });
    expect((await store.listFiles()).length).toBe(1);
  });

  it('brings a version 2 database to version 3: its rows stay, with nothing verified over v4', async () => {
    const { store, file } = await newStore();
    await store.registerClient(idOf(1), 'alice', 1);
    await store.putFile({
      clientId: idOf(1),
      fileName: 'old.txt',
      objectKey: `${idOf(1).toString('hex')}/old.txt`,
      size: 3,
      cksum: 4,
      updatedAt: 5,
    });
    await store.close();
    // Version 2 as it was: the files table without the v4 columns.
    const db = await raw(file);
    await db.exec(`
      CREATE TABLE files2 (
        ID BLOB NOT NULL REFERENCES clients (ID) ON DELETE CASCADE,
        FileName TEXT NOT NULL,
        PathName TEXT NOT NULL,
        Verified INTEGER NOT NULL DEFAULT 0 CHECK (Verified IN (0, 1)),
        Status TEXT NOT NULL DEFAULT 'received',
        Size INTEGER NOT NULL DEFAULT 0,
        Cksum INTEGER NOT NULL DEFAULT 0,
        UpdatedAt INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (ID, FileName)
      );
      INSERT INTO files2 SELECT ID, FileName, PathName, Verified, Status, Size, Cksum, UpdatedAt
        FROM files;
      DROP TABLE files;
      ALTER TABLE files2 RENAME TO files;
      CREATE UNIQUE INDEX files_owner_name ON files (ID, FileName);
      PRAGMA user_version = 2;
    `);
    await db.close();

    const { store: again } = await newStore(path.dirname(file));
    const old = await again.findFile(idOf(1), 'old.txt');
    expect(old).toMatchObject({ size: 3, cksum: 4, updatedAt: 5 });
    expect(old?.v4).toBeUndefined();
    const v4 = { sha256: Buffer.alloc(32, 7), flags: 1 };
    await again.putFile({ ...(old as NonNullable<typeof old>), fileName: 'new.txt', v4 });
    expect((await again.findFile(idOf(1), 'new.txt'))?.v4).toEqual(v4);
    await again.close();
    const check = await raw(file);
    try {
      const version = await check.get<{ user_version: number }>('PRAGMA user_version');
      expect(version?.user_version).toBe(SCHEMA_VERSION);
    } finally {
      await check.close();
    }
  });
});
