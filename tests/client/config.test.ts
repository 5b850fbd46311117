/**
 * Config files (§8): transfer.info, me.info and priv.key parsing, with the error code, exit code
 * and file:line of every malformed case; atomic 0600 writes; and a few cases through the CLI.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import {
  formatMeInfo,
  loadIdentity,
  parseMeInfo,
  saveIdentity,
  writeSecretFile,
} from '../../client/config/identity';
import { parseServerAddress } from '../../client/config/server-address';
import { resolveConfig } from '../../client/config/transfer-info';
import { ClientErrorCode, ExitCode } from '../../client/errors';
import { removeDir, runCli, tempDir } from './helpers';

const FIXTURES = join(__dirname, '..', 'fixtures', 'real-clients');
const ID_HEX = '0123456789abcdef0123456789abcdef';

function rsaDer(type: 'rsa' | 'ec' = 'rsa'): Buffer {
  const { privateKey } =
    type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 1024, publicExponent: 17 })
      : generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return privateKey.export({ type: 'pkcs8', format: 'der' });
}

const KEY_B64 = rsaDer().toString('base64');

let dir: string;
beforeEach(async () => {
  dir = await tempDir();
});
afterEach(async () => removeDir(dir));

describe('parseServerAddress', () => {
  it.each([
    ['127.0.0.1:1256', '127.0.0.1', 1256, '127.0.0.1:1256'],
    ['localhost:80', 'localhost', 80, 'localhost:80'],
    ['files.example.com:65535', 'files.example.com', 65535, 'files.example.com:65535'],
    ['[::1]:1256', '::1', 1256, '[::1]:1256'],
    ['[2001:db8::7]:1', '2001:db8::7', 1, '[2001:db8::7]:1'],
    ['  10.0.0.2:1256  ', '10.0.0.2', 1256, '10.0.0.2:1256'],
  ])('%j → %s port %i', (text, host, port, display) => {
    expect(parseServerAddress(text)).toEqual({ host, port, display });
  });

  it.each([
    ['', /empty/],
    ['127.0.0.1', /no port/],
    ['127.0.0.1:', /port ""/],
    ['127.0.0.1:0', /port "0"/],
    ['127.0.0.1:65536', /port "65536"/],
    ['127.0.0.1:12ab', /port "12ab"/],
    ['256.1.1.1:1256', /not a valid IPv4/],
    ['::1:1256', /in brackets/],
    ['[not-v6]:1256', /not an IPv6/],
    ['bad host:1256', /not a valid host name/],
    [':1256', /host is empty/],
  ])('%j is refused (%s)', (text, problem) => {
    const result = parseServerAddress(text);
    expect(typeof result).toBe('string');
    expect(result).toMatch(problem);
  });
});

describe('transfer.info', () => {
  const write = (text: string): Promise<void> => writeFile(join(dir, 'transfer.info'), text);
  const resolveIn = (extra: { server?: string; name?: string; files?: readonly string[] } = {}) =>
    resolveConfig({ configDir: dir, ...extra });

  it('reads server, name and a file path relative to the config dir', async () => {
    await write('\ufeff127.0.0.1:1256\r\nAlice Example\r\nsub/a.bin\r\n\r\n');
    const config = await resolveIn();
    expect(config.server).toEqual({ host: '127.0.0.1', port: 1256, display: '127.0.0.1:1256' });
    expect(config.registerName).toBe('Alice Example');
    expect(config.files).toEqual([
      { path: join(dir, 'sub', 'a.bin'), location: { file: join(dir, 'transfer.info'), line: 3 } },
    ]);
    expect(config.identity).toBeUndefined();
  });

  it('lets flags replace every line, and then needs no transfer.info', async () => {
    const config = await resolveIn({ server: '[::1]:9', name: 'Bob', files: ['x', 'y'] });
    expect(config.server.display).toBe('[::1]:9');
    expect(config.registerName).toBe('Bob');
    expect(config.files.map((f) => f.path)).toEqual([
      join(process.cwd(), 'x'),
      join(process.cwd(), 'y'),
    ]);
  });

  it('keeps an absolute path on line 3 as it is', async () => {
    await write('h:1\nn\n/abs/file.bin\n');
    expect((await resolveIn()).files[0].path).toBe('/abs/file.bin');
  });

  it.each([
    ['missing file', undefined, {}, ClientErrorCode.CONFIG_MISSING, undefined],
    ['bad host:port on line 1', 'nonsense\nname\nf\n', {}, ClientErrorCode.BAD_SERVER_ADDRESS, 1],
    ['empty line 1', '\nname\nf\n', {}, ClientErrorCode.BAD_SERVER_ADDRESS, 1],
    ['empty name on line 2', 'h:1\n\nf\n', {}, ClientErrorCode.BAD_CLIENT_NAME, 2],
    [
      'name over 100 characters',
      `h:1\n${'n'.repeat(101)}\nf\n`,
      {},
      ClientErrorCode.BAD_CLIENT_NAME,
      2,
    ],
    ['name with a control character', 'h:1\na\u0007b\nf\n', {}, ClientErrorCode.BAD_CLIENT_NAME, 2],
    ['no line 3', 'h:1\nname\n', {}, ClientErrorCode.MISSING_FILE_PATH, 3],
    ['empty line 3', 'h:1\nname\n\nmore\n', {}, ClientErrorCode.MISSING_FILE_PATH, 3],
    ['only line 1, name needed', 'h:1\n', { files: ['f'] }, ClientErrorCode.BAD_CLIENT_NAME, 2],
  ] as const)('%s', async (_what, text, flags, code, line) => {
    if (text !== undefined) await write(text);
    const err = await resolveIn(flags).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code, exitCode: ExitCode.USAGE });
    const location = (err as { location?: { file: string; line?: number } }).location;
    expect(location?.file).toBe(join(dir, 'transfer.info'));
    expect(location?.line).toBe(line);
    if (line !== undefined) expect((err as Error).message).toContain(`transfer.info:${line}: `);
  });

  it('accepts a 100-character name', async () => {
    await write(`h:1\n${'n'.repeat(100)}\nf\n`);
    expect((await resolveIn()).registerName).toHaveLength(100);
  });

  it('reports an unreadable transfer.info', async () => {
    await mkdir(join(dir, 'transfer.info'));
    await expect(resolveIn()).rejects.toMatchObject({ code: ClientErrorCode.CONFIG_UNREADABLE });
  });

  it.each([
    [{ server: 'x' }, ClientErrorCode.BAD_SERVER_ADDRESS, /--server/],
    [{ name: ' ' }, ClientErrorCode.BAD_CLIENT_NAME, /--name/],
    [{ name: 'n'.repeat(101) }, ClientErrorCode.BAD_CLIENT_NAME, /--name/],
  ])('checks flag values too: %j', async (flags, code, message) => {
    await write('h:1\nname\nf\n');
    await expect(resolveIn(flags)).rejects.toMatchObject({
      code,
      message: expect.stringMatching(message),
    });
  });
});

describe('me.info and priv.key', () => {
  const mePath = (): string => join(dir, 'me.info');

  it('parses name, id and a one-line key', async () => {
    await writeFile(mePath(), `Carol\n${ID_HEX}\n${KEY_B64}\n`);
    const identity = await loadIdentity(dir);
    expect(identity?.name).toBe('Carol');
    expect(identity?.clientId.toString('hex')).toBe(ID_HEX);
    expect(identity?.privateKey.asymmetricKeyType).toBe('rsa');
    expect(identity?.privateKeyDer.toString('base64')).toBe(KEY_B64);
  });

  it.each(['client-a-register-upload', 'client-b-register-upload'])(
    'reads the me.info that the real client of %s wrote (wrapped base64)',
    async (capture) => {
      const text = await readFile(join(FIXTURES, capture, 'me.info'), 'utf8');
      const identity = parseMeInfo(text, 'me.info');
      const manifest = JSON.parse(
        await readFile(join(FIXTURES, capture, 'manifest.json'), 'utf8'),
      ) as { connections: { client_id: string }[] };
      expect(identity.clientId.toString('hex')).toBe(manifest.connections[0].client_id);
      const privKey = (await readFile(join(FIXTURES, capture, 'priv.key'), 'utf8')).replace(
        /\s+/g,
        '',
      );
      expect(identity.privateKeyDer.toString('base64')).toBe(privKey);
    },
  );

  it('takes the key from priv.key when me.info has only two lines', async () => {
    await writeFile(mePath(), `Carol\n${ID_HEX}\n`);
    await writeFile(join(dir, 'priv.key'), `${KEY_B64.slice(0, 100)}\n${KEY_B64.slice(100)}\n`);
    expect((await loadIdentity(dir))?.privateKeyDer.toString('base64')).toBe(KEY_B64);
  });

  it('is absent without me.info (the client registers)', async () => {
    expect(await loadIdentity(dir)).toBeUndefined();
  });

  it.each([
    ['empty name', `\n${ID_HEX}\n${KEY_B64}\n`, ClientErrorCode.BAD_CLIENT_NAME, 'me.info', 1],
    ['id too short', `n\n0123\n${KEY_B64}\n`, ClientErrorCode.BAD_CLIENT_ID, 'me.info', 2],
    [
      'id not hex',
      `n\n${'z'.repeat(32)}\n${KEY_B64}\n`,
      ClientErrorCode.BAD_CLIENT_ID,
      'me.info',
      2,
    ],
    ['no id line', 'n\n', ClientErrorCode.BAD_CLIENT_ID, 'me.info', 2],
    ['no key, no priv.key', `n\n${ID_HEX}\n`, ClientErrorCode.BAD_PRIVATE_KEY, 'me.info', 3],
    [
      'bad base64 on line 4',
      `n\n${ID_HEX}\n${KEY_B64.slice(0, 64)}\n!!notbase64!!\n`,
      ClientErrorCode.BAD_PRIVATE_KEY,
      'me.info',
      4,
    ],
    [
      'base64 of garbage',
      `n\n${ID_HEX}\nAAAAAAAA\n`,
      ClientErrorCode.BAD_PRIVATE_KEY,
      'me.info',
      3,
    ],
    [
      'a non-RSA key',
      `n\n${ID_HEX}\n${rsaDer('ec').toString('base64')}\n`,
      ClientErrorCode.BAD_PRIVATE_KEY,
      'me.info',
      3,
    ],
  ] as const)('%s', async (_what, text, code, file, line) => {
    await writeFile(mePath(), text);
    const err = await loadIdentity(dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({
      code,
      exitCode: ExitCode.USAGE,
      location: { file: join(dir, file), line },
      message: expect.stringContaining(`${file}:${line}: `),
    });
  });

  it('reports a bad priv.key with its own file name', async () => {
    await writeFile(mePath(), `n\n${ID_HEX}\n`);
    await writeFile(join(dir, 'priv.key'), '%%%\n');
    await expect(loadIdentity(dir)).rejects.toMatchObject({
      code: ClientErrorCode.BAD_PRIVATE_KEY,
      location: { file: join(dir, 'priv.key'), line: 1 },
    });
  });

  it('saves me.info and priv.key with mode 0600, leaving no temp files, and reads them back', async () => {
    const der = rsaDer();
    const id = Buffer.from(ID_HEX, 'hex');
    // An older, world-readable file is replaced, not rewritten in place.
    await writeFile(mePath(), 'old\n', { mode: 0o644 });
    await saveIdentity(dir, { name: 'Dave', clientId: id, privateKeyDer: der });
    expect((await stat(mePath())).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'priv.key'))).mode & 0o777).toBe(0o600);
    expect((await readdir(dir)).sort()).toEqual(['me.info', 'priv.key']);
    expect(await readFile(mePath(), 'utf8')).toBe(
      formatMeInfo({ name: 'Dave', clientId: id, privateKeyDer: der }),
    );
    const back = await loadIdentity(dir);
    expect(back?.name).toBe('Dave');
    expect(back?.clientId.equals(id)).toBe(true);
    expect(back?.privateKeyDer.equals(der)).toBe(true);
  });

  it('makes a config directory that does not exist yet, owner-only', async () => {
    const nested = join(dir, 'new', 'config');
    await saveIdentity(nested, {
      name: 'Erin',
      clientId: Buffer.from(ID_HEX, 'hex'),
      privateKeyDer: rsaDer(),
    });
    expect((await stat(nested)).mode & 0o777).toBe(0o700);
    expect((await readdir(nested)).sort()).toEqual(['me.info', 'priv.key']);
  });

  it('fails cleanly when the directory is not writable', async () => {
    if (process.getuid?.() === 0) {
      // root ignores directory permissions; use a directory that does not exist instead.
      await expect(writeSecretFile(join(dir, 'no', 'me.info'), 'x')).rejects.toMatchObject({
        code: ClientErrorCode.CONFIG_WRITE_FAILED,
      });
      return;
    }
    await chmod(dir, 0o500);
    try {
      await expect(writeSecretFile(mePath(), 'x')).rejects.toMatchObject({
        code: ClientErrorCode.CONFIG_WRITE_FAILED,
      });
    } finally {
      await chmod(dir, 0o700);
    }
  });
});

describe('config errors through the CLI (exit 2, file and line named)', () => {
  it.each([
    [undefined, /transfer\.info: no such file/],
    ['127.0.0.1\nname\nf\n', /transfer\.info:1: .*no port/],
    ['127.0.0.1:1256\n\nf\n', /transfer\.info:2: the client name is empty/],
    [`127.0.0.1:1256\n${'x'.repeat(101)}\nf\n`, /transfer\.info:2: .*at most 100/],
    [
      '127.0.0.1:1256\nname\nmissing.bin\n',
      /transfer\.info:3: cannot send .*missing\.bin: no such file/,
    ],
  ])('transfer.info %j', async (text, message) => {
    if (text !== undefined) await writeFile(join(dir, 'transfer.info'), text);
    const result = await runCli(['--config-dir', dir]);
    expect(result.code).toBe(ExitCode.USAGE);
    expect(result.stderr).toMatch(message);
    expect(result.stdout).toBe('');
  });

  it('a malformed me.info', async () => {
    await writeFile(join(dir, 'transfer.info'), '127.0.0.1:1256\nname\nf\n');
    await writeFile(join(dir, 'me.info'), `name\nnot-an-id\n${KEY_B64}\n`);
    const result = await runCli(['-c', dir]);
    expect(result.code).toBe(ExitCode.USAGE);
    expect(result.stderr).toMatch(/me\.info:2: "not-an-id" is not a client id/);
    expect(result.stderr).toMatch(/delete it/);
  });

  it.each([
    [['--bogus'], /Unknown option/],
    [['--response-timeout', '0'], /--response-timeout must be a number of seconds above 0/],
    [['--connect-timeout', 'soon'], /--connect-timeout/],
  ])('bad flags %j', async (args, message) => {
    const result = await runCli(args);
    expect(result.code).toBe(ExitCode.USAGE);
    expect(result.stderr).toMatch(message);
  });

  it('--help documents the flags and the exit codes', async () => {
    const result = await runCli(['--help']);
    expect(result.code).toBe(ExitCode.OK);
    for (const text of ['--config-dir', '--server', '--json', '--response-timeout', 'Exit codes']) {
      expect(result.stdout).toContain(text);
    }
    for (const code of [0, 1, 2, 3, 4, 5])
      expect(result.stdout).toMatch(new RegExp(`^  ${code}  `, 'm'));
  });
});
