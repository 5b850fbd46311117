/**
 * The client against a byte-level fake server (tests/helpers/fake-server.ts): §5 flows, the
 * §8 error rule, the §9 server quirks, timeouts and exit codes. Exit codes are checked on the
 * real CLI process (`node dist/client/process/main.js`).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { ExitCode } from '../../client/errors';
import {
  FakeServer,
  honest,
  readString255,
  responseBytes,
  string255,
  type FakeRequest,
  type HonestOptions,
  type HonestState,
} from '../helpers/fake-server';
import { removeDir, runCli, runInProcess, serverErrorLines, tempDir, testBytes } from './helpers';

const REGISTER = 1025;
const SEND_FILE = 1028;
const CHECKSUM_OK = 1029;
const CHECKSUM_RETRY = 1030;
const CHECKSUM_ABORT = 1031;
const RECONNECT = 1027;
/**
 * The fake speaks v3 only. Tests that count connections or requests per connection pin v3, so
 * the client's v4 attempt (answered as v3, docs/protocol-v4.md §2.4) is not one of them.
 */
const V3 = ['--protocol', 'v3'];

let fake: FakeServer | undefined;
let dir: string | undefined;

afterEach(async () => {
  await fake?.stop();
  fake = undefined;
  if (dir) await removeDir(dir);
  dir = undefined;
});

async function startFake(
  options: HonestOptions = {},
): Promise<{ fake: FakeServer; state: HonestState }> {
  const { handler, state } = honest(options);
  fake = await FakeServer.start(handler);
  return { fake, state };
}

/** A config dir with transfer.info pointing at `address` and the given files. */
async function setup(
  address: string,
  files: Record<string, Buffer> = { 'data.bin': testBytes(5000) },
  name = 'Test Client',
): Promise<string> {
  const first = Object.keys(files)[0];
  dir = await tempDir(`${address}\n${name}\n${first}\n`);
  for (const [file, content] of Object.entries(files)) await writeFile(join(dir, file), content);
  return dir;
}

const isFirstPacket = (r: FakeRequest): boolean =>
  r.code === SEND_FILE && r.payload.readUInt16LE(8) === 1;

