import { chmod, readdir, stat, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { AsyncDatabase, OPEN_CREATE, OPEN_READWRITE } from '../../server/storage/sqlite/async';
import { SCHEMA_VERSION } from '../../server/storage/sqlite/schema';
import { DATABASE_FILE_NAME, openSqliteStore, type SqliteStore } from '../../server/storage/sqlite';
import { StorageError, StorageErrorCode, type AuditEntry } from '../../server/storage/types';
import { aesKeyOf, idOf, runningAsRoot, tempDirs } from './temp-dir';

const dirs = tempDirs('store');
const open: SqliteStore[] = [];

async function newStore(dir?: string): Promise<{ store: SqliteStore; dir: string; file: string }> {
  const dataDir = dir ?? (await dirs.make());
  const file = path.join(dataDir, DATABASE_FILE_NAME);
  const store = await openSqliteStore({ path: file });
  open.push(store);
  return { store, dir: dataDir, file };
}

/** A raw connection for looking at what the store wrote. */
async function raw(file: string): Promise<AsyncDatabase> {
  return AsyncDatabase.open(file, OPEN_READWRITE | OPEN_CREATE);
}

afterEach(async () => {
  for (const store of open.splice(0)) await store.close();
  await dirs.cleanup();
});

const PUBLIC_KEY = Buffer.from('30819d300d06092a864886f70d010101', 'hex');

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
    const dir = await dirs.make();
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

describe('clients', () => {
  it('registers a free name and finds it by id and by name', async () => {
    const { store } = await newStore();
    const result = await store.registerClient(idOf(1), 'alice', 1000);
    expect(result).toEqual({
      ok: true,
      client: { id: idOf(1), name: 'alice', publicKey: null, aesKey: null, lastSeen: 1000 },
    });
    expect(await store.findClientById(idOf(1))).toMatchObject({ name: 'alice', lastSeen: 1000 });
    expect(await store.findClientByName('alice')).toMatchObject({ id: idOf(1) });
    expect(await store.findClientById(idOf(2))).toBeUndefined();
    expect(await store.findClientByName('bob')).toBeUndefined();
  });

  it('replaces a record of the same name that never got a key, with its files (§5.1)', async () => {
    const { store } = await newStore();
    await store.registerClient(idOf(1), 'alice', 1000);
    await store.putFile({
      clientId: idOf(1),
      fileName: 'f',
      objectKey: `${idOf(1).toString('hex')}/f`,
      size: 3,
      cksum: 7,
      updatedAt: 1001,
    });
    const result = await store.registerClient(idOf(2), 'alice', 2000);
    expect(result).toMatchObject({ ok: true, replacedId: idOf(1), client: { id: idOf(2) } });
    expect(await store.findClientById(idOf(1))).toBeUndefined();
    expect(await store.findFile(idOf(1), 'f')).toBeUndefined();
    expect(await store.findClientByName('alice')).toMatchObject({ id: idOf(2) });
  });

  it('refuses a name whose record has a public key', async () => {
    const { store } = await newStore();
    await store.registerClient(idOf(1), 'alice', 1000);
    expect(await store.setPublicKey(idOf(1), PUBLIC_KEY, aesKeyOf(5), 1500)).toBe(true);
    expect(await store.registerClient(idOf(2), 'alice', 2000)).toEqual({
      ok: false,
      reason: 'name_taken',
    });
    expect(await store.findClientById(idOf(2))).toBeUndefined();
    expect(await store.findClientByName('alice')).toMatchObject({ id: idOf(1) });
  });

  it('keeps concurrent registrations of one name consistent: one wins, the rest replace or fail', async () => {
    const { store } = await newStore();
    const results = await Promise.all(
      [1, 2, 3, 4, 5].map((byte) => store.registerClient(idOf(byte), 'race', 1000 + byte)),
    );
    expect(results.every((result) => result.ok)).toBe(true);
    // Each later one replaced the keyless record before it, so exactly one row remains.
    expect((await store.listClients()).map((client) => client.id)).toEqual([idOf(5)]);
  });

  it('sets the public key once only (§5.2)', async () => {
    const { store } = await newStore();
    await store.registerClient(idOf(1), 'alice', 1000);
    expect(await store.setPublicKey(idOf(1), PUBLIC_KEY, aesKeyOf(5), 1500)).toBe(true);
    expect(await store.setPublicKey(idOf(1), Buffer.from('other'), aesKeyOf(6), 1600)).toBe(false);
    expect(await store.setPublicKey(idOf(9), PUBLIC_KEY, aesKeyOf(6), 1600)).toBe(false);
    expect(await store.findClientById(idOf(1))).toEqual({
      id: idOf(1),
      name: 'alice',
      publicKey: PUBLIC_KEY,
      aesKey: aesKeyOf(5),
      lastSeen: 1500,
    });
  });

  it('replaces the AES key, and refuses one for an unknown client', async () => {
    const { store } = await newStore();
    await store.registerClient(idOf(1), 'alice', 1000);
    await store.setPublicKey(idOf(1), PUBLIC_KEY, aesKeyOf(5), 1500);
    await store.setAesKey(idOf(1), aesKeyOf(6), 1700);
    expect(await store.findClientById(idOf(1))).toMatchObject({
      aesKey: aesKeyOf(6),
      lastSeen: 1700,
    });
    await expect(store.setAesKey(idOf(9), aesKeyOf(6), 1700)).rejects.toMatchObject({
      code: StorageErrorCode.DATABASE,
    });
  });

  it('keeps its own copy of buffers handed in (decoder views are reused)', async () => {
    const { store } = await newStore();
    const view = Buffer.from(idOf(1));
    const pending = store.registerClient(view, 'alice', 1000);
    view.fill(0xee);
    await pending;
    expect(await store.findClientById(idOf(1))).toBeDefined();
  });

  it('writes LastSeen behind, shows it at once, and never moves it backwards', async () => {
    const { store, file } = await newStore();
    await store.registerClient(idOf(1), 'alice', 1000);
    await store.touch(idOf(1), 5000);
    await store.touch(idOf(1), 4000);
    expect((await store.findClientById(idOf(1)))?.lastSeen).toBe(5000);
    await store.flush();
    const db = await raw(file);
    try {
      const row = await db.get<{ LastSeen: number }>('SELECT LastSeen FROM clients');
      expect(row?.LastSeen).toBe(5000);
    } finally {
      await db.close();
    }
  });

  it('persists everything across close and reopen', async () => {
    const { store, dir } = await newStore();
    await store.registerClient(idOf(1), 'alice', 1000);
    await store.setPublicKey(idOf(1), PUBLIC_KEY, aesKeyOf(5), 1500);
    await store.touch(idOf(1), 9000);
    await store.putFile({
      clientId: idOf(1),
      fileName: 'a.bin',
      objectKey: `${idOf(1).toString('hex')}/a.bin`,
      size: 100,
      cksum: 42,
      updatedAt: 1600,
    });
    await store.setFileStatus(idOf(1), 'a.bin', 'verified', 1700);
    await store.close();

    const { store: again } = await newStore(dir);
    expect(await again.findClientByName('alice')).toEqual({
      id: idOf(1),
      name: 'alice',
      publicKey: PUBLIC_KEY,
      aesKey: aesKeyOf(5),
      lastSeen: 9000,
    });
    expect(await again.findFile(idOf(1), 'a.bin')).toMatchObject({
      verified: true,
      status: 'verified',
      size: 100,
      cksum: 42,
      updatedAt: 1700,
    });
  });
});

describe('files', () => {
  const hex = idOf(1).toString('hex');

  async function storeWithClient(): Promise<SqliteStore> {
    const { store } = await newStore();
    await store.registerClient(idOf(1), 'alice', 1000);
    return store;
  }

  it('upserts a file row as received and unverified, resetting a verified one', async () => {
    const store = await storeWithClient();
    const base = { clientId: idOf(1), fileName: 'a', objectKey: `${hex}/a`, cksum: 1 };
    await store.putFile({ ...base, size: 10, updatedAt: 2000 });
    expect(await store.setFileStatus(idOf(1), 'a', 'verified', 2100)).toBe(true);
    await store.putFile({ ...base, size: 20, cksum: 2, updatedAt: 2200 });
    expect(await store.findFile(idOf(1), 'a')).toEqual({
      clientId: idOf(1),
      fileName: 'a',
      objectKey: `${hex}/a`,
      verified: false,
      status: 'received',
      size: 20,
      cksum: 2,
      updatedAt: 2200,
    });
    expect(await store.listFiles()).toHaveLength(1);
  });

  it('marks files verified or failed; unknown files report false', async () => {
    const store = await storeWithClient();
    for (const name of ['v', 'f']) {
      await store.putFile({
        clientId: idOf(1),
        fileName: name,
        objectKey: `${hex}/${name}`,
        size: 1,
        cksum: 1,
        updatedAt: 2000,
      });
    }
    expect(await store.setFileStatus(idOf(1), 'v', 'verified', 3000)).toBe(true);
    expect(await store.setFileStatus(idOf(1), 'f', 'failed', 3000)).toBe(true);
    expect(await store.setFileStatus(idOf(1), 'nope', 'verified', 3000)).toBe(false);
    expect(await store.findFile(idOf(1), 'v')).toMatchObject({
      verified: true,
      status: 'verified',
    });
    expect(await store.findFile(idOf(1), 'f')).toMatchObject({ verified: false, status: 'failed' });
  });

  it('counts stored bytes per client, leaving out failed files', async () => {
    const store = await storeWithClient();
    await store.registerClient(idOf(2), 'bob', 1000);
    const put = (id: Buffer, name: string, size: number) =>
      store.putFile({
        clientId: id,
        fileName: name,
        objectKey: `${id.toString('hex')}/${name}`,
        size,
        cksum: 0,
        updatedAt: 2000,
      });
    await put(idOf(1), 'a', 100);
    await put(idOf(1), 'b', 50);
    await put(idOf(1), 'c', 7);
    await put(idOf(2), 'a', 1000);
    await store.setFileStatus(idOf(1), 'c', 'failed', 2100);
    expect(await store.storedBytes(idOf(1))).toBe(150);
    expect(await store.storedBytes(idOf(2))).toBe(1000);
    expect(await store.storedBytes(idOf(3))).toBe(0);
  });

  it('rejects a file of an unknown client with a StorageError, not a driver error', async () => {
    const store = await storeWithClient();
    const error = await store
      .putFile({
        clientId: idOf(9),
        fileName: 'a',
        objectKey: 'x/a',
        size: 1,
        cksum: 1,
        updatedAt: 1,
      })
      .catch((err: unknown) => err);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).code).toBe(StorageErrorCode.DATABASE);
  });

  it('writes the audit row of a file change with it, and none when the change fails', async () => {
    const store = await storeWithClient();
    const audit = (outcome: AuditEntry['outcome'], clientId = idOf(1)): AuditEntry => ({
      time: 5000,
      remoteAddress: '127.0.0.1',
      clientId,
      name: null,
      requestCode: 1028,
      outcome,
      detail: 'a',
    });
    const file = { fileName: 'a', objectKey: `${hex}/a`, size: 1, cksum: 1, updatedAt: 1 };
    await store.putFile({ ...file, clientId: idOf(1) }, audit('file_stored'));
    // An unknown client breaks the row's foreign key: the audit row goes with it.
    await expect(
      store.putFile({ ...file, clientId: idOf(9) }, audit('file_stored', idOf(9))),
    ).rejects.toBeInstanceOf(StorageError);
    expect(await store.setFileStatus(idOf(1), 'a', 'verified', 2, audit('checksum_ok'))).toBe(true);
    expect(await store.setFileStatus(idOf(1), 'nope', 'failed', 3, audit('checksum_failed'))).toBe(
      false,
    );
    const rows = await store.listAudit();
    expect(rows.map((r) => [r.outcome, r.clientId?.toString('hex')])).toEqual([
      ['file_stored', hex],
      ['checksum_ok', hex],
    ]);
  });

  it('in a group commit too: audit rows only of the file changes that succeeded', async () => {
    const store = await storeWithClient();
    const audit = (detail: string, clientId = idOf(1)): AuditEntry => ({
      time: 6000,
      remoteAddress: '127.0.0.1',
      clientId,
      name: null,
      requestCode: 1028,
      outcome: 'file_stored',
      detail,
    });
    const file = (name: string, clientId = idOf(1)) => ({
      clientId,
      fileName: name,
      objectKey: `${hex}/${name}`,
      size: 1,
      cksum: 1,
      updatedAt: 1,
    });
    // Queued together, so they share one transaction; the second breaks its foreign key.
    const results = await Promise.allSettled([
      store.putFile(file('g1'), audit('g1')),
      store.putFile(file('g2', idOf(9)), audit('g2', idOf(9))),
      store.putFile(file('g3'), audit('g3')),
      store.setFileStatus(idOf(1), 'missing', 'verified', 7, audit('missing')),
    ]);
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'rejected',
      'fulfilled',
      'fulfilled',
    ]);
    expect((await store.listAudit()).map((r) => r.detail)).toEqual(['g1', 'g3']);
    expect((await store.listFiles()).map((f) => f.fileName).sort()).toEqual(['g1', 'g3']);
  });
});

