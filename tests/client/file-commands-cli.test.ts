/** `sft-client list`, `get` and `delete` on the command line, and the v4-only send flags. */
import { parseCommandLine } from '../../client/process/cli';

const parse = (argv: readonly string[]) => parseCommandLine(argv, '9.9.9');

describe('file commands', () => {
  it('parses list, get with -o and --force, and delete', async () => {
    expect(await parse(['list', '--json'])).toMatchObject({
      command: 'list',
      flags: { json: true },
    });
    expect(await parse(['get', 'a b.txt', '-o', '/tmp/x', '--force'])).toMatchObject({
      command: 'get',
      fileName: 'a b.txt',
      output: '/tmp/x',
      force: true,
    });
    const get = await parse(['get', '007']);
    expect(get).toMatchObject({ command: 'get', fileName: '007', force: false });
    expect('output' in get).toBe(false);
    expect(await parse(['delete', 'old.log'])).toMatchObject({
      command: 'delete',
      fileName: 'old.log',
    });
  });

  it('keeps sending the default; a file named like a command goes with send', async () => {
    expect(await parse(['a.txt'])).toMatchObject({ command: 'send', flags: { files: ['a.txt'] } });
    expect(await parse(['send', 'list'])).toMatchObject({
      command: 'send',
      flags: { files: ['list'] },
    });
    expect(await parse(['--compress', '--e2e', 'a.txt'])).toMatchObject({
      command: 'send',
      flags: { compress: true, e2e: true },
    });
    expect(await parse(['a.txt'])).toMatchObject({ flags: { compress: false, e2e: false } });
  });

  it('refuses get and delete without a name, and -o or --force outside get', async () => {
    for (const argv of [['get'], ['delete'], ['list', '-o', 'x'], ['send', 'a', '--force']]) {
      await expect(parse(argv)).rejects.toMatchObject({ code: 'USAGE' });
    }
  });
});