describe('first run against a conforming server', () => {
  it('registers, saves me.info and priv.key with mode 0600, uploads, confirms', async () => {
    const { fake, state } = await startFake();
    const input = testBytes(5000);
    const cfg = await setup(fake.address, { 'data.bin': input });
    const result = await runCli(['--config-dir', cfg]);
    expect(result.code).toBe(ExitCode.OK);
    expect(fake.codes().filter((c) => c !== SEND_FILE)).toEqual([1025, 1026, CHECKSUM_OK]);
    // 1025 carries no id yet (§1).
    expect(fake.requests[0].clientId.equals(Buffer.alloc(16))).toBe(true);
    expect(readString255(fake.requests[0].payload, 0)).toBe('Test Client');
    expect(state.uploads).toHaveLength(1);
    expect(state.uploads[0].plaintext.equals(input)).toBe(true);
    expect(state.uploads[0].fileName).toBe('data.bin');
    const id = [...state.clients.keys()][0];
    for (const file of ['me.info', 'priv.key']) {
      expect((await stat(join(cfg, file))).mode & 0o777).toBe(0o600);
    }
    const meInfo = (await readFile(join(cfg, 'me.info'), 'utf8')).split('\n');
    expect(meInfo[0]).toBe('Test Client');
    expect(meInfo[1]).toBe(id);
    const privKey = (await readFile(join(cfg, 'priv.key'), 'utf8')).trim();
    expect(meInfo[2]).toBe(privKey);
    // The key the server holds is the public half of the saved private key.
    const client = state.clients.get(id);
    const savedPublic = createPublicKey(
      createPrivateKey({ key: Buffer.from(privKey, 'base64'), format: 'der', type: 'pkcs8' }),
    ).export({ type: 'spki', format: 'der' });
    expect(client?.publicKey?.export({ type: 'spki', format: 'der' }).equals(savedPublic)).toBe(
      true,
    );
    expect(result.stdout).toMatch(/registered as "Test Client"/);
    expect(result.stdout).toMatch(/sent data\.bin: .*verified/);
  });

  it('reconnects on the second run (1027 → 1605) and uploads under the same id', async () => {
    const { fake, state } = await startFake();
    const cfg = await setup(fake.address);
    expect((await runInProcess([...V3, '-c', cfg])).code).toBe(ExitCode.OK);
    const second = await runInProcess([...V3, '-c', cfg, '--json']);
    expect(second.code).toBe(ExitCode.OK);
    const codes = fake.requests.filter((r) => r.connection === 1).map((r) => r.code);
    expect(codes.filter((c) => c !== SEND_FILE)).toEqual([RECONNECT, CHECKSUM_OK]);
    const doc = JSON.parse(second.stdout) as { registered: boolean; clientId: string };
    expect(doc.registered).toBe(false);
    expect(doc.clientId).toBe([...state.clients.keys()][0]);
    expect(state.uploads[1].clientId).toBe(doc.clientId);
  });

  it('registers anew on 1606 and rewrites me.info with the new id', async () => {
    const { fake, state } = await startFake();
    const cfg = await setup(fake.address);
    expect((await runInProcess([...V3, '-c', cfg])).code).toBe(ExitCode.OK);
    const oldId = [...state.clients.keys()][0];
    state.clients.clear(); // the server lost its records
    const result = await runInProcess([...V3, '-c', cfg]);
    expect(result.code).toBe(ExitCode.OK);
    const codes = fake.requests.filter((r) => r.connection === 1).map((r) => r.code);
    expect(codes.filter((c) => c !== SEND_FILE)).toEqual([RECONNECT, 1025, 1026, CHECKSUM_OK]);
    const newId = [...state.clients.keys()][0];
    expect(newId).not.toBe(oldId);
    const meInfo = (await readFile(join(cfg, 'me.info'), 'utf8')).split('\n');
    expect(meInfo[1]).toBe(newId);
    expect(result.stdout).toMatch(/registering anew as "Test Client"/);
  });

  it('warns that --name does not rename a registered client', async () => {
    const { fake } = await startFake();
    const cfg = await setup(fake.address);
    expect((await runInProcess(['-c', cfg])).code).toBe(ExitCode.OK);
    const result = await runInProcess(['-c', cfg, '--name', 'Someone Else']);
    expect(result.code).toBe(ExitCode.OK);
    expect(result.stderr).toMatch(/warning: me\.info is registered as "Test Client"/);
    expect(readString255(fake.requests.filter((r) => r.code === RECONNECT)[0].payload, 0)).toBe(
      'Test Client',
    );
  });

  it('reads a me.info with multi-line base64 written by another client', async () => {
    const { fake, state } = await startFake();
    const cfg = await setup(fake.address);
    const { publicKey, privateKey } = generateKeyPairSync('rsa', {
      modulusLength: 1024,
      publicExponent: 17,
    });
    const id = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');
    state.clients.set(id.toString('hex'), { name: 'Other Client', publicKey });
    const b64 = privateKey.export({ type: 'pkcs8', format: 'der' }).toString('base64');
    const wrapped = b64.match(/.{1,64}/g)?.join('\r\n') ?? '';
    await writeFile(
      join(cfg, 'me.info'),
      `Other Client\r\n${id.toString('hex')}\r\n${wrapped}\r\n`,
    );
    const result = await runInProcess(['-c', cfg]);
    expect(result.code).toBe(ExitCode.OK);
    expect(fake.requests[0].code).toBe(RECONNECT);
    expect(fake.requests[0].clientId.equals(id)).toBe(true);
    expect(readString255(fake.requests[0].payload, 0)).toBe('Other Client');
    expect(state.uploads[0].clientId).toBe(id.toString('hex'));
  });
});

