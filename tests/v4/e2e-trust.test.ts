/**
 * Version 4 end to end, real server and client processes on loopback: the happy path, the
 * server identity command, a standard TLS tool, trust on first use, pinning, downgrade
 * refusal and the fallback to v3 (docs/protocol-v4.md §1, §2).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../../server/process/daemon';
import { serverIdentity } from '../../server/transport/tls-setup';
import { fingerprintOfKey } from '../../shared/fingerprint';
import { loadOrCreateKey } from '../../shared/identity';
import { silentLogger } from '../../shared/logger';
import { SERVER_MAIN, type ServerProcess } from '../helpers/server-process';
import { patternBytes, runClient, sha256File, e2eFixture } from './helpers';

const HEX_ID = /^[0-9a-f]{32}$/;

async function clientDirs(dataDir: string): Promise<string[]> {
  return (await readdir(dataDir)).filter((name) => HEX_ID.test(name));
}

describe('v4 end to end: trust', () => {
  const fx = e2eFixture();
  const dir = fx.dir;
  const server = (dataDir: string, args: string[] = []): Promise<ServerProcess> =>
    fx.server(dataDir, args);
  const v3OnlyServer = async (dataDir: string, port = 0): Promise<Daemon> => {
    const d = await startDaemon({ dataDir, port, host: '127.0.0.1', logger: silentLogger() });
    fx.onCleanup(() => d.close(0));
    return d;
  };

  it('registers, uploads, reconnects by certificate; identity and openssl agree', async () => {
    const data = await dir('srv');
    const conf = await dir('cli');
    const s = await server(data);
    const file = join(conf, 'report.bin');
    await writeFile(file, patternBytes(3_000_000, 7));
    const addr = `127.0.0.1:${s.port}`;

    const first = await runClient(conf, ['--server', addr, '--name', 'alice', file]);
    expect(first.code).toBe(0);
    expect(first.json?.registered).toBe(true);
    const id = first.json?.clientId as string;
    expect(id).toMatch(HEX_ID);
    expect(first.json?.files[0]?.sha256).toBe(await sha256File(file));
    expect(await sha256File(join(data, id, 'report.bin'))).toBe(await sha256File(file));

    const identity = spawnSync(
      process.execPath,
      [SERVER_MAIN, 'identity', '--data-dir', data, '--json'],
      {
        encoding: 'utf8',
      },
    );
    expect(identity.status).toBe(0);
    const fingerprint = (JSON.parse(identity.stdout) as { fingerprint: string }).fingerprint;
    expect(first.stderr).toContain(`first contact with ${addr}: server fingerprint ${fingerprint}`);
    expect(await readFile(join(conf, 'known_servers'), 'utf8')).toContain(
      `${addr} v4 ${fingerprint}`,
    );
    expect(existsSync(join(conf, 'me.info'))).toBe(false);

    const again = await runClient(conf, ['--server', addr, file]);
    expect(again.code).toBe(0);
    expect(again.json?.registered).toBe(false);
    expect(again.json?.clientId).toBe(id);
    expect(again.stderr).not.toContain('first contact');

    // The admin command shows the binding; audit rows carry the version and the fingerprint.
    const { key } = await loadOrCreateKey(join(conf, 'identity.key'));
    const clientFingerprint = fingerprintOfKey(key);
    const admin = (what: string): string =>
      spawnSync(process.execPath, [SERVER_MAIN, 'admin', what, '--data-dir', data, '--json'], {
        encoding: 'utf8',
      }).stdout;
    expect(JSON.parse(admin('clients'))).toEqual([
      expect.objectContaining({ id, name: 'alice', protocol: 4, fingerprint: clientFingerprint }),
    ]);
    const audit = JSON.parse(admin('audit')) as Array<{ outcome: string; detail?: string }>;
    expect(audit).toContainEqual(
      expect.objectContaining({ outcome: 'registered', detail: `v4 ${clientFingerprint}` }),
    );

    // A standard tool opens the channel: TLS 1.3, ALPN sft/4, the same certificate.
    const openssl = spawnSync(
      'openssl',
      ['s_client', '-connect', addr, '-tls1_3', '-alpn', 'sft/4', '-showcerts'],
      { input: '', encoding: 'utf8', timeout: 20_000 },
    );
    expect(openssl.stdout).toMatch(/TLSv1\.3/);
    expect(openssl.stdout).toContain('ALPN protocol: sft/4');
    const pem = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n/.exec(
      openssl.stdout,
    );
    expect(pem?.[0]).toBe(await readFile(join(data, 'identity', 'identity.crt'), 'utf8'));

    // v3 clients keep working on the same port.
    const v3conf = await dir('v3');
    const v3 = await runClient(v3conf, [
      '--protocol',
      'v3',
      '--server',
      addr,
      '--name',
      'bob',
      file,
    ]);
    expect(v3.code).toBe(0);
    expect(existsSync(join(v3conf, 'me.info'))).toBe(true);
    expect(existsSync(join(v3conf, 'known_servers'))).toBe(false);
  });

  it('refuses a second server on a pinned address with exit 6, before any file byte', async () => {
    const dataA = await dir('a');
    const dataB = await dir('b');
    const conf = await dir('cli');
    const file = join(conf, 'f.bin');
    await writeFile(file, patternBytes(100_000, 3));
    const a = await server(dataA);
    const addr = `127.0.0.1:${a.port}`;
    expect((await runClient(conf, ['--server', addr, '--name', 'carol', file])).code).toBe(0);
    const pinned = (await readFile(join(conf, 'known_servers'), 'utf8')).match(/SHA256:\S+/)?.[0];
    await a.stop('SIGKILL');

    await server(dataB, ['--port', String(a.port)]);
    const refused = await runClient(conf, ['--server', addr, file]);
    expect(refused.code).toBe(6);
    expect(refused.json?.error?.code).toBe('IDENTITY_MISMATCH');
    // The second server's own fingerprint, from its identity files.
    const other = (await serverIdentity(dataB)).fingerprint;
    expect(refused.stderr).toContain(pinned);
    expect(refused.stderr).toContain(other);
    expect(refused.stderr).toContain(join(conf, 'known_servers'));
    expect(await clientDirs(dataB)).toEqual([]);
    expect(existsSync(join(dataB, '.partial-v4'))).toBe(false);

    // An explicit pin overrides trust on first use, both ways.
    const fresh = await dir('fresh');
    const wrong = await runClient(fresh, [
      '--server',
      addr,
      '--name',
      'dave',
      '--server-fingerprint',
      pinned as string,
      file,
    ]);
    expect(wrong.code).toBe(6);
    expect(existsSync(join(fresh, 'identity.key'))).toBe(true);
    const right = await runClient(fresh, [
      '--server',
      addr,
      '--name',
      'dave',
      '--server-fingerprint',
      other,
      file,
    ]);
    expect(right.code).toBe(0);
    expect(right.stderr).not.toContain('first contact');
  });

  it('refuses to speak v3 to a server known as v4 (exit 6, nothing sent)', async () => {
    const dataA = await dir('a');
    const dataB = await dir('b');
    const conf = await dir('cli');
    const file = join(conf, 'f.bin');
    await writeFile(file, patternBytes(10_000, 5));
    const a = await server(dataA);
    const port = a.port;
    expect(
      (await runClient(conf, ['--server', `127.0.0.1:${port}`, '--name', 'erin', file])).code,
    ).toBe(0);
    await a.stop('SIGKILL');

    const legacy = await v3OnlyServer(dataB, port);
    const refused = await runClient(conf, ['--server', `127.0.0.1:${port}`, file]);
    expect(refused.code).toBe(6);
    expect(refused.json?.error?.code).toBe('DOWNGRADE_REFUSED');
    expect(await legacy.store.listClients()).toEqual([]);
    const forced = await runClient(conf, [
      '--protocol',
      'v3',
      '--name',
      'erin',
      '--server',
      `127.0.0.1:${port}`,
      file,
    ]);
    expect(forced.code).toBe(6);
    expect(forced.json?.error?.code).toBe('DOWNGRADE_REFUSED');
    // Refused before connecting: the message must not claim the server answered.
    expect(forced.stderr).not.toContain('answered');
    expect(await legacy.store.listClients()).toEqual([]);
  });

  it('falls back to v3 against a v3-only server within seconds, with one warning', async () => {
    const data = await dir('v3only');
    const conf = await dir('cli');
    const file = join(conf, 'f.bin');
    await writeFile(file, patternBytes(50_000, 9));
    const legacy = await v3OnlyServer(data);
    const addr = `127.0.0.1:${legacy.port}`;
    const run = await runClient(conf, ['--server', addr, '--name', 'frank', file]);
    expect(run.code).toBe(0);
    expect(run.ms).toBeLessThan(8000);
    const warnings = run.stderr.split('\n').filter((l) => l.includes('does not speak protocol v4'));
    expect(warnings).toHaveLength(1);
    expect(await readFile(join(conf, 'known_servers'), 'utf8')).toContain(`${addr} v3 -`);
    expect(existsSync(join(conf, 'me.info'))).toBe(true);
    // --protocol v4 never falls back.
    const strict = await runClient(conf, ['--protocol', 'v4', '--server', addr, file]);
    expect(strict.code).toBe(6);
  });

  it('gives up on a peer that swallows the TLS hello within seconds', async () => {
    const conf = await dir('cli');
    const file = join(conf, 'f.bin');
    await writeFile(file, 'x');
    const sink = net.createServer((socket) => socket.on('data', () => undefined));
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
    const port = (sink.address() as net.AddressInfo).port;
    try {
      const run = await runClient(conf, [
        '--server',
        `127.0.0.1:${port}`,
        '--name',
        'gina',
        '--response-timeout',
        '1',
        file,
      ]);
      // v3 then waits for an answer the sink never gives: a connection failure, not a hang.
      expect(run.code).toBe(3);
      expect(run.stderr).toContain('does not speak protocol v4');
      expect(run.ms).toBeLessThan(10_000);
    } finally {
      sink.close();
    }
  });
});
