/**
 * Rotation of the server key with a signed key set, real server and client processes
 * (docs/protocol-v4.md §2.5): a client that connects during the grace learns the next key and
 * connects after the promotion without a prompt; one that missed the grace gets exit 6; a key
 * set that names the presented key expired is refused.
 */
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SERVER_MAIN, type ServerProcess } from '../helpers/server-process';
import { runClient, e2eFixture } from './helpers';

interface KeyView {
  readonly id: string;
  readonly status: string;
}

function identity(dataDir: string, ...args: string[]): { status: number | null; stdout: string } {
  const run = spawnSync(
    process.execPath,
    [SERVER_MAIN, 'identity', ...args, '--data-dir', dataDir],
    { encoding: 'utf8' },
  );
  return { status: run.status, stdout: run.stdout };
}

function keys(dataDir: string): KeyView[] {
  const listed = identity(dataDir, 'list', '--json');
  expect(listed.status).toBe(0);
  return (JSON.parse(listed.stdout) as { keys: KeyView[] }).keys;
}

async function pinnedKeys(configDir: string): Promise<string[]> {
  const text = await readFile(join(configDir, 'known_servers'), 'utf8');
  return text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.split(' ')[2] as string);
}

describe('v4 end to end: server key rotation', () => {
  const fx = e2eFixture();
  const dir = fx.dir;
  const start = (data: string): Promise<ServerProcess> => fx.server(data, ['--log-level', 'info']);

  it('rotate → a client connects during the grace and learns the next key → promote → it connects without a prompt; a client that missed the grace gets exit 6', async () => {
    const data = await dir('srv');
    const early = await dir('early');
    const away = await dir('away');
    const s = await start(data);
    const addr = ['--server', `127.0.0.1:${s.port}`];
    expect((await runClient(early, [...addr, '--name', 'early', 'list'])).code).toBe(0);
    expect((await runClient(away, [...addr, '--name', 'away', 'list'])).code).toBe(0);
    const [first] = keys(data);
    expect(first?.status).toBe('current');

    expect(identity(data, 'rotate', '--grace', '7d').status).toBe(0);
    await s.waitForLine((l) => l.msg === 'v4 key set reloaded', 10_000);
    const during = keys(data);
    const next = during.find((k) => k.status === 'next')?.id as string;
    expect(during.map((k) => k.status)).toEqual(['current', 'next']);

    // During the grace the server still presents the current key and offers the signed set.
    const learn = await runClient(early, [...addr, 'list']);
    expect(learn.code).toBe(0);
    expect(learn.stderr).not.toContain('first contact');
    expect(await pinnedKeys(early)).toEqual([first?.id, next]);

    expect(identity(data, 'promote').status).toBe(0);
    await s.waitForLine((l) => l.msg === 'v4 identity key changed', 10_000);
    expect(keys(data).map((k) => [k.id, k.status])).toEqual([
      [next, 'current'],
      [first?.id, 'retired'],
    ]);

    const after = await runClient(early, [...addr, 'list']);
    expect(after.code).toBe(0);
    expect(after.stderr).toBe('');
    // The retired key is unpinned: it will never be accepted again.
    expect(await pinnedKeys(early)).toEqual([next]);

    const missed = await runClient(away, [...addr, 'list']);
    expect(missed.code).toBe(6);
    expect((missed.json as { error?: { code: string } }).error?.code).toBe('IDENTITY_MISMATCH');
    expect(missed.stderr).toContain('known_servers');
    expect(missed.stderr).toContain(next);
    expect(await pinnedKeys(away)).toEqual([first?.id]);
  });

  it('the end of the grace promotes the next key by itself', async () => {
    const data = await dir('srv');
    const conf = await dir('cli');
    const s = await start(data);
    const addr = ['--server', `127.0.0.1:${s.port}`];
    expect((await runClient(conf, [...addr, '--name', 'gus', 'list'])).code).toBe(0);
    expect(identity(data, 'rotate', '--grace', '3s').status).toBe(0);
    await s.waitForLine((l) => l.msg === 'v4 key set reloaded', 10_000);
    expect((await runClient(conf, [...addr, 'list'])).code).toBe(0);
    await s.waitForLine((l) => l.msg === 'v4 identity key changed', 15_000);
    const [current] = keys(data);
    const after = await runClient(conf, [...addr, 'list']);
    expect(after.code).toBe(0);
    expect(await pinnedKeys(conf)).toEqual([current?.id]);
  });

  it('a key set that says the presented key has expired is refused with exit 6', async () => {
    const data = await dir('srv');
    const conf = await dir('cli');
    const s = await start(data);
    const addr = ['--server', `127.0.0.1:${s.port}`];
    expect((await runClient(conf, [...addr, '--name', 'eve', 'list'])).code).toBe(0);
    const setPath = join(data, 'identity', 'keyset.json');
    const set = JSON.parse(await readFile(setPath, 'utf8')) as {
      keys: Array<{ notAfter: number }>;
    };
    set.keys[0] = { ...set.keys[0], notAfter: Date.now() - 60_000 } as { notAfter: number };
    await writeFile(setPath, JSON.stringify(set));
    await s.waitForLine((l) => l.msg === 'v4 key set reloaded', 10_000);
    const refused = await runClient(conf, [...addr, 'list']);
    expect(refused.code).toBe(6);
    expect((refused.json as { error?: { code: string } }).error?.code).toBe('KEY_SET_INVALID');
  });
});