describe('packets (§5, §9: exact sizes, never an empty packet)', () => {
  it.each([
    [0, [16]],
    [1, [16]],
    [16, [32]],
    [1023, [1024]],
    [2047, [1024, 1024]],
    [4096, [1024, 1024, 1024, 1024, 16]],
  ])('a %i-byte file is sent as packets of %j ciphertext bytes', async (size, sizes) => {
    const { fake, state } = await startFake();
    const input = testBytes(size, size + 7);
    const cfg = await setup(fake.address, { 'f.bin': input });
    expect((await runInProcess(['-c', cfg, '-q'])).code).toBe(ExitCode.OK);
    const upload = state.uploads[0];
    expect(upload.packetSizes).toEqual(sizes);
    expect(upload.plaintext.equals(input)).toBe(true);
    for (const h of upload.headers) {
      expect(h).toEqual({
        contentSize: sizes.reduce((a, b) => a + b, 0),
        origSize: size,
        total: sizes.length,
      });
    }
  });
});

describe('checksum mismatch (§5.5)', () => {
  it('re-sends three times after 1030, then sends 1031 and exits 5', async () => {
    const { fake, state } = await startFake({
      tamper: (req, answer) => {
        if (req.code !== SEND_FILE || !answer || answer.readUInt16LE(1) !== 1603) return undefined;
        const wrong = Buffer.from(answer);
        wrong.writeUInt32LE((wrong.readUInt32LE(wrong.length - 4) + 1) >>> 0, wrong.length - 4);
        return wrong;
      },
    });
    const cfg = await setup(fake.address);
    const result = await runCli(['-c', cfg, '--json']);
    expect(result.code).toBe(ExitCode.CHECKSUM);
    expect(fake.count(CHECKSUM_RETRY)).toBe(3);
    expect(fake.count(CHECKSUM_ABORT)).toBe(1);
    expect(fake.count(CHECKSUM_OK)).toBe(0);
    expect(state.uploads).toHaveLength(4);
    // 1030 and 1031 name the file (§3).
    const retry = fake.requests.find((r) => r.code === CHECKSUM_RETRY);
    expect(retry && readString255(retry.payload, 0)).toBe('data.bin');
    const doc = JSON.parse(result.stdout) as {
      ok: boolean;
      error: { code: string };
      files: { verified: boolean; uploads: number }[];
    };
    expect(doc.ok).toBe(false);
    expect(doc.error.code).toBe('CHECKSUM_FAILED');
    expect(doc.files[0]).toMatchObject({ verified: false, uploads: 4 });
    expect(result.stderr).toMatch(/cksum/);
  });

  it('passes when the second upload matches', async () => {
    let lies = 1;
    const { fake } = await startFake({
      tamper: (req, answer) => {
        if (req.code !== SEND_FILE || !answer || lies === 0) return undefined;
        lies--;
        const wrong = Buffer.from(answer);
        wrong.writeUInt32LE(0, wrong.length - 4);
        return wrong;
      },
    });
    const cfg = await setup(fake.address);
    const result = await runInProcess(['-c', cfg, '--json']);
    expect(result.code).toBe(ExitCode.OK);
    expect(fake.count(CHECKSUM_RETRY)).toBe(1);
    expect(fake.count(CHECKSUM_OK)).toBe(1);
    expect((JSON.parse(result.stdout) as { files: { uploads: number }[] }).files[0].uploads).toBe(
      2,
    );
  });
});

