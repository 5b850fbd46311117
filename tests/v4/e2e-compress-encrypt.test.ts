/**
 * Compression before encryption and end-to-end encrypted files, real server and client
 * processes on loopback (docs/protocol-v4.md §5.8, §5.9).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sqlite3 from 'sqlite3';
import { SERVER_MAIN } from '../helpers/server-process';
import { patternBytes, runClient, sha256File, TestProxy, e2eFixture } from './helpers';

/** What a tampering server would do: change the SHA-256 and flags the row of `fileName` holds. */
function forgeRow(
  dbPath: string,
  fileName: string,
  v4: { readonly sha256: Buffer; readonly flags: number },
): Promise<void> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(dbPath, (opened) => {
      if (opened) return reject(opened);
      db.run(
        'UPDATE files SET Sha256 = ?, Flags = ? WHERE FileName = ?',
        [v4.sha256, v4.flags, fileName],
        function (this: sqlite3.RunResult, err: Error | null) {
          const changes = this?.changes;
          db.close(() =>
            err ? reject(err) : changes === 1 ? resolve() : reject(new Error('no row forged')),
          );
        },
      );
    });
  });
}

const MIB = 1024 * 1024;

interface Listed {
  readonly name: string;
  readonly size: number;
  readonly plainSize?: number;
  readonly e2e: boolean;
  readonly compressed: boolean;
}

type Doc = {
  readonly files?: ReadonlyArray<Listed & { readonly bytesSent?: number }>;
  readonly error?: { readonly code: string };
};
const doc = (run: { json: unknown }): Doc => run.json as Doc;

/** Text-like bytes that deflate well. */
function compressible(size: number): Buffer {
  const lines: string[] = [];
  let length = 0;
  for (let i = 0; length < size; i++) {
    const line = `${i.toString().padStart(8, '0')} INFO request served in ${i % 97} ms\n`;
    lines.push(line);
    length += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, size);
}

