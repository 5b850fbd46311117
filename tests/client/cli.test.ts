/**
 * The command line (node:util parseArgs): `sft-client FILE…` and `sft-client send FILE…` are the same, help is
 * generated from the option definitions, and every mistake is a USAGE error (exit 2).
 */
import { ClientErrorCode, ExitCode } from '../../client/errors';
import {
  DEFAULT_CONNECT_TIMEOUT_S,
  DEFAULT_PARALLEL,
  DEFAULT_RESPONSE_TIMEOUT_S,
  parseCommandLine,
  type SendFlags,
} from '../../client/process/cli';
import { runCli } from './helpers';

async function flags(argv: readonly string[]): Promise<SendFlags> {
  const parsed = await parseCommandLine(argv, '9.9.9');
  if (parsed.command !== 'send') throw new Error(`expected a send, got ${parsed.command}`);
  return parsed.flags;
}

async function usageError(argv: readonly string[]): Promise<Error & { code?: string }> {
  return parseCommandLine(argv, '9.9.9').then(
    () => {
      throw new Error(`${JSON.stringify(argv)} was accepted`);
    },
    (err: Error & { code?: string }) => err,
  );
}

describe('parseCommandLine', () => {
  it('has the documented defaults', async () => {
    expect(await flags([])).toMatchObject({
      configDir: '.',
      server: undefined,
      name: undefined,
      files: [],
      quiet: false,
      verbose: false,
      json: false,
      connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_S * 1000,
      responseTimeoutMs: DEFAULT_RESPONSE_TIMEOUT_S * 1000,
      parallel: DEFAULT_PARALLEL,
    });
  });

  it('treats `send FILE…` exactly like `FILE…`', async () => {
    const args = ['-c', 'cfg', '--json', 'a.bin', 'b.bin'];
    expect(await flags(['send', ...args])).toEqual(await flags(args));
    expect((await flags(args)).files).toEqual(['a.bin', 'b.bin']);
    expect((await flags(['send'])).files).toEqual([]);
  });

  it('reads every flag, long and short', async () => {
    const long = await flags([
      '--config-dir=/etc/sft',
      '--server',
      '[::1]:9',
      '--name',
      'Alice B',
      '--connect-timeout',
      '2.5',
      '--response-timeout',
      '7',
      '--quiet',
      '--verbose',
      '--json',
    ]);
    expect(long).toMatchObject({
      configDir: '/etc/sft',
      server: '[::1]:9',
      name: 'Alice B',
      connectTimeoutMs: 2500,
      responseTimeoutMs: 7000,
      quiet: true,
      verbose: true,
      json: true,
    });
    const short = await flags(['-c', '/etc/sft', '-s', '[::1]:9', '-n', 'Alice B', '-q', '-v']);
    expect(short).toMatchObject({ configDir: '/etc/sft', server: '[::1]:9', name: 'Alice B' });
    expect(short).toMatchObject({ quiet: true, verbose: true });
  });

  it('keeps file names as typed: numbers, leading dashes after --', async () => {
    expect((await flags(['007', '1e3', '--', '-odd.bin', '--json'])).files).toEqual([
      '007',
      '1e3',
      '-odd.bin',
      '--json',
    ]);
    expect((await flags(['send', 'a', '--', '-b'])).files).toEqual(['a', '-b']);
  });

  it('reads -r / --recursive and --parallel', async () => {
    expect(await flags(['-r', 'dir'])).toMatchObject({ recursive: true, files: ['dir'] });
    expect(await flags(['--recursive', '--parallel', '7'])).toMatchObject({
      recursive: true,
      parallel: 7,
    });
    expect((await flags([])).recursive).toBe(false);
  });

  it('takes a value starting with a dash when written with = (or after a short flag)', async () => {
    expect(await flags(['--name=-x', '-c-d'])).toMatchObject({ name: '-x', configDir: '-d' });
  });

  it('reads a command only as the first word, never after --', async () => {
    expect(await flags(['--', 'list'])).toMatchObject({ files: ['list'] });
    expect(await flags(['a.bin', 'get'])).toMatchObject({ files: ['a.bin', 'get'] });
    expect((await parseCommandLine(['-q', 'list'], '9.9.9')).command).toBe('list');
  });

  it('takes the last value of a flag given twice', async () => {
    expect((await flags(['-s', 'a:1', '--server', 'b:2'])).server).toBe('b:2');
  });

  it.each([
    [['--bogus'], /^Unknown option: --bogus$/],
    [['-x', '--nope'], /^Unknown options: -x, --nope$/],
    [['--server'], /server/],
    [['--config-dir'], /config-dir/],
    [['--response-timeout', '0'], /--response-timeout must be a number of seconds above 0/],
    [['--connect-timeout', 'soon'], /--connect-timeout must be a number of seconds above 0/],
    [['--connect-timeout', '99999999'], /--connect-timeout/],
    [['--protocol', 'v5'], /^--protocol must be one of auto, v4, v3, got "v5"$/],
    [['--quiet=yes'], /^--quiet takes no value/],
    // A value that looks like a flag is a forgotten value; --server=-x would take it.
    [
      ['-s', '--quiet', 'a.bin'],
      /^--server needs a value \(to give "--quiet", write --server=--quiet\)$/,
    ],
    [['--parallel', '0'], /^--parallel must be a whole number from 1 to 32/],
    [['--server-fingerprint', 'MD5:ab'], /^--server-fingerprint must look like SHA256:/],
    [['-o', 'x', 'a.bin'], /^Unknown option: -o$/],
    [['list', 'a.bin'], /^list takes no file names/],
    [['get', 'a', 'b'], /^get takes one file name, got 2/],
    [['delete'], /^delete needs the name of a file$/],
  ])('refuses %j with a usage error', async (argv, message) => {
    const err = await usageError(argv);
    expect(err.code).toBe(ClientErrorCode.USAGE);
    expect(err.message).toMatch(message);
  });

  it('prints help generated from the options, and the version', async () => {
    const help = await parseCommandLine(['--help'], '9.9.9');
    expect(help.command).toBe('print');
    const text = help.command === 'print' ? help.text : '';
    for (const option of [
      '-c, --config-dir',
      '-s, --server',
      '-n, --name',
      '--connect-timeout',
      '--response-timeout',
      '-q, --quiet',
      '-v, --verbose',
      '--json',
      '-h, --help',
      '--version',
    ]) {
      expect(text).toContain(option);
    }
    expect(text).toMatch(/sft-client send \[options\] \[file \.\.\.\]/);
    expect(text).toMatch(/^ {2}5 {2}checksum failure/m);
    expect(await parseCommandLine(['--version'], '9.9.9')).toEqual({
      command: 'print',
      text: 'sft-client 9.9.9\n',
    });
    expect(await parseCommandLine(['send', '-h'], '9.9.9')).toMatchObject({ command: 'print' });
  });
});

describe('the built CLI', () => {
  it('--version prints the package version', async () => {
    const result = await runCli(['--version']);
    expect(result.code).toBe(ExitCode.OK);
    expect(result.stdout).toMatch(/^sft-client \d+\.\d+\.\d+\n$/);
  });

  it('a bad flag: exit 2, the problem and a hint on stderr, nothing on stdout', async () => {
    const result = await runCli(['send', '--bogus']);
    expect(result.code).toBe(ExitCode.USAGE);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      'sft-client: error: Unknown option: --bogus\nsft-client: run sft-client --help for the options\n',
    );
  });
});