describe('errors (§8): print the line, repeat up to 3 times, then fail', () => {
  it('1607 to every registration: 3 attempts, the line 3 times, exit 4', async () => {
    const { fake } = await startFake({
      tamper: (req) => (req.code === REGISTER ? responseBytes(1607) : undefined),
    });
    const cfg = await setup(fake.address);
    const result = await runCli(['-c', cfg]);
    expect(result.code).toBe(ExitCode.REJECTED);
    expect(serverErrorLines(result.stderr)).toBe(3);
    expect(fake.count(REGISTER)).toBe(3);
    expect(result.stderr).toMatch(/registration \(1025\) failed 3 times/);
  });

  it('1607 to every upload: the whole upload 3 times, the line 3 times, exit 4', async () => {
    const { fake } = await startFake({
      tamper: (req) =>
        req.code === SEND_FILE && req.payload.readUInt16LE(8) === req.payload.readUInt16LE(10)
          ? responseBytes(1607)
          : undefined,
    });
    const cfg = await setup(fake.address);
    const result = await runCli(['-c', cfg]);
    expect(result.code).toBe(ExitCode.REJECTED);
    expect(serverErrorLines(result.stderr)).toBe(3);
    expect(fake.requests.filter(isFirstPacket)).toHaveLength(3);
    expect(fake.count(CHECKSUM_OK)).toBe(0);
    expect(result.stderr).toMatch(/upload of data\.bin failed 3 times/);
  });

  it('recovers when a 1607 is followed by a normal answer', async () => {
    let errors = 1;
    const { fake, state } = await startFake({
      tamper: (req) => (req.code === REGISTER && errors-- > 0 ? responseBytes(1607) : undefined),
    });
    const cfg = await setup(fake.address);
    const result = await runInProcess(['-c', cfg]);
    expect(result.code).toBe(ExitCode.OK);
    expect(serverErrorLines(result.stderr)).toBe(1);
    expect(fake.count(REGISTER)).toBe(2);
    expect(state.uploads).toHaveLength(1);
  });

  it('treats an unknown response code as an unusable answer and repeats', async () => {
    let odd = 1;
    const { fake } = await startFake({
      tamper: (req) => (req.code === CHECKSUM_OK && odd-- > 0 ? responseBytes(1777) : undefined),
    });
    const cfg = await setup(fake.address);
    const result = await runInProcess(['-c', cfg]);
    expect(result.code).toBe(ExitCode.OK);
    expect(serverErrorLines(result.stderr)).toBe(1);
    expect(fake.count(CHECKSUM_OK)).toBe(2);
  });

  it('after a 1607 in the middle of an upload, retries on a new connection', async () => {
    // Connection 0 rejects packet 1 and every packet after it, as a strict server may (§9).
    const { fake, state } = await startFake({
      tamper: (req) =>
        req.connection === 0 && req.code === SEND_FILE ? responseBytes(1607) : undefined,
    });
    const cfg = await setup(fake.address, { 'big.bin': testBytes(300_000) });
    const result = await runInProcess([...V3, '-c', cfg]);
    expect(result.code).toBe(ExitCode.OK);
    expect(serverErrorLines(result.stderr)).toBe(1);
    expect(fake.connectionCount).toBe(2);
    const second = fake.requests.filter((r) => r.connection === 1).map((r) => r.code);
    expect(second.filter((c) => c !== SEND_FILE)).toEqual([RECONNECT, CHECKSUM_OK]);
    expect(state.uploads.at(-1)?.plaintext.equals(testBytes(300_000))).toBe(true);
  });

  it('a wrapped AES key that does not decrypt is an unusable answer (1605 repeated)', async () => {
    let spoil = 1;
    const { fake } = await startFake({
      tamper: (req, answer) => {
        if (req.code !== RECONNECT || !answer || spoil-- <= 0) return undefined;
        const bad = Buffer.from(answer);
        bad.fill(0x5a, 7 + 16);
        return bad;
      },
    });
    const cfg = await setup(fake.address);
    expect((await runInProcess(['-c', cfg])).code).toBe(ExitCode.OK);
    const result = await runInProcess(['-c', cfg]);
    expect(result.code).toBe(ExitCode.OK);
    expect(serverErrorLines(result.stderr)).toBe(1);
    expect(result.stderr).toMatch(/does not decrypt/);
    expect(fake.count(RECONNECT)).toBe(2);
  });

  it('after a 1607 and a hang-up in the middle of an upload, retries on a new connection', async () => {
    // As a server does with a packet over its size limit: answer 1607, then close (§9).
    const { handler, state } = honest();
    fake = await FakeServer.start((req, reply) => {
      if (req.connection === 0 && req.code === SEND_FILE) {
        reply.send(responseBytes(1607));
        reply.end();
        return;
      }
      handler(req, reply);
    });
    const input = testBytes(3_000_000, 5);
    const cfg = await setup(fake.address, { 'big.bin': input });
    const result = await runInProcess([...V3, '-c', cfg]);
    expect(result.code).toBe(ExitCode.OK);
    expect(serverErrorLines(result.stderr)).toBe(1);
    expect(fake.connectionCount).toBe(2);
    expect(state.uploads).toHaveLength(1);
    expect(state.uploads[0].plaintext.equals(input)).toBe(true);
  });

  it('a byte stream that cannot be framed is an error too: new connection, then exit 4', async () => {
    // An answer declaring a huge payload, as a non-protocol peer would send.
    const { fake } = await startFake({
      tamper: (req) =>
        req.code === REGISTER ? Buffer.from('HTTP/1.1 400 Bad Request\r\n') : undefined,
    });
    const cfg = await setup(fake.address);
    const result = await runCli([...V3, '-c', cfg]);
    expect(result.code).toBe(ExitCode.REJECTED);
    expect(serverErrorLines(result.stderr)).toBe(3);
    expect(fake.connectionCount).toBe(3);
  });

  it('1601 to a registration: rejected, with advice to choose another name, exit 4', async () => {
    const { fake } = await startFake({ takenNames: ['Test Client'] });
    const cfg = await setup(fake.address);
    const result = await runCli(['-c', cfg]);
    expect(result.code).toBe(ExitCode.REJECTED);
    expect(fake.count(REGISTER)).toBe(1);
    expect(result.stderr).toMatch(/rejected by server/);
    expect(result.stderr).toMatch(/choose another name/);
    expect(serverErrorLines(result.stderr)).toBe(0);
  });
});

