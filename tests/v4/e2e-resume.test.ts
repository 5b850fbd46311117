/**
 * Version 4 uploads under failure, real processes on loopback (docs/protocol-v4.md §5.5): a
 * cut connection and a killed server resume from the server's durable offset; a byte flipped
 * in transit is caught by TLS and stores nothing; a v3 client moves to v4 with its id and files.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ServerProcess } from '../helpers/server-process';
import { patternBytes, runClient, sha256File, sleep, TestProxy, e2eFixture } from './helpers';

const MIB = 1024 * 1024;

async function partialMetas(dataDir: string): Promise<Array<{ durable: number; size: number }>> {
  const root = join(dataDir, '.partial-v4');
  if (!existsSync(root)) return [];
  const out: Array<{ durable: number; size: number }> = [];
  for (const client of await readdir(root)) {
    for (const name of await readdir(join(root, client))) {
      if (!name.endsWith('.meta')) continue;
      out.push(
        JSON.parse(await readFile(join(root, client, name), 'utf8')) as {
          durable: number;
          size: number;
        },
      );
    }
  }
  return out;
}

describe('v4 end to end: failures and resume', () => {
  const fx = e2eFixture();
  const dir = fx.dir;
  const server = (dataDir: string, args: string[] = []): Promise<ServerProcess> =>
    fx.server(dataDir, ['--log-level', 'info', ...args]);
  const proxy = async (...args: Parameters<typeof TestProxy.start>): Promise<TestProxy> => {
    const p = await TestProxy.start(...args);
    fx.onCleanup(() => p.close());
    return p;
  };

  it('resumes an upload cut at 60 %: the second run sends well under half', async () => {
    const data = await dir('srv');
    const conf = await dir('cli');
    const size = 32 * MIB;
    const file = join(conf, 'big.bin');
    await writeFile(file, patternBytes(size, 11));
    const s = await server(data);
    const p = await proxy(s.port, { cutAfter: Math.round(size * 0.6) });
    const addr = `127.0.0.1:${p.port}`;

    const cut = await runClient(conf, ['--server', addr, '--name', 'hank', file]);
    expect(cut.code).toBe(3);
    expect(cut.json?.error?.code).toBe('CONNECTION_LOST');
    const id = cut.json?.clientId as string;
    expect(existsSync(join(data, id, 'big.bin'))).toBe(false);

    const resumed = await runClient(conf, ['--server', addr, file]);
    expect(resumed.code).toBe(0);
    const result = resumed.json?.files[0];
    expect(result?.resumedFrom).toBeGreaterThan(size * 0.5);
    expect(result?.bytesSent).toBeLessThan(size * 0.45);
    expect(p.upstreamBytes[1]).toBeLessThan(size * 0.45);
    expect(result?.sha256).toBe(await sha256File(file));
    expect(await sha256File(join(data, id, 'big.bin'))).toBe(result?.sha256);
    expect(await partialMetas(data)).toEqual([]);
  });

  it('restarts from zero when the file changed between the runs', async () => {
    const data = await dir('srv');
    const conf = await dir('cli');
    const size = 8 * MIB;
    const file = join(conf, 'doc.bin');
    await writeFile(file, patternBytes(size, 1));
    const s = await server(data);
    const p = await proxy(s.port, { cutAfter: Math.round(size * 0.6) });
    const addr = `127.0.0.1:${p.port}`;
    expect((await runClient(conf, ['--server', addr, '--name', 'ivy', file])).code).toBe(3);
    await writeFile(file, patternBytes(size, 2));
    const again = await runClient(conf, ['--server', addr, file]);
    expect(again.code).toBe(0);
    expect(again.json?.files[0]?.resumedFrom).toBe(0);
    expect(again.json?.files[0]?.sha256).toBe(await sha256File(file));
  });

  it('resumes after the server is SIGKILLed mid-upload and restarted', async () => {
    const data = await dir('srv');
    const conf = await dir('cli');
    const size = 24 * MIB;
    const file = join(conf, 'kill.bin');
    await writeFile(file, patternBytes(size, 4));
    const first = await server(data);
    const port = first.port;
    const slow = await proxy(port, { bytesPerSecond: 6 * MIB });
    const running = runClient(conf, ['--server', `127.0.0.1:${slow.port}`, '--name', 'jack', file]);
    // Wait until the server has made a good part durable (it checkpoints about once a second).
    const deadline = Date.now() + 20_000;
    let durable = 0;
    while (Date.now() < deadline && durable < size * 0.3) {
      await sleep(100);
      durable = Math.max(0, ...(await partialMetas(data)).map((m) => m.durable));
    }
    expect(durable).toBeGreaterThanOrEqual(size * 0.3);
    await first.stop('SIGKILL');
    const killed = await running;
    expect(killed.code).toBe(3);
    const id = killed.json?.clientId as string;
    expect(existsSync(join(data, id, 'kill.bin'))).toBe(false);

    const second = await server(data, ['--port', String(port)]);
    expect(second.port).toBe(port);
    const direct = await proxy(port);
    // known_servers pinned the slow proxy's address; the same server key is behind both.
    const resumed = await runClient(conf, ['--server', `127.0.0.1:${slow.port}`, file]);
    expect(resumed.code).toBe(0);
    expect(resumed.json?.files[0]?.resumedFrom).toBeGreaterThanOrEqual(durable);
    expect(resumed.json?.files[0]?.sha256).toBe(await sha256File(file));
    expect(await sha256File(join(data, id, 'kill.bin'))).toBe(await sha256File(file));
    await direct.close();
  });

  it('a byte flipped in transit breaks the TLS record: nothing stored, a rerun succeeds', async () => {
    const data = await dir('srv');
    const conf = await dir('cli');
    const size = 4 * MIB;
    const file = join(conf, 'flip.bin');
    await writeFile(file, patternBytes(size, 6));
    const s = await server(data);
    const p = await proxy(s.port, { flipAt: 2 * MIB });
    const addr = `127.0.0.1:${p.port}`;
    const broken = await runClient(conf, ['--server', addr, '--name', 'kim', file]);
    expect(broken.code).toBe(3);
    const id = broken.json?.clientId as string;
    expect(existsSync(join(data, id, 'flip.bin'))).toBe(false);
    await s
      .waitForLine(
        (l) => /socket error|connection closed/.test(String(l.msg)) || l.level >= 20,
        5000,
      )
      .catch(() => undefined);
    // What the server kept is a prefix of the true bytes only (the flipped record never decrypted).
    for (const meta of await partialMetas(data)) expect(meta.durable).toBeLessThan(2 * MIB);

    const rerun = await runClient(conf, ['--server', addr, file]);
    expect(rerun.code).toBe(0);
    expect(await sha256File(join(data, id, 'flip.bin'))).toBe(await sha256File(file));
  });

  it('moves a v3 client to v4 with its id and files, once', async () => {
    const data = await dir('srv');
    const conf = await dir('cli');
    const old = join(conf, 'old.txt');
    const fresh = join(conf, 'new.txt');
    await writeFile(old, 'sent over version 3\n');
    await writeFile(fresh, 'sent over version 4\n');
    const s = await server(data);
    const addr = `127.0.0.1:${s.port}`;
    const v3 = await runClient(conf, ['--protocol', 'v3', '--server', addr, '--name', 'lee', old]);
    expect(v3.code).toBe(0);
    const id = v3.json?.clientId as string;
    const meInfo = await readFile(join(conf, 'me.info'), 'utf8');

    const moved = await runClient(conf, ['--server', addr, fresh]);
    expect(moved.code).toBe(0);
    expect(moved.stderr).toContain(`moved client ${id}`);
    expect(moved.json?.clientId).toBe(id);
    expect(moved.json?.registered).toBe(false);
    expect(await readFile(join(data, id, 'old.txt'), 'utf8')).toBe('sent over version 3\n');
    expect(await readFile(join(data, id, 'new.txt'), 'utf8')).toBe('sent over version 4\n');
    expect((await stat(join(conf, 'identity.key'))).mode & 0o777).toBe(0o600);

    // Later runs are known by their certificate.
    const later = await runClient(conf, ['--server', addr, fresh]);
    expect(later.code).toBe(0);
    expect(later.stderr).not.toContain('moved client');
    expect(later.json?.clientId).toBe(id);

    // A copy of me.info with another certificate cannot move the client a second time.
    const thief = await dir('thief');
    await writeFile(join(thief, 'me.info'), meInfo, { mode: 0o600 });
    const stolen = await runClient(thief, ['--server', addr, fresh]);
    expect(stolen.code).toBe(4);
    expect(stolen.json?.clientId ?? null).not.toBe(id);
  });
});
