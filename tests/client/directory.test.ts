/**
 * `sft-client -r DIR`: the files below a directory, in a fixed order; names that would clash
 * on the server (it keeps base names only) are all listed and nothing is sent.
 */
import { mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { ClientErrorCode, ExitCode } from '../../client/errors';
import { expandDirectories } from '../../client/session/file-list';
import { prepareUploads } from '../../client/session/upload-plan';
import { FakeServer, honest } from '../helpers/fake-server';
import { removeDir, runCli, startRealServer, tempDir, testBytes, type RealServer } from './helpers';

let server: RealServer | undefined;
let fake: FakeServer | undefined;
const dirs: string[] = [];

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await fake?.stop();
  fake = undefined;
  await Promise.all(dirs.splice(0).map(removeDir));
});

async function newDir(): Promise<string> {
  const dir = await tempDir();
  dirs.push(dir);
  return dir;
}

/** A tree: top files, nested folders, a link to a file and one to a folder. */
async function tree(): Promise<string> {
  const root = await newDir();
  await mkdir(join(root, 'b', 'deep'), { recursive: true });
  await mkdir(join(root, 'a'));
  await mkdir(join(root, 'empty'));
  await writeFile(join(root, 'z.txt'), 'z');
  await writeFile(join(root, 'a', 'one.bin'), testBytes(3000, 1));
  await writeFile(join(root, 'b', 'two.bin'), testBytes(70_000, 2));
  await writeFile(join(root, 'b', 'deep', 'three.bin'), Buffer.alloc(0));
  await symlink(join(root, 'z.txt'), join(root, 'b', 'link-to-file'));
  await symlink(join(root, 'a'), join(root, 'b', 'link-to-dir'));
  return root;
}

describe('expandDirectories', () => {
  it('leaves arguments alone without -r', async () => {
    const root = await tree();
    const files = [{ path: root }, { path: join(root, 'z.txt') }];
    expect(await expandDirectories(files, { recursive: false, exclude: [] })).toEqual({
      files,
      skipped: [],
    });
  });

  it('lists the regular files below, sorted at every level, links to files but not to folders', async () => {
    const root = await tree();
    const expanded = await expandDirectories([{ path: join(root, 'z.txt') }, { path: root }], {
      recursive: true,
      exclude: [],
    });
    expect(expanded.files.map((f) => f.path)).toEqual([
      join(root, 'z.txt'),
      join(root, 'a', 'one.bin'),
      join(root, 'b', 'deep', 'three.bin'),
      join(root, 'b', 'link-to-file'),
      join(root, 'b', 'two.bin'),
      join(root, 'z.txt'),
    ]);
  });

  it("never takes the client's me.info or priv.key from a directory", async () => {
    const root = await newDir();
    await writeFile(join(root, 'me.info'), 'secret');
    await writeFile(join(root, 'priv.key'), 'secret');
    await writeFile(join(root, 'data.bin'), 'data');
    const exclude = [join(root, 'me.info'), join(root, 'priv.key')];
    const expanded = await expandDirectories([{ path: root }], { recursive: true, exclude });
    expect(expanded.files).toEqual([
      { path: join(root, 'data.bin'), name: `${basename(root)}/data.bin` },
    ]);
    expect(expanded.skipped).toEqual(exclude);
  });

  it('refuses a directory with no files below it', async () => {
    const root = await newDir();
    await mkdir(join(root, 'nothing', 'here'), { recursive: true });
    await expect(
      expandDirectories([{ path: join(root, 'nothing') }], { recursive: true, exclude: [] }),
    ).rejects.toMatchObject({ code: ClientErrorCode.FILE_UNREADABLE, exitCode: ExitCode.USAGE });
  });
});