describe('server quirks (§9)', () => {
  it('accepts a 1600 that declares payload 0 and sends the id anyway', async () => {
    const { fake, state } = await startFake({
      tamper: (req, answer) =>
        req.code === REGISTER && answer && answer.readUInt16LE(1) === 1600
          ? responseBytes(1600, answer.subarray(7), 0)
          : undefined,
    });
    const cfg = await setup(fake.address);
    const result = await runCli(['-c', cfg]);
    expect(result.code).toBe(ExitCode.OK);
    const id = [...state.clients.keys()][0];
    expect(fake.requests[1].clientId.toString('hex')).toBe(id);
    expect(state.uploads[0].clientId).toBe(id);
  });

  it('ignores the file-name field some servers send after 1604, across two files', async () => {
    const { fake, state } = await startFake({
      tamper: (req, answer) =>
        req.code === CHECKSUM_OK && answer
          ? Buffer.concat([answer, string255(readString255(req.payload, 0))])
          : undefined,
    });
    const cfg = await setup(fake.address, {
      'one.bin': testBytes(3000, 1),
      'two.bin': testBytes(70, 2),
    });
    // Both files on one connection: the junk after the first 1604 precedes the second upload.
    const files = [join(cfg, 'one.bin'), join(cfg, 'two.bin')];
    const result = await runCli([...V3, '-c', cfg, '--json', '--parallel', '1', ...files]);
    expect(result.code).toBe(ExitCode.OK);
    expect(serverErrorLines(result.stderr)).toBe(0);
    expect(fake.connectionCount).toBe(1);
    expect(state.uploads.map((u) => u.fileName)).toEqual(['one.bin', 'two.bin']);
    const doc = JSON.parse(result.stdout) as { files: { verified: boolean }[] };
    expect(doc.files.map((f) => f.verified)).toEqual([true, true]);
  });

  it('ignores the junk also when it arrives in a later TCP segment', async () => {
    const { handler, state } = honest();
    fake = await FakeServer.start((req, reply) => {
      handler(req, {
        send: (bytes) => {
          reply.send(bytes);
          if (req.code === CHECKSUM_OK) {
            const junk = string255(readString255(req.payload, 0));
            // Two writes: the rest goes out before the server reads anything more from us.
            reply.send(junk.subarray(0, 100));
            setImmediate(() => reply.send(junk.subarray(100)));
          }
        },
        end: reply.end,
      });
    });
    const cfg = await setup(fake.address, {
      'one.bin': testBytes(3000, 1),
      'two.bin': testBytes(70, 2),
    });
    const result = await runInProcess(['-c', cfg, join(cfg, 'one.bin'), join(cfg, 'two.bin')]);
    expect(result.code).toBe(ExitCode.OK);
    expect(state.uploads).toHaveLength(2);
  });
});