describe('audit trail', () => {
  const entry = (time: number, outcome: AuditEntry['outcome'], detail?: string): AuditEntry => ({
    time,
    remoteAddress: '127.0.0.1',
    // A 1025 carries no usable id; later outcomes know the client.
    clientId: outcome === 'registered' ? null : idOf(1),
    name: 'alice',
    requestCode: 1025,
    outcome,
    ...(detail === undefined ? {} : { detail }),
  });

  it('records entries and lists them oldest first, from a time on', async () => {
    const { store } = await newStore();
    await store.audit(entry(3000, 'name_taken', 'second try'));
    await store.audit(entry(1000, 'registered'));
    await store.audit(entry(2000, 'rate_limited'));
    const all = await store.listAudit();
    expect(all.map((row) => row.time)).toEqual([1000, 2000, 3000]);
    expect(all[2]).toMatchObject({
      remoteAddress: '127.0.0.1',
      clientId: idOf(1),
      name: 'alice',
      requestCode: 1025,
      outcome: 'name_taken',
      detail: 'second try',
    });
    expect(all[0]).toMatchObject({ clientId: null, outcome: 'registered' });
    expect(all[0]).not.toHaveProperty('detail');
    expect((await store.listAudit(2000)).map((row) => row.outcome)).toEqual([
      'rate_limited',
      'name_taken',
    ]);
    expect((await store.queryAudit({ limit: 1 })).map((row) => row.time)).toEqual([3000]);
  });

  it('commits many concurrent entries, all of them, each once', async () => {
    const { store } = await newStore();
    const count = 500;
    await Promise.all(
      Array.from({ length: count }, (_, i) => store.audit(entry(i, 'file_stored', `f${i}`))),
    );
    const rows = await store.listAudit();
    expect(rows).toHaveLength(count);
    expect(new Set(rows.map((row) => row.detail)).size).toBe(count);
  });

  it('survives a restart', async () => {
    const { store, dir } = await newStore();
    await store.audit(entry(1000, 'registered'));
    await store.close();
    const { store: again } = await newStore(dir);
    expect(await again.listAudit()).toHaveLength(1);
  });
});