describe('v4 end to end: --compress and --e2e', () => {
  const fx = e2eFixture();
  const dir = fx.dir;
  const start = async (data: string): Promise<string[]> => {
    const s = await fx.server(data, ['--log-level', 'info']);
    return ['--server', `127.0.0.1:${s.port}`];
  };

  it('--compress sends compressible data deflated and incompressible data as it is; the server stores the originals', async () => {
    const data = await dir('srv');
    const conf = await dir('cli');
    const text = join(conf, 'log.txt');
    const noise = join(conf, 'noise.bin');
    await writeFile(text, compressible(8 * MIB));
    await writeFile(noise, patternBytes(3 * MIB, 21));
    const addr = await start(data);
    const sent = await runClient(conf, [...addr, '--name', 'cy', '--compress', text, noise]);
    expect(sent.code).toBe(0);
    const [textResult, noiseResult] = doc(sent).files ?? [];
    expect(textResult?.bytesSent).toBeLessThan(MIB);
    expect(noiseResult?.bytesSent).toBe(3 * MIB);
    const id = sent.json?.clientId as string;
    expect(await sha256File(join(data, id, 'log.txt'))).toBe(await sha256File(text));
    expect(await sha256File(join(data, id, 'noise.bin'))).toBe(await sha256File(noise));

    const listed = doc(await runClient(conf, [...addr, 'list'])).files ?? [];
    expect(listed.find((f) => f.name === 'log.txt')).toMatchObject({ compressed: true });
    expect(listed.find((f) => f.name === 'noise.bin')).toMatchObject({ compressed: false });
    const got = await runClient(conf, [...addr, 'get', 'log.txt', '-o', join(conf, 'back')]);
    expect(got.code).toBe(0);
    expect(await sha256File(join(conf, 'back'))).toBe(await sha256File(text));

    // The administrator sees the same: sizes, SHA-256 and the flags.
    const admin = spawnSync(
      process.execPath,
      [SERVER_MAIN, 'admin', 'files', '--json', '--data-dir', data],
      { encoding: 'utf8' },
    );
    expect(admin.status).toBe(0);
    const rows = JSON.parse(admin.stdout) as Array<Record<string, unknown>>;
    expect(rows.find((r) => r.fileName === 'log.txt')).toMatchObject({
      size: 8 * MIB,
      sha256: await sha256File(text),
      e2e: false,
      compressed: true,
    });
    expect(rows.find((r) => r.fileName === 'noise.bin')).toMatchObject({
      size: 3 * MIB,
      compressed: false,
    });
    const table = spawnSync(process.execPath, [SERVER_MAIN, 'admin', 'files', '--data-dir', data], {
      encoding: 'utf8',
    });
    expect(table.stdout.split('\n')[0]).toContain('SHA-256');
    expect(table.stdout).toContain(await sha256File(noise));

    // Without the flag nothing is deflated.
    await writeFile(join(conf, 'log2.txt'), compressible(2 * MIB));
    const plain = await runClient(conf, [...addr, join(conf, 'log2.txt')]);
    expect(doc(plain).files?.[0]?.bytesSent).toBe(2 * MIB);
  });

  it('--e2e: the server holds only ciphertext, get restores the original, a flipped stored byte fails get with no output', async () => {
    const data = await dir('srv');
    const conf = await dir('cli');
    const marker = Buffer.from('TOP SECRET: the launch code is 0000. ');
    const plain = Buffer.concat(Array.from({ length: 40_000 }, () => marker));
    const file = join(conf, 'secret.txt');
    await writeFile(file, plain);
    const addr = await start(data);
    const sent = await runClient(conf, [...addr, '--name', 'dee', '--e2e', file]);
    expect(sent.code).toBe(0);
    const id = sent.json?.clientId as string;
    expect(((await stat(join(conf, 'e2e.key'))).mode & 0o777).toString(8)).toBe('600');
    // The outgoing cache is emptied once the upload is stored.
    expect(await readdir(join(conf, 'e2e-outgoing'))).toEqual([]);

    const stored = await readFile(join(data, id, 'secret.txt'));
    expect(stored.equals(plain)).toBe(false);
    expect(stored.includes(marker.subarray(0, 16))).toBe(false);
    expect(stored.includes(Buffer.from('launch code'))).toBe(false);

    const listed = doc(await runClient(conf, [...addr, 'list'])).files ?? [];
    expect(listed[0]).toMatchObject({ name: 'secret.txt', e2e: true, plainSize: plain.length });
    expect(listed[0]?.size).toBe(stored.length);
    const admin = spawnSync(
      process.execPath,
      [SERVER_MAIN, 'admin', 'files', '--json', '--data-dir', data],
      { encoding: 'utf8' },
    );
    expect(JSON.parse(admin.stdout)).toEqual([
      expect.objectContaining({ fileName: 'secret.txt', size: stored.length, e2e: true }),
    ]);

    const out = join(conf, 'restored.txt');
    expect((await runClient(conf, [...addr, 'get', 'secret.txt', '-o', out])).code).toBe(0);
    expect((await readFile(out)).equals(plain)).toBe(true);

    // One byte flipped on the server's disk: the SHA-256 the server recorded no longer matches.
    const flipped = Buffer.from(stored);
    flipped[1000] = (flipped[1000] ?? 0) ^ 0x01;
    await writeFile(join(data, id, 'secret.txt'), flipped);
    const out2 = join(conf, 'again.txt');
    const bad = await runClient(conf, [...addr, 'get', 'secret.txt', '-o', out2]);
    expect(bad.code).toBe(5);
    expect(doc(bad).error?.code).toBe('CHECKSUM_FAILED');
    expect(existsSync(out2)).toBe(false);

    // A server that also rewrites the file's row to match (or loses the E2E flag) is caught
    // by the encryption itself.
    await forgeRow(join(data, 'defensive.db'), 'secret.txt', {
      sha256: createHash('sha256').update(flipped).digest(),
      flags: 0,
    });
    const forged = await runClient(conf, [...addr, 'get', 'secret.txt', '-o', out2]);
    expect(forged.code).toBe(5);
    expect(doc(forged).error?.code).toBe('DECRYPT_FAILED');
    expect(existsSync(out2)).toBe(false);
    expect((await readdir(conf)).filter((n) => n.includes('.sft-get'))).toEqual([]);
  });
  it('--e2e: a cut encrypted upload resumes with the same ciphertext', async () => {
    const data = await dir('srv');
    const conf = await dir('cli');
    const file = join(conf, 'video.bin');
    const plain = patternBytes(6 * MIB, 33);
    await writeFile(file, plain);
    const addr = await start(data);
    const port = Number((addr[1] as string).split(':')[1]);
    const proxy = await TestProxy.start(port, { cutAfter: 3 * MIB });
    try {
      const through = ['--server', `127.0.0.1:${proxy.port}`];
      const cut = await runClient(conf, [...through, '--name', 'fay', '--e2e', file]);
      expect(cut.code).toBe(3);
      expect((await readdir(join(conf, 'e2e-outgoing'))).length).toBe(1);
      const again = await runClient(conf, [...through, '--e2e', file]);
      expect(again.code).toBe(0);
      const row = (again.json?.files ?? [])[0] as { resumedFrom?: number } | undefined;
      expect(row?.resumedFrom).toBeGreaterThan(MIB);
      expect(await readdir(join(conf, 'e2e-outgoing'))).toEqual([]);
      const out = join(conf, 'back.bin');
      expect((await runClient(conf, [...through, 'get', 'video.bin', '-o', out])).code).toBe(0);
      expect((await readFile(out)).equals(plain)).toBe(true);
    } finally {
      await proxy.close();
    }
  });
});
