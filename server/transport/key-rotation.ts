/**
 * Rotation of the server's identity key (docs/protocol-v4.md §2.5), the OpenSSH UpdateHostKeys
 * idea with JWKS fields. In `<data-dir>/identity/`:
 *
 *     identity.key, identity.crt   the current key: the one presented
 *     next.key, next.crt           the next key, from `identity rotate` until promoted
 *     keyset.json                  every key with its id (fingerprint), algorithm, not-before,
 *                                  not-after and status (current, next, retired)
 *
 * `rotate` makes the next key and gives the current one a not-after at the end of the grace;
 * `promote` (or the end of the grace) makes the next key current and retires the old one,
 * whose private key is deleted: a retired key can never be presented again. The key set is
 * written first and the key files renamed after, so a crash in between is finished at the next
 * load (the next key named current in the set is moved into place).
 */
import { createPublicKey, randomBytes } from 'node:crypto';
import { readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../shared/atomic-file';
import { CodedError } from '../../shared/coded-error';
import { isNotFound } from '../../shared/errno';
import { loadOrCreateIdentity, type Identity } from '../../shared/identity';

export const KEY_SET_FILE = 'keyset.json';
const NEXT_KEY = 'next.key';
const NEXT_CERT = 'next.crt';
const FILE_MODE = 0o600;
/** Retired keys listed in the set, newest first; older ones are forgotten. */
const RETIRED_KEPT = 4;
export const ALGORITHM = 'Ed25519';

export type KeyState = 'current' | 'next' | 'retired';

export interface KeyRecord {
  /** The fingerprint (docs/protocol-v4.md §2.2). */
  readonly id: string;
  readonly algorithm: string;
  /** ms since the epoch. */
  readonly notBefore: number;
  /** ms since the epoch; 0: none set. */
  readonly notAfter: number;
  readonly status: KeyState;
  /** DER SubjectPublicKeyInfo, base64. */
  readonly publicKey: string;
}

export type KeyRotationErrorCode =
  /** `rotate` while a next key waits to be promoted. */
  | 'ROTATION_PENDING'
  /** `promote` without a next key. */
  | 'NO_NEXT_KEY'
  /** keyset.json does not parse or contradicts the key files. */
  | 'BAD_KEY_SET';

export class KeyRotationError extends CodedError<KeyRotationErrorCode> {
  override readonly name = 'KeyRotationError';
}

export interface KeyPaths {
  readonly dir: string;
  readonly key: string;
  readonly cert: string;
}

function files(paths: KeyPaths): { set: string; nextKey: string; nextCert: string } {
  return {
    set: join(paths.dir, KEY_SET_FILE),
    nextKey: join(paths.dir, NEXT_KEY),
    nextCert: join(paths.dir, NEXT_CERT),
  };
}

const SOURCES = (now: () => number) => ({ now, random: randomBytes });

function spkiOf(identity: Identity): string {
  return createPublicKey(identity.privateKey)
    .export({ type: 'spki', format: 'der' })
    .toString('base64');
}

function parseSet(text: string, path: string): KeyRecord[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new KeyRotationError('BAD_KEY_SET', `${path}: not JSON`, { cause: err });
  }
  const keys = (parsed as { keys?: unknown }).keys;
  const valid =
    Array.isArray(keys) &&
    keys.every(
      (k: Partial<KeyRecord>) =>
        typeof k.id === 'string' &&
        typeof k.algorithm === 'string' &&
        typeof k.notBefore === 'number' &&
        typeof k.notAfter === 'number' &&
        typeof k.publicKey === 'string' &&
        (k.status === 'current' || k.status === 'next' || k.status === 'retired'),
    );
  if (!valid) throw new KeyRotationError('BAD_KEY_SET', `${path}: not a key set`);
  return keys as KeyRecord[];
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

async function writeSet(paths: KeyPaths, keys: readonly KeyRecord[]): Promise<void> {
  const retired = keys.filter((k) => k.status === 'retired').slice(0, RETIRED_KEPT);
  const kept = [...keys.filter((k) => k.status !== 'retired'), ...retired];
  await writeFileAtomic(files(paths).set, `${JSON.stringify({ keys: kept }, null, 2)}\n`, {
    mode: FILE_MODE,
  });
}

export interface LoadedKeys {
  readonly current: Identity;
  readonly next: Identity | undefined;
  readonly keys: readonly KeyRecord[];
}

/**
 * The current identity (made on first start), the next one if a rotation is under way, and
 * the key set; finishes a promotion a crash interrupted.
 */
export async function loadKeys(paths: KeyPaths, now: () => number): Promise<LoadedKeys> {
  const f = files(paths);
  const setText = await readText(f.set);
  let keys = setText === undefined ? undefined : parseSet(setText, f.set);
  const named = keys?.find((k) => k.status === 'current')?.id;
  const nextPem = await readText(f.nextKey);
  if (nextPem !== undefined && named !== undefined) {
    const next = await loadOrCreateIdentity(
      { key: f.nextKey, cert: f.nextCert },
      'sft-server',
      SOURCES(now),
    );
    if (next.fingerprint === named) {
      // The set was written, the renames were not: finish the promotion.
      await rename(f.nextCert, paths.cert);
      await rename(f.nextKey, paths.key);
    }
  }
  const current = await loadOrCreateIdentity(paths, 'sft-server', SOURCES(now));
  const next =
    (await readText(f.nextKey)) === undefined
      ? undefined
      : await loadOrCreateIdentity(
          { key: f.nextKey, cert: f.nextCert },
          'sft-server',
          SOURCES(now),
        );
  if (
    keys === undefined ||
    !keys.some((k) => k.status === 'current' && k.id === current.fingerprint)
  ) {
    // No set yet (or one from another key): the current key alone, valid from now.
    keys = [
      {
        id: current.fingerprint,
        algorithm: ALGORITHM,
        notBefore: now(),
        notAfter: 0,
        status: 'current',
        publicKey: spkiOf(current),
      },
      ...(keys ?? []).filter((k) => k.status === 'retired'),
    ];
    await writeSet(paths, keys);
  }
  const nextInSet = keys.find((k) => k.status === 'next');
  if (
    (next === undefined) !== (nextInSet === undefined) ||
    (next && next.fingerprint !== nextInSet?.id)
  ) {
    throw new KeyRotationError(
      'BAD_KEY_SET',
      `${f.set} and ${f.nextKey} disagree about the next key; restore one or remove both`,
    );
  }
  return { current, next, keys };
}

/** Makes the next key; the current one stays presented until `now + graceMs`. */
export async function rotate(
  paths: KeyPaths,
  graceMs: number,
  now: () => number,
): Promise<LoadedKeys> {
  const loaded = await loadKeys(paths, now);
  if (loaded.next !== undefined) {
    throw new KeyRotationError(
      'ROTATION_PENDING',
      `the next key ${loaded.next.fingerprint} waits to be promoted; run identity promote first`,
    );
  }
  const f = files(paths);
  const next = await loadOrCreateIdentity(
    { key: f.nextKey, cert: f.nextCert },
    'sft-server',
    SOURCES(now),
  );
  const at = now();
  const keys: KeyRecord[] = [
    ...loaded.keys.map((k) => (k.status === 'current' ? { ...k, notAfter: at + graceMs } : k)),
    {
      id: next.fingerprint,
      algorithm: ALGORITHM,
      notBefore: at,
      notAfter: 0,
      status: 'next',
      publicKey: spkiOf(next),
    },
  ];
  await writeSet(paths, keys);
  return { current: loaded.current, next, keys };
}

/** The next key becomes current; the current one is retired and its private key deleted. */
export async function promote(paths: KeyPaths, now: () => number): Promise<LoadedKeys> {
  const loaded = await loadKeys(paths, now);
  const next = loaded.next;
  if (next === undefined) {
    throw new KeyRotationError('NO_NEXT_KEY', 'there is no next key: run identity rotate first');
  }
  const at = now();
  const keys: KeyRecord[] = [
    ...loaded.keys
      .filter((k) => k.status === 'next')
      .map((k) => ({ ...k, status: 'current' as const, notBefore: Math.min(k.notBefore, at) })),
    ...loaded.keys
      .filter((k) => k.status === 'current')
      .map((k) => ({ ...k, status: 'retired' as const, notAfter: at })),
    ...loaded.keys.filter((k) => k.status === 'retired'),
  ];
  await writeSet(paths, keys);
  const f = files(paths);
  await rename(f.nextCert, paths.cert);
  await rename(f.nextKey, paths.key);
  return { current: next, next: undefined, keys };
}

/** Promotes when the grace of a rotation has passed; true if it did. */
export async function promoteIfGraceOver(paths: KeyPaths, now: () => number): Promise<boolean> {
  const loaded = await loadKeys(paths, now);
  const current = loaded.keys.find((k) => k.status === 'current');
  if (loaded.next === undefined || current === undefined || current.notAfter === 0) return false;
  if (now() < current.notAfter) return false;
  await promote(paths, now);
  return true;
}
