/**
 * One daemon per data folder. Two daemons on one folder would remove each other's uploads in
 * flight when they start (the sweep of `.incoming/`), and each serializes changes to a file
 * with its own locks, so both could write one file at once. A daemon therefore holds a write
 * lock on `<data-dir>/.daemon.lock` for as long as it runs, and a second one finds it held and
 * refuses to start.
 *
 * The lock is a SQLite write transaction left open: SQLite's locks are the operating system's
 * record locks, which the kernel drops when the process dies, so a killed daemon leaves no
 * stale lock behind (a pid file would). The holder's pid, for the refusal's message, is in
 * `.daemon.pid` beside it.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sqlite3 from 'sqlite3';
import { StorageError, StorageErrorCode } from '../types';
import { AsyncDatabase, sqliteCode } from './async';

export const LOCK_FILE_NAME = '.daemon.lock';
export const PID_FILE_NAME = '.daemon.pid';

export interface DirLock {
  /** Lets another daemon start on the folder. */
  release(): Promise<void>;
}

/** Takes the data folder for this process, or throws StorageError(IN_USE) naming the holder. */
export async function lockDataDir(dir: string, pid: number): Promise<DirLock> {
  const db = await AsyncDatabase.open(
    join(dir, LOCK_FILE_NAME),
    sqlite3.OPEN_READWRITE | sqlite3.OPEN_CREATE,
  );
  try {
    db.configureBusyTimeout(0);
    // No journal file: the transaction never writes anything.
    await db.exec('PRAGMA journal_mode = MEMORY', 'cannot set up the data folder lock');
    await db.exec('BEGIN IMMEDIATE', 'cannot lock the data folder');
  } catch (err) {
    await db.close().catch(() => undefined);
    if (sqliteCode(err) !== 'SQLITE_BUSY') throw err;
    const holder = (await readFile(join(dir, PID_FILE_NAME), 'utf8').catch(() => '')).trim();
    throw new StorageError(
      StorageErrorCode.IN_USE,
      `${dir} is in use by another sft-server${/^\d+$/.test(holder) ? ` (pid ${holder})` : ''}: ` +
        'stop it first, or give this one a --data-dir of its own',
    );
  }
  const pidFile = join(dir, PID_FILE_NAME);
  await writeFile(pidFile, `${pid}\n`, { mode: 0o600 });
  return {
    async release() {
      await rm(pidFile, { force: true });
      await db.exec('ROLLBACK').catch(() => undefined);
      await db.close();
    },
  };
}