describe('failures are StorageErrors', () => {
  it('rejects every call after close with CLOSED', async () => {
    const { store } = await newStore();
    await store.close();
    await expect(store.findClientById(idOf(1))).rejects.toMatchObject({
      code: StorageErrorCode.CLOSED,
    });
    await expect(store.touch(idOf(1), 1)).rejects.toMatchObject({ code: StorageErrorCode.CLOSED });
    await expect(
      store.audit({
        time: 1,
        remoteAddress: 'x',
        clientId: null,
        name: null,
        requestCode: 1025,
        outcome: 'registered',
      }),
    ).rejects.toMatchObject({ code: StorageErrorCode.CLOSED });
    await expect(store.close()).resolves.toBeUndefined();
  });

  it('finishes work queued before close', async () => {
    const { store } = await newStore();
    const pending = store.registerClient(idOf(1), 'alice', 1);
    const closing = store.close();
    await expect(pending).resolves.toMatchObject({ ok: true });
    await closing;
  });

  it('reports a file that is not a database clearly', async () => {
    const dir = await dirs.make();
    const file = path.join(dir, DATABASE_FILE_NAME);
    await writeFile(file, Buffer.alloc(8192, 0x5a));
    const error = await openSqliteStore({ path: file }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).code).toBe(StorageErrorCode.DATABASE);
    expect((error as StorageError).message).toContain(file);
  });

  it('reports a database damaged inside', async () => {
    const { store, file } = await newStore();
    for (let i = 0; i < 200; i += 1) await store.registerClient(idOf(i), `client-${i}`, i);
    await store.close();
    // Overwrite the second page onwards (table b-tree pages) with garbage, keeping the header.
    const { open: openFile } = await import('node:fs/promises');
    const handle = await openFile(file, 'r+');
    await handle.write(Buffer.alloc(4096 * 3, 0xa5), 0, 4096 * 3, 4096);
    await handle.close();
    await expect(openSqliteStore({ path: file })).rejects.toMatchObject({
      code: StorageErrorCode.DATABASE,
    });
  });

  (runningAsRoot ? it.skip : it)('reports a read-only data directory clearly', async () => {
    const dir = await dirs.make();
    await chmod(dir, 0o500);
    try {
      const error = await openSqliteStore({ path: path.join(dir, DATABASE_FILE_NAME) }).catch(
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(StorageError);
      expect((error as StorageError).code).toBe(StorageErrorCode.DATABASE);
      expect(await readdir(dir)).toEqual([]);
    } finally {
      await chmod(dir, 0o700);
    }
  });
});