describe('connection failures (exit 3)', () => {
  it('times out when the server never answers', async () => {
    fake = await FakeServer.start(() => undefined);
    const cfg = await setup(fake.address);
    const result = await runCli(['-c', cfg, '--response-timeout', '1']);
    expect(result.code).toBe(ExitCode.CONNECTION);
    expect(result.stderr).toMatch(
      /no answer from 127\.0\.0\.1:\d+ to the registration \(1025\) within 1 s/,
    );
    expect(fake.count(REGISTER)).toBe(1);
  });

  it('reports a refused connection', async () => {
    // A port that was just free: listen, note it, close.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const address = probe.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const cfg = await setup(`127.0.0.1:${port}`);
    const result = await runCli(['-c', cfg, '--json']);
    expect(result.code).toBe(ExitCode.CONNECTION);
    expect(result.stderr).toMatch(/connection to 127\.0\.0\.1:\d+ refused/);
    expect((JSON.parse(result.stdout) as { error: { code: string } }).error.code).toBe(
      'CONNECT_REFUSED',
    );
  });

  it('times out connecting to a server whose accept queue is full', async () => {
    // A child that listens with a backlog of 1 and then blocks its event loop (without using
    // CPU): once the kernel's accept queue is full, further SYNs are dropped, as a firewall
    // that drops packets would do.
    const child = spawn(
      process.execPath,
      [
        '-e',
        `const s = require('net').createServer();
         s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
           console.log(s.address().port);
           Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20000);
         });`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const fillers: Socket[] = [];
    try {
      const port = await new Promise<number>((resolve) =>
        child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))),
      );
      for (let i = 0; i < 4; i++) {
        const filler = connect(port, '127.0.0.1');
        filler.on('error', () => undefined);
        fillers.push(filler);
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
      const cfg = await setup(`127.0.0.1:${port}`);
      const result = await runCli(['-c', cfg, '--connect-timeout', '1', '--json']);
      expect(result.code).toBe(ExitCode.CONNECTION);
      expect(result.stderr).toMatch(/no connection to 127\.0\.0\.1:\d+ within 1 s/);
      expect((JSON.parse(result.stdout) as { error: { code: string } }).error.code).toBe(
        'CONNECT_TIMEOUT',
      );
    } finally {
      for (const filler of fillers) filler.destroy();
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
  });

  it('reports a server that closes the connection', async () => {
    fake = await FakeServer.start((_req, reply) => reply.end());
    const cfg = await setup(fake.address);
    const result = await runInProcess(['-c', cfg, '--json']);
    expect(result.code).toBe(ExitCode.CONNECTION);
    expect((JSON.parse(result.stdout) as { error: { code: string } }).error.code).toBe(
      'CONNECTION_LOST',
    );
  });
});

describe('files are checked before connecting (exit 2)', () => {
  it.each([
    ['a missing file', async (cfg: string) => [join(cfg, 'nope.bin')], /no such file/],
    ['a directory', async (cfg: string) => [cfg], /is a directory/],
    [
      'two files with one name',
      async (cfg: string) => {
        const { mkdir } = await import('node:fs/promises');
        await mkdir(join(cfg, 'sub'));
        await writeFile(join(cfg, 'sub', 'data.bin'), 'x');
        return [join(cfg, 'data.bin'), join(cfg, 'sub', 'data.bin')];
      },
      /same name "data\.bin"/,
    ],
    [
      'a name the protocol cannot carry',
      async (cfg: string) => {
        const path = join(cfg, 'back\\slash.bin');
        await writeFile(path, 'x');
        return [path];
      },
      /cannot be sent/,
    ],
  ])('%s', async (_what, files, message) => {
    const { fake } = await startFake();
    const cfg = await setup(fake.address);
    const result = await runCli(['-c', cfg, ...(await files(cfg))]);
    expect(result.code).toBe(ExitCode.USAGE);
    expect(result.stderr).toMatch(message);
    expect(fake.connectionCount).toBe(0);
  });
});
