/**
 * The anchor measured in the same run: a private `sshd` on loopback (temp host key, one temp
 * authorized key, key-only login, its own config, a free port) and `scp` timed against it.
 * Where sshd cannot be started the caller prints why and the scp rows say so.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';

const SSHD = '/usr/sbin/sshd';
/** Where a root sshd insists on its privilege-separation folder (compiled into sshd). */
const PRIVSEP_DIR = '/run/sshd';
const READY_TIMEOUT_MS = 10_000;

export interface Sshd {
  readonly port: number;
  readonly user: string;
  readonly identity: string;
  stop(): Promise<void>;
}

export type SshdStart =
  { readonly ok: true; readonly sshd: Sshd } | { readonly ok: false; readonly why: string };

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

function keygen(file: string): string | undefined {
  const run = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  if (run.error !== undefined) return run.error.message;
  return run.status === 0 ? undefined : run.stderr.toString().trim();
}

/** Starts sshd in `dir` (created): resolves once it listens, or with the reason it cannot. */
export async function startSshd(dir: string): Promise<SshdStart> {
  if (!existsSync(SSHD)) {
    return { ok: false, why: `${SSHD} missing (apt-get install -y openssh-server)` };
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const hostKey = join(dir, 'host_key');
  const identity = join(dir, 'user_key');
  for (const key of [hostKey, identity]) {
    const failed = keygen(key);
    if (failed !== undefined) return { ok: false, why: `ssh-keygen: ${failed}` };
  }
  const authorized = join(dir, 'authorized_keys');
  writeFileSync(authorized, spawnSync('cat', [`${identity}.pub`]).stdout, { mode: 0o600 });
  if (process.getuid?.() === 0 && !existsSync(PRIVSEP_DIR)) {
    mkdirSync(PRIVSEP_DIR, { recursive: true, mode: 0o755 });
  }
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${authorized}`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'PermitRootLogin prohibit-password',
      `PidFile ${join(dir, 'sshd.pid')}`,
      // scp of OpenSSH 9 speaks SFTP to the server.
      'Subsystem sftp internal-sftp',
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  const ready = await new Promise<string | undefined>((resolve) => {
    const timer = setTimeout(() => resolve('did not report listening'), READY_TIMEOUT_MS);
    child.once('error', (err) => resolve(err.message));
    child.once('exit', (code) => resolve(`exited with ${code}: ${log.trim()}`));
    child.stderr!.on('data', (text: Buffer) => {
      log += text.toString();
      if (log.includes('Server listening')) {
        clearTimeout(timer);
        resolve(undefined);
      }
    });
  });
  if (ready !== undefined) {
    child.kill('SIGTERM');
    return { ok: false, why: `sshd ${ready}` };
  }
  child.stderr!.resume();
  return {
    ok: true,
    sshd: {
      port,
      user: userInfo().username,
      identity,
      async stop() {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        await once(child, 'exit');
      },
    },
  };
}

/** Copies `files` into `destDir` with one `scp` run; wall time in ms from spawn to exit. */
export async function timeScp(
  sshd: Sshd,
  files: readonly string[],
  destDir: string,
): Promise<number> {
  const args = [
    '-q',
    '-F',
    '/dev/null',
    '-o',
    'BatchMode=yes',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'LogLevel=ERROR',
    '-i',
    sshd.identity,
    '-P',
    String(sshd.port),
    ...files,
    `${sshd.user}@127.0.0.1:${destDir}/`,
  ];
  const start = process.hrtime.bigint();
  const child = spawn('scp', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (text: Buffer) => (stderr += text.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (code !== 0) throw new Error(`scp exited ${code}: ${stderr.trim()}`);
  return ms;
}
