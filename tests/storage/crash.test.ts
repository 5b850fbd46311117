import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { createDiskByteStore, INCOMING_DIR } from '../../server/storage/disk/byte-store';
import { DATABASE_FILE_NAME, openSqliteStore } from '../../server/storage/sqlite';
import { tempDirs } from './temp-dir';

const dirs = tempDirs('crash');
afterEach(() => dirs.cleanup());

/** Confirmations the child printed before SIGKILL hit it. */
function runAndKill(dataDir: string, afterConfirmed: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['-r', 'ts-node/register/transpile-only', path.join(__dirname, 'crash-child.ts'), dataDir],
      { cwd: path.resolve(__dirname, '../..'), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const confirmed: number[] = [];
    let pending = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text: string) => {
      pending += text;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) confirmed.push(Number(line));
      if (confirmed.length >= afterConfirmed) child.kill('SIGKILL');
    });
    child.stderr.on('data', (text: Buffer) => (stderr += text.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(confirmed);
      else reject(new Error(`child exited with ${code}: ${stderr}`));
    });
  });
}

it('keeps every confirmed commit and a sound database after SIGKILL, and sweeps the part file', async () => {
  const dataDir = await dirs.make();
  const confirmed = await runAndKill(dataDir, 200);
  expect(confirmed.length).toBeGreaterThanOrEqual(200);

  expect(await readdir(path.join(dataDir, INCOMING_DIR))).toHaveLength(1);
  expect(await createDiskByteStore(dataDir).sweepIncomplete()).toBe(1);
  expect(await readdir(path.join(dataDir, INCOMING_DIR))).toEqual([]);
  expect(await readdir(dataDir)).not.toContain('cc'.repeat(16));

  const store = await openSqliteStore({ path: path.join(dataDir, DATABASE_FILE_NAME) });
  try {
    expect(await store.integrityCheck()).toEqual(['ok']);
    const names = new Set((await store.listClients()).map((client) => client.name));
    for (const i of confirmed) expect(names.has(`client-${i}`)).toBe(true);
    const audited = new Set((await store.listAudit()).map((entry) => entry.name));
    for (const i of confirmed) expect(audited.has(`client-${i}`)).toBe(true);
  } finally {
    await store.close();
  }
});
