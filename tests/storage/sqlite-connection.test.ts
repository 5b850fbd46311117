/**
 * The SQLite store as a database connection: its failures are StorageErrors, a read-only open
 * (the admin command) writes nothing, a write waits for another process's lock, and a prepared
 * lookup leaves no read transaction open.
 */
import { chmod, readdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { DATABASE_FILE_NAME, openSqliteStore } from '../../server/storage/sqlite';
import { StorageError, StorageErrorCode } from '../../server/storage/types';
import { raw, sqliteStores } from './sqlite-fixture';
import { idOf, runningAsRoot } from './temp-dir';

const { newStore, makeDir, track } = sqliteStores('store-connection');

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
    const dir = await makeDir();
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
    const dir = await makeDir();
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
    const dir = await makeDir();
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
    const dir = await makeDir();
    const file = path.join(dir, DATABASE_FILE_NAME);
    const store = await openSqliteStore({ path: file, busyTimeoutMs: 10_000 });
    track(store);
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
    const dir = await makeDir();
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