describe('name clashes', () => {
  it('lists every clash with all of its paths', async () => {
    const root = await newDir();
    for (const sub of ['x', 'y', 'z']) {
      await mkdir(join(root, sub));
      await writeFile(join(root, sub, 'same.bin'), sub);
      await writeFile(join(root, sub, `own-${sub}.bin`), sub);
    }
    await writeFile(join(root, 'x', 'twice.txt'), '1');
    await writeFile(join(root, 'y', 'twice.txt'), '2');
    const { files } = await expandDirectories([{ path: root }], { recursive: true, exclude: [] });
    let err: unknown;
    try {
      prepareUploads(files);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: ClientErrorCode.DUPLICATE_FILE_NAME, exitCode: 2 });
    const message = (err as Error).message;
    expect(message).toContain(
      `same name "same.bin": ${['x', 'y', 'z'].map((s) => join(root, s, 'same.bin')).join(', ')}`,
    );
    expect(message).toContain(
      `same name "twice.txt": ${join(root, 'x', 'twice.txt')}, ${join(root, 'y', 'twice.txt')}`,
    );
    expect(message).not.toContain('own-');
  });
});

describe('sft-client -r', () => {
  it('sends the files below a directory to the real server', async () => {
    const data = await newDir();
    server = await startRealServer(data);
    const root = await tree();
    const cfg = await newDir();
    await writeFile(join(cfg, 'transfer.info'), `${server.address}\nDirectory Client\n`);
    const result = await runCli(['-c', cfg, '--json', '-r', root]);
    expect(result.code).toBe(ExitCode.OK);
    const doc = JSON.parse(result.stdout) as {
      clientId: string;
      files: { name: string; verified: boolean }[];
    };
    // Over v4 (the default) a file keeps its folders below the argument, whose name comes
    // first; the link keeps its own name: a file is stored under the name it was found by.
    const top = basename(root);
    expect(doc.files.map((f) => [f.name, f.verified])).toEqual([
      [`${top}/a/one.bin`, true],
      [`${top}/b/deep/three.bin`, true],
      [`${top}/b/link-to-file`, true],
      [`${top}/b/two.bin`, true],
      [`${top}/z.txt`, true],
    ]);
    // Each name is one file of the client's folder, its / written \ (object-keys.ts).
    const stored = join(data, doc.clientId);
    expect((await readdir(stored)).sort()).toEqual(
      doc.files.map((f) => f.name.replaceAll('/', '\\')).sort(),
    );
    expect((await readFile(join(stored, `${top}\\b\\two.bin`))).equals(testBytes(70_000, 2))).toBe(
      true,
    );
    expect(await readFile(join(stored, `${top}\\b\\link-to-file`), 'utf8')).toBe('z');
  });

  it('over v4 keeps folders: one base name in two folders is two files; one path twice clashes', async () => {
    const data = await newDir();
    server = await startRealServer(data);
    const root = await newDir();
    for (const sub of ['one', 'two']) {
      await mkdir(join(root, 'docs', sub), { recursive: true });
      await writeFile(join(root, 'docs', sub, 'report.pdf'), sub);
    }
    const cfg = await newDir();
    await writeFile(join(cfg, 'transfer.info'), `${server.address}\nFolder Client\n`);
    const result = await runCli(['-c', cfg, '--json', '-r', join(root, 'docs')]);
    expect(result.code).toBe(ExitCode.OK);
    const doc = JSON.parse(result.stdout) as { clientId: string; files: { name: string }[] };
    expect(doc.files.map((f) => f.name)).toEqual(['docs/one/report.pdf', 'docs/two/report.pdf']);
    const stored = join(data, doc.clientId);
    expect(await readFile(join(stored, 'docs\\one\\report.pdf'), 'utf8')).toBe('one');
    expect(await readFile(join(stored, 'docs\\two\\report.pdf'), 'utf8')).toBe('two');

    // Two arguments whose folders have one name give the same paths: refused, nothing sent.
    const other = await newDir();
    await mkdir(join(other, 'docs', 'one'), { recursive: true });
    await writeFile(join(other, 'docs', 'one', 'report.pdf'), 'other');
    const clash = await runCli(['-c', cfg, '-r', join(root, 'docs'), join(other, 'docs')]);
    expect(clash.code).toBe(ExitCode.USAGE);
    expect(clash.stderr).toContain('same name "docs/one/report.pdf"');
    expect(await readFile(join(stored, 'docs\\one\\report.pdf'), 'utf8')).toBe('one');
  });

  it('refuses clashing names before any byte is sent, naming every clash (exit 2)', async () => {
    const data = await newDir();
    server = await startRealServer(data);
    const root = await newDir();
    for (const sub of ['one', 'two']) {
      await mkdir(join(root, sub));
      await writeFile(join(root, sub, 'report.pdf'), sub);
      await writeFile(join(root, sub, 'notes.txt'), sub);
    }
    const cfg = await newDir();
    await writeFile(join(cfg, 'transfer.info'), `${server.address}\nClash Client\n`);
    // Over v3, which stores base names only.
    const result = await runCli(['--protocol', 'v3', '-c', cfg, '-r', root]);
    expect(result.code).toBe(ExitCode.USAGE);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/2 names are shared by several files/);
    expect(result.stderr).toContain(`same name "notes.txt": ${join(root, 'one', 'notes.txt')}`);
    expect(result.stderr).toContain(`same name "report.pdf": ${join(root, 'one', 'report.pdf')}`);
    // Not registered, nothing stored: the run ended before it connected.
    expect(await readdir(cfg)).toEqual(['transfer.info']);
    expect((await readdir(data)).filter((n) => /^[0-9a-f]{32}$/.test(n))).toEqual([]);

    // The same against a server that counts connections: none was made.
    const { handler } = honest();
    fake = await FakeServer.start(handler);
    const again = await runCli(['--protocol', 'v3', '-c', cfg, '-s', fake.address, '-r', root]);
    expect(again.code).toBe(ExitCode.USAGE);
    expect(fake.connectionCount).toBe(0);
  });

  it("skips the client's own key files in the config directory, with a note", async () => {
    const data = await newDir();
    server = await startRealServer(data);
    const cfg = await newDir();
    await writeFile(join(cfg, 'transfer.info'), `${server.address}\nKey Keeper\n`);
    await writeFile(join(cfg, 'notes.txt'), 'notes');
    // The first run registers: its key files appear in the directory that is sent next.
    expect((await runCli(['--protocol', 'v3', '-c', cfg, join(cfg, 'notes.txt')])).code).toBe(0);
    expect((await runCli(['-c', cfg, join(cfg, 'notes.txt')])).code).toBe(0);
    const keys = (await readdir(cfg)).filter((n) =>
      ['me.info', 'priv.key', 'identity.key'].includes(n),
    );
    expect(keys.sort()).toEqual(['identity.key', 'me.info', 'priv.key']);
    const result = await runCli(['-c', cfg, '--json', '-r', cfg]);
    expect(result.code).toBe(ExitCode.OK);
    const doc = JSON.parse(result.stdout) as { files: { name: string }[] };
    expect(doc.files.map((f) => basename(f.name)).sort()).toEqual(
      (await readdir(cfg)).filter((n) => !keys.includes(n)).sort(),
    );
    expect(result.stderr).toMatch(/warning: not sending .*: a private key of this client/);
    for (const key of keys) expect(result.stderr).toContain(join(cfg, key));
  });

  it('without -r a directory is still refused, with the hint to add -r', async () => {
    const root = await tree();
    const cfg = await newDir();
    await writeFile(join(cfg, 'transfer.info'), '127.0.0.1:1\nNo Dir\n');
    const result = await runCli(['-c', cfg, root]);
    expect(result.code).toBe(ExitCode.USAGE);
    expect(result.stderr).toMatch(/is a directory/);
    expect(result.stderr).toMatch(/add -r to send the files below it/);
  });
});
