/**
 * A client's own files over version 4, real server and client processes on loopback
 * (docs/protocol-v4.md §5.6, §5.7): list, get (byte-identical, SHA-256 checked, resumed after a
 * cut, never over an existing file without --force) and delete, each confined to the client's
 * own files.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SERVER_MAIN, type ServerProcess } from '../helpers/server-process';
import { DownloadCutProxy } from './download-proxy';
import { CLIENT_MAIN, patternBytes, runClient, sha256File, e2eFixture } from './helpers';

const MIB = 1024 * 1024;

interface Listed {
  readonly name: string;
  readonly size: number;
  readonly sha256?: string;
  readonly verified: boolean;
  readonly e2e: boolean;
}

type Doc = {
  readonly ok: boolean;
  readonly files?: Listed[];
  readonly file?: { readonly bytes: number; readonly sha256: string; readonly resumedFrom: number };
  readonly error?: { readonly code: string };
};

const doc = (run: { json: unknown }): Doc => run.json as Doc;

describe('v4 end to end: list, get, delete', () => {
  const fx = e2eFixture();
  const dir = fx.dir;
  const server = (dataDir: string): Promise<ServerProcess> =>
    fx.server(dataDir, ['--log-level', 'info']);

  it('round trip: list shows name, size, SHA-256 and verified; get is byte-identical; no overwrite without --force', async () => {
    const data = await dir('srv');
    const conf = await dir('cli');
    const big = join(conf, 'big.bin');
    const empty = join(conf, 'empty.txt');
    await writeFile(big, patternBytes(5 * MIB + 123, 3));
    await writeFile(empty, '');
    const s = await server(data);
    const addr = ['--server', `127.0.0.1:${s.port}`];
    expect((await runClient(conf, [...addr, '--name', 'ada', big, empty])).code).toBe(0);

    const list = await runClient(conf, [...addr, 'list']);
    expect(list.code).toBe(0);
    const files = doc(list).files ?? [];
    expect(files.map((f) => f.name).sort()).toEqual(['big.bin', 'empty.txt']);
    const listedBig = files.find((f) => f.name === 'big.bin');
    expect(listedBig).toMatchObject({ size: 5 * MIB + 123, verified: true, e2e: false });
    expect(listedBig?.sha256).toBe(await sha256File(big));

    const out = join(conf, 'out');
    const got = await runClient(conf, [...addr, 'get', 'big.bin', '-o', out]);
    expect(got.code).toBe(0);
    expect(await sha256File(out)).toBe(await sha256File(big));
    expect(doc(got).file).toMatchObject({ bytes: 5 * MIB + 123, resumedFrom: 0 });
    const gotEmpty = await runClient(conf, [...addr, 'get', 'empty.txt', '-o', join(conf, 'e')]);
    expect(gotEmpty.code).toBe(0);
    expect((await readFile(join(conf, 'e'))).length).toBe(0);

    // An existing file is refused before anything is fetched, and stays as it was.
    await writeFile(out, 'mine');
    const refused = await runClient(conf, [...addr, 'get', 'big.bin', '-o', out]);
    expect(refused.code).toBe(2);
    expect(doc(refused).error?.code).toBe('OUTPUT_EXISTS');
    expect(await readFile(out, 'utf8')).toBe('mine');
    const forced = await runClient(conf, [...addr, 'get', 'big.bin', '-o', out, '--force']);
    expect(forced.code).toBe(0);
    expect(await sha256File(out)).toBe(await sha256File(big));
    // No temp file is left beside it.
    expect((await readdir(conf)).filter((n) => n.includes('.sft-get'))).toEqual([]);

    const missing = await runClient(conf, [...addr, 'get', 'nope.bin', '-o', join(conf, 'n')]);
    expect(missing.code).toBe(4);
    expect(doc(missing).error?.code).toBe('NOT_FOUND');
    expect(existsSync(join(conf, 'n'))).toBe(false);
  });

  it('a name with folders: listed as sent, got into its base name here, deleted apart from its base name', async () => {
    const data = await dir('srv');
    const conf = await dir('cli');
    await mkdir(join(conf, 'photos', '2024'), { recursive: true });
    await writeFile(join(conf, 'photos', '2024', 'a.jpg'), patternBytes(70_000, 5));
    await writeFile(join(conf, 'a.jpg'), 'top');
    const s = await server(data);
    const addr = ['--server', `127.0.0.1:${s.port}`];
    const sent = await runClient(conf, [...addr, '--name', 'eve', '-r', join(conf, 'photos')]);
    expect(sent.code).toBe(0);
    expect((await runClient(conf, [...addr, join(conf, 'a.jpg')])).code).toBe(0);
    const listed = (doc(await runClient(conf, [...addr, 'list'])).files ?? []).map((f) => f.name);
    expect(listed.sort()).toEqual(['a.jpg', 'photos/2024/a.jpg']);

    // Without -o the download lands in the working directory under its base name.
    const here = await dir('here');
    const got = spawnSync(
      process.execPath,
      [CLIENT_MAIN, '--config-dir', conf, ...addr, 'get', 'photos/2024/a.jpg'],
      { cwd: here, encoding: 'utf8' },
    );
    expect(got.status).toBe(0);
    expect(await readdir(here)).toEqual(['a.jpg']);
    expect((await readFile(join(here, 'a.jpg'))).equals(patternBytes(70_000, 5))).toBe(true);

    expect((await runClient(conf, [...addr, 'delete', 'photos/2024/a.jpg'])).code).toBe(0);
    const after = (doc(await runClient(conf, [...addr, 'list'])).files ?? []).map((f) => f.name);
    expect(after).toEqual(['a.jpg']);
    const refused = await runClient(conf, [
      ...addr,
      'get',
      'photos/../a.jpg',
      '-o',
      join(here, 'x'),
    ]);
    expect(refused.code).toBe(2);
    expect(doc(refused).error?.code).toBe('BAD_FILE_NAME');
  });

  it('resumes a download cut mid-way from its temp file; the target never holds half a file', async () => {
    const data = await dir('srv');
    const conf = await dir('cli');
    const size = 24 * MIB;
    const file = join(conf, 'film.bin');
    await writeFile(file, patternBytes(size, 9));
    const s = await server(data);
    const direct = ['--server', `127.0.0.1:${s.port}`];
    expect((await runClient(conf, [...direct, '--name', 'bea', file])).code).toBe(0);

    const proxy = await DownloadCutProxy.start(s.port, 10 * MIB);
    fx.onCleanup(() => proxy.close());
    const out = join(conf, 'copy.bin');
    // Through the proxy: a known_servers line for its address is made on first contact.
    const cut = await runClient(conf, [
      '--server',
      `127.0.0.1:${proxy.port}`,
      'get',
      'film.bin',
      '-o',
      out,
    ]);
    expect(cut.code).toBe(3);
    expect(existsSync(out)).toBe(false);
    const temps = (await readdir(conf)).filter((n) => n.startsWith('.copy.bin.sft-get'));
    expect(temps.length).toBeGreaterThan(0);

    const again = await runClient(conf, [
      '--server',
      `127.0.0.1:${proxy.port}`,
      'get',
      'film.bin',
      '-o',
      out,
    ]);
    expect(again.code).toBe(0);
    // Resumed from what reached the temp file before the cut (how much depends on the machine's
    // load), never from zero and never past the cut.
    const resumedFrom = doc(again).file?.resumedFrom ?? 0;
    expect(resumedFrom).toBeGreaterThanOrEqual(MIB);
    expect(resumedFrom).toBeLessThanOrEqual(10 * MIB);
    expect(await sha256File(out)).toBe(await sha256File(file));
    expect((await readdir(conf)).filter((n) => n.includes('.sft-get'))).toEqual([]);
  });

  it('delete removes the file, its row and writes file_deleted; another client can neither list, get nor delete it', async () => {
    const data = await dir('srv');
    const alice = await dir('alice');
    const bob = await dir('bob');
    const file = join(alice, 'secret.txt');
    await writeFile(file, 'only for alice\n');
    const s = await server(data);
    const addr = ['--server', `127.0.0.1:${s.port}`];
    const sent = await runClient(alice, [...addr, '--name', 'alice', file]);
    expect(sent.code).toBe(0);
    const aliceId = sent.json?.clientId as string;
    expect((await runClient(bob, [...addr, '--name', 'bob', join(alice, 'secret.txt')])).code).toBe(
      0,
    );
    // Bob stored a file of the same name: his own, not alice's.
    await writeFile(join(bob, 'secret.txt'), 'bob\n');

    const bobList = await runClient(bob, [...addr, 'list']);
    expect((doc(bobList).files ?? []).map((f) => f.size)).toEqual([15]);
    const bobDelete = await runClient(bob, [...addr, 'delete', 'secret.txt']);
    expect(bobDelete.code).toBe(0);
    const bobAgain = await runClient(bob, [...addr, 'get', 'secret.txt', '-o', join(bob, 'x')]);
    expect(bobAgain.code).toBe(4);
    expect(doc(bobAgain).error?.code).toBe('NOT_FOUND');
    const bobDeleteAgain = await runClient(bob, [...addr, 'delete', 'secret.txt']);
    expect(doc(bobDeleteAgain).error?.code).toBe('NOT_FOUND');
    expect((doc(await runClient(bob, [...addr, 'list'])).files ?? []).length).toBe(0);

    // Alice's file is untouched by all of that.
    expect(await readFile(join(data, aliceId, 'secret.txt'), 'utf8')).toBe('only for alice\n');
    const aliceGet = await runClient(alice, [
      ...addr,
      'get',
      'secret.txt',
      '-o',
      join(alice, 'back'),
    ]);
    expect(aliceGet.code).toBe(0);
    expect(await readFile(join(alice, 'back'), 'utf8')).toBe('only for alice\n');

    const deleted = await runClient(alice, [...addr, 'delete', 'secret.txt']);
    expect(deleted.code).toBe(0);
    expect(existsSync(join(data, aliceId, 'secret.txt'))).toBe(false);
    expect((doc(await runClient(alice, [...addr, 'list'])).files ?? []).length).toBe(0);

    await s.stop('SIGINT');
    const audit = spawnSync(
      process.execPath,
      [SERVER_MAIN, 'admin', 'audit', '--json', '--data-dir', data],
      {
        encoding: 'utf8',
      },
    );
    expect(audit.status).toBe(0);
    const rows = JSON.parse(audit.stdout) as Array<{ outcome: string; clientId: string | null }>;
    const deletions = rows.filter((r) => r.outcome === 'file_deleted');
    expect(deletions.length).toBe(2);
    expect(deletions.map((r) => r.clientId)).toContain(aliceId);
  });
});
