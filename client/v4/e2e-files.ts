/**
 * Sending and fetching end-to-end encrypted files (docs/protocol-v4.md §5.9). The client
 * encrypts a file into a cache in its config directory and uploads that ciphertext with the
 * flag E2E; the server stores and serves only ciphertext. The cached ciphertext is kept until
 * the upload is stored, so a cut upload resumes with the same bytes (a new encryption would
 * have a new salt and start again).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FileFlag } from '../../protocol/v4';
import { ciphertextSize, decryptFile, E2eError, encryptFile } from '../../shared/e2e-stream';
import { loadE2eSecret } from '../config/e2e-key';
import { ClientErrorCode, clientError } from '../errors';
import type { UploadOptions } from './compress';
import type { V4Plan } from './plan';
import type { V4ClientSession } from './session';
import type { V4UploadResult } from './upload';

const CACHE_DIR = 'e2e-outgoing';

/** The cache name of a file's ciphertext: changes when its path, size or mtime does. */
async function cachePath(configDir: string, plan: V4Plan): Promise<string> {
  const stats = await stat(plan.path);
  const id = createHash('sha256')
    .update(`${plan.path}\0${plan.fileName}\0${stats.size}\0${stats.mtimeMs}`)
    .digest('hex');
  return join(configDir, CACHE_DIR, `${id}.e2e`);
}

/** Bytes uploadEncrypted sends of `plan`: its ciphertext's. */
export function sealedSize(plan: V4Plan): number {
  return ciphertextSize(plan.size);
}

export async function uploadEncrypted(
  session: V4ClientSession,
  plan: V4Plan,
  configDir: string,
  options: UploadOptions,
): Promise<V4UploadResult> {
  const secret = await loadE2eSecret(configDir, { create: true, random: randomBytes });
  const sealed = await cachePath(configDir, plan);
  await mkdir(join(configDir, CACHE_DIR), { recursive: true, mode: 0o700 });
  const exists = await stat(sealed).then(
    () => true,
    () => false,
  );
  if (!exists) await encryptFile(plan.path, sealed, secret, plan.fileName, randomBytes);
  const size = (await stat(sealed)).size;
  const result = await session.upload(
    { path: sealed, fileName: plan.fileName, size },
    { ...options, flags: (options.flags ?? 0) | FileFlag.E2E },
  );
  await rm(sealed, { force: true });
  return { ...result, file: plan.path, bytes: plan.size };
}

/** The decrypt step of `get` for a file stored with --e2e. */
export function decryptorFor(
  configDir: string,
  fileName: string,
): (from: string, to: string) => Promise<void> {
  return async (from, to) => {
    const secret = await loadE2eSecret(configDir, { create: false, random: randomBytes });
    try {
      await decryptFile(from, to, secret, fileName);
    } catch (err) {
      if (!(err instanceof E2eError)) throw err;
      throw clientError(ClientErrorCode.DECRYPT_FAILED, `${fileName}: ${err.message}`, {
        hint: 'nothing was written; the stored file is damaged or this is not the config directory it was sent from',
        cause: err,
      });
    }
  };
}
