/**
 * The secret of end-to-end encrypted files (docs/protocol-v4.md §5.9): 32 random bytes in
 * `e2e.key` in the config directory, mode 0600, made on first use. It never leaves the client;
 * losing it (or the config directory) loses every file stored with --e2e.
 */
import { link, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { atomicTempPath, syncDirectory, writeFileAtomic } from '../../shared/atomic-file';
import { E2E_SECRET_SIZE } from '../../shared/e2e-stream';
import { ClientErrorCode, clientError } from '../errors';

export const E2E_KEY_FILE = 'e2e.key';
const PRIVATE_FILE = 0o600;

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}

async function readSecret(path: string): Promise<Buffer | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw clientError(ClientErrorCode.CONFIG_UNREADABLE, `cannot read ${path}`, { cause: err });
  }
  const secret = Buffer.from(text.trim(), 'base64');
  if (secret.length !== E2E_SECRET_SIZE || secret.toString('base64') !== text.trim()) {
    throw clientError(ClientErrorCode.CONFIG_UNREADABLE, `${path} is not a 32-byte key`, {
      hint: 'restore it from a backup: files stored with --e2e cannot be read without it',
    });
  }
  return secret;
}

/** The secret; `create` makes one (written atomically, never over an existing one). */
export async function loadE2eSecret(
  configDir: string,
  options: { create: boolean; random: (size: number) => Buffer },
): Promise<Buffer> {
  const path = join(configDir, E2E_KEY_FILE);
  const existing = await readSecret(path);
  if (existing !== undefined) return existing;
  if (!options.create) {
    throw clientError(ClientErrorCode.CONFIG_MISSING, `${path} is missing`, {
      hint: 'files stored with --e2e are readable only with the e2e.key they were sent with',
    });
  }
  // Written whole to a temp name, then linked into place: a second client racing to make one
  // finds the first's key instead of replacing it.
  const temp = atomicTempPath(path, options.random);
  await writeFileAtomic(temp, `${options.random(E2E_SECRET_SIZE).toString('base64')}\n`, {
    mode: PRIVATE_FILE,
  });
  try {
    await link(temp, path);
    await syncDirectory(configDir, { followSymlink: true }).catch(() => undefined);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw clientError(ClientErrorCode.CONFIG_WRITE_FAILED, `cannot write ${path}`, {
        cause: err,
      });
    }
  } finally {
    await unlink(temp).catch(() => undefined);
  }
  const made = await readSecret(path);
  if (made === undefined)
    throw clientError(ClientErrorCode.CONFIG_WRITE_FAILED, `cannot write ${path}`);
  return made;
}
