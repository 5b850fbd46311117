/**
 * What a client learns from the server's signed key set (docs/protocol-v4.md §2.5), as ssh
 * learns host keys through UpdateHostKeys: over a channel authenticated by a pinned key, the
 * set (signed by that same key) names the next key, which is added to known_servers without a
 * prompt, and retired keys, whose lines are removed: a retired key is never accepted again.
 * A set with a bad signature, or that says the presented key has expired, is refused (exit 6).
 */
import { createPublicKey, verify } from 'node:crypto';
import {
  KeyStatus,
  keySetStatement,
  RequestCode,
  ResponseCode,
  type KeyEntry,
  type KeySet,
} from '../../protocol/v4';
import { writeFileAtomic } from '../../shared/atomic-file';
import { fingerprintOfSpki } from '../../shared/fingerprint';
import { ClientErrorCode, clientError, configError } from '../errors';
import { expect } from './errors';
import {
  formatKnownServers,
  knownServersPath,
  loadKnownServers,
  type KnownServer,
} from './known-servers';
import type { V4Link } from './link';

export interface KeySetVerdict {
  /** Keys to accept from now on (status next, not expired). */
  readonly next: readonly string[];
  /** Keys never to accept again. */
  readonly retired: readonly string[];
}

function invalid(remote: string, why: string): Error {
  return clientError(
    ClientErrorCode.KEY_SET_INVALID,
    `${remote} sent a key set that is refused: ${why}; nothing was sent`,
    { hint: 'ask the server operator to check sft-server identity list' },
  );
}

function publicKeyOf(entry: KeyEntry): ReturnType<typeof createPublicKey> | undefined {
  try {
    return createPublicKey({ key: entry.publicKey, format: 'der', type: 'spki' });
  } catch {
    return undefined;
  }
}

/**
 * Checks a key set against the key the server presented: that key must be the set's current
 * one, unexpired, and have signed the set; every key id must be its key's fingerprint.
 */
export function checkKeySet(
  set: KeySet,
  presented: string,
  now: number,
  remote: string,
): KeySetVerdict {
  const current = set.keys.filter((k) => k.status === KeyStatus.CURRENT);
  if (current.length !== 1 || current[0]?.keyId !== presented) {
    throw invalid(remote, `its current key is not the one presented (${presented})`);
  }
  for (const key of set.keys) {
    if (fingerprintOfSpki(key.publicKey) !== key.keyId) {
      throw invalid(remote, `key ${key.keyId} does not match its public key`);
    }
  }
  const signer = publicKeyOf(current[0]);
  const statement = keySetStatement(set.keys, set.issuedAt);
  if (signer === undefined || !verify(null, statement, signer, set.signature)) {
    throw invalid(remote, 'its signature does not verify with the presented key');
  }
  if (current[0].notAfter !== 0 && current[0].notAfter <= now) {
    throw invalid(
      remote,
      `the presented key expired at ${new Date(current[0].notAfter).toISOString()}`,
    );
  }
  const usable = (k: KeyEntry): boolean =>
    k.status === KeyStatus.NEXT && (k.notAfter === 0 || k.notAfter > now);
  return {
    next: set.keys.filter(usable).map((k) => k.keyId),
    retired: set.keys.filter((k) => k.status === KeyStatus.RETIRED).map((k) => k.keyId),
  };
}

/** Adds and removes v4 keys of one address in known_servers (atomically, 0600). */
export async function updateKnownKeys(
  configDir: string,
  address: string,
  verdict: KeySetVerdict,
): Promise<{ added: string[]; removed: string[] }> {
  const entries = await loadKnownServers(configDir);
  const mine = (e: KnownServer): e is KnownServer & { protocol: 'v4' } =>
    e.address === address && e.protocol === 'v4';
  const have = new Set(entries.filter(mine).map((e) => e.fingerprint));
  const removed = verdict.retired.filter((fp) => have.has(fp));
  const added = verdict.next.filter((fp) => !have.has(fp) && !verdict.retired.includes(fp));
  if (added.length === 0 && removed.length === 0) return { added, removed };
  const kept = entries.filter((e) => !(mine(e) && removed.includes(e.fingerprint)));
  const next: KnownServer[] = added.map((fingerprint) => ({
    address,
    protocol: 'v4',
    fingerprint,
  }));
  const path = knownServersPath(configDir);
  try {
    await writeFileAtomic(path, formatKnownServers([...kept, ...next]), { mode: 0o600 });
  } catch (err) {
    throw configError(
      ClientErrorCode.CONFIG_WRITE_FAILED,
      { file: path },
      `cannot be written: ${(err as Error).message}`,
    );
  }
  return { added, removed };
}

/** Asks for the key set and checks it; returns the verdict. */
export async function fetchKeySet(
  link: V4Link,
  presented: string,
  now: number,
): Promise<KeySetVerdict> {
  await link.send({ code: RequestCode.KEYS });
  const set = expect(link.remote, 'KEYS', await link.receive('KEYS'), ResponseCode.KEY_SET);
  return checkKeySet(set, presented, now, link.remote);
}

/**
 * Right after WELCOME: fetch and check the key set, then pin the next keys and unpin retired
 * ones in known_servers (not with --server-fingerprint: that pin is the user's to change).
 */
export async function learnServerKeys(
  link: V4Link,
  presented: string,
  options: {
    readonly configDir: string;
    readonly address: string;
    readonly explicitPin: boolean;
    readonly log: { debug(fields: object, message: string): void };
  },
): Promise<void> {
  const verdict = await fetchKeySet(link, presented, Date.now());
  if (options.explicitPin) return;
  const { added, removed } = await updateKnownKeys(options.configDir, options.address, verdict);
  if (added.length > 0 || removed.length > 0) {
    options.log.debug({ added, removed }, 'v4: known_servers updated from the signed key set');
  }
}
