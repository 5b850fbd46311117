import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  findKnownServer,
  formatKnownServers,
  loadKnownServers,
  parseKnownServers,
  recordKnownServer,
} from '../../client/v4/known-servers';

const FP = 'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU';

describe('known_servers', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sft-known-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('round-trips v4 pins and v3 records, ignoring comments', () => {
    const entries = [
      { address: '127.0.0.1:1256', protocol: 'v4', fingerprint: FP } as const,
      { address: '[::1]:9', protocol: 'v3' } as const,
    ];
    const text = formatKnownServers(entries);
    expect(text.startsWith('#')).toBe(true);
    expect(parseKnownServers(text, 'k')).toEqual(entries);
  });

  it.each([
    ['missing fingerprint', 'a:1 v4'],
    ['bad fingerprint', 'a:1 v4 SHA256:nope'],
    ['unknown protocol', `a:1 v5 ${FP}`],
    ['extra field', `a:1 v4 ${FP} more`],
  ])('refuses a line with a %s, naming the line', (_what, line) => {
    expect(() => parseKnownServers(`# c\n${line}\n`, 'known')).toThrow(
      expect.objectContaining({ code: 'CONFIG_UNREADABLE', location: { file: 'known', line: 2 } }),
    );
  });

  it('records atomically with mode 0600, replacing the line of the same address', async () => {
    expect(await loadKnownServers(dir)).toEqual([]);
    await recordKnownServer(dir, { address: 'h:1', protocol: 'v3' });
    await recordKnownServer(dir, { address: 'g:2', protocol: 'v4', fingerprint: FP });
    await recordKnownServer(dir, { address: 'h:1', protocol: 'v4', fingerprint: FP });
    const entries = await loadKnownServers(dir);
    expect(entries).toHaveLength(2);
    expect(findKnownServer(entries, 'h:1')).toEqual({
      address: 'h:1',
      protocol: 'v4',
      fingerprint: FP,
    });
    expect((await stat(join(dir, 'known_servers'))).mode & 0o777).toBe(0o600);
    await writeFile(join(dir, 'known_servers'), 'garbage\n');
    await expect(loadKnownServers(dir)).rejects.toMatchObject({ code: 'CONFIG_UNREADABLE' });
    expect(await readFile(join(dir, 'known_servers'), 'utf8')).toBe('garbage\n');
  });
});