describe('read-only store (admin)', () => {
  it('refuses a missing database without creating anything', async () => {
    const dir = await dirs.make();
    await expect(
      openSqliteStore({ path: path.join(dir, DATABASE_FILE_NAME), readOnly: true }),
    ).rejects.toMatchObject({ code: StorageErrorCode.DATABASE });
    expect(await readdir(dir)).toEqual([]);
  });

  it('reads while a writer has the database open and leaves no files behind', async () => {
    const { store, dir, file } = await newStore();
    await store.registerClient(idOf(1), 'alice', 1000);
    const reader = await openSqliteStore({ path: file, readOnly: true });
    expect((await reader.listClientSummaries()).map((client) => client.name)).toEqual(['alice']);
    await reader.close();
    await store.close();
    expect(await readdir(dir)).toEqual([DATABASE_FILE_NAME]);
  });
});

describe('another process holding the write lock', () => {
  it('a write after reads waits for the lock (busy timeout) and then commits', async () => {
    const dir = await dirs.make();
    const file = path.join(dir, DATABASE_FILE_NAME);
    const store = await openSqliteStore({ path: file, busyTimeoutMs: 10_000 });
    open.push(store);
    await store.registerClient(idOf(1), 'alice', 1000);
    // Reads through prepared statements first: none may keep a read transaction open.
    await store.findClientByName('alice');
    await store.findFile(idOf(1), 'x');
    await store.storedBytes(idOf(1));
    const locker = await raw(file);
    await locker.exec('BEGIN EXCLUSIVE');
    const write = store.putFile({
      clientId: idOf(1),
      fileName: 'f',
      objectKey: `${idOf(1).toString('hex')}/f`,
      size: 1,
      cksum: 1,
      updatedAt: 1,
    });
    const settled = { done: false };
    void write.then(
      () => (settled.done = true),
      () => (settled.done = true),
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(settled.done).toBe(false);
    await locker.exec('ROLLBACK');
    await locker.close();
    await write;
    expect((await store.findFile(idOf(1), 'f'))?.size).toBe(1);
  });
});

describe('prepared lookups', () => {
  it('a lookup leaves no read transaction open: a write after another commit still succeeds', async () => {
    const dir = await dirs.make();
    const file = path.join(dir, 'lookup.db');
    const a = await raw(file);
    const b = await raw(file);
    try {
      await a.exec(
        'PRAGMA journal_mode = WAL; CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER); ' +
          'INSERT INTO t VALUES (1, 1), (2, 2);',
      );
      const lookup = await a.prepare('SELECT v FROM t WHERE k = ?', 'lookup');
      expect(await lookup.get<{ v: number }>([1])).toEqual({ v: 1 });
      // A snapshot still open on `a` would now be stale, and its write refused with SQLITE_BUSY.
      await b.run('UPDATE t SET v = v + 1 WHERE k = 2');
      await a.exec('BEGIN IMMEDIATE; UPDATE t SET v = 9 WHERE k = 1; COMMIT;');
      expect(await lookup.get<{ v: number }>([1])).toEqual({ v: 9 });
      expect(await lookup.get<{ v: number }>([3])).toBeUndefined();
      await lookup.finalize();
    } finally {
      await a.close();
      await b.close();
    }
  });
});
