/**
 * What the SQLite store tests share: fresh stores in temp folders, closed and removed after
 * each test, and a raw connection for looking at what a store wrote.
 */
import * as path from 'node:path';
import { AsyncDatabase, OPEN_CREATE, OPEN_READWRITE } from '../../server/storage/sqlite/async';
import { DATABASE_FILE_NAME, openSqliteStore, type SqliteStore } from '../../server/storage/sqlite';
import { tempDirs } from './temp-dir';

export const PUBLIC_KEY = Buffer.from('30819d300d06092a864886f70d010101', 'hex');

export interface SqliteStores {
  /** A store on `dir` (a new temp folder when not given). */
  newStore(dir?: string): Promise<{ store: SqliteStore; dir: string; file: string }>;
  /** A new temp folder, removed after the test. */
  makeDir(): Promise<string>;
  /** Closes `store` after the test (one the test opened with options of its own). */
  track(store: SqliteStore): SqliteStore;
}

/** Registers the cleanup hook of the suite; call once at its top. */
export function sqliteStores(prefix: string): SqliteStores {
  const dirs = tempDirs(prefix);
  const open: SqliteStore[] = [];
  afterEach(async () => {
    for (const store of open.splice(0)) await store.close();
    await dirs.cleanup();
  });
  return {
    async newStore(dir) {
      const dataDir = dir ?? (await dirs.make());
      const file = path.join(dataDir, DATABASE_FILE_NAME);
      const store = await openSqliteStore({ path: file });
      open.push(store);
      return { store, dir: dataDir, file };
    },
    makeDir: () => dirs.make(),
    track(store) {
      open.push(store);
      return store;
    },
  };
}

/** A raw connection for looking at what the store wrote. */
export function raw(file: string): Promise<AsyncDatabase> {
  return AsyncDatabase.open(file, OPEN_READWRITE | OPEN_CREATE);
}
