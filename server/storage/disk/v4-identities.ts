/**
 * V4Store on disk: the bindings of client-certificate fingerprints to client ids
 * (docs/protocol-v4.md §2, §5.2, §5.3) as small JSON files under `<data-dir>/identity/`:
 *
 *     bound/<sha256 hex of the fingerprint>.json   fingerprint → client
 *     clients/<client id hex>.json                  client → fingerprint (a client moves once)
 *
 * Both are created exclusively (O_EXCL), so two registrations racing for one certificate or one
 * client cannot both win, and fsynced with their folder before `bind` resolves. Kept apart from
 * the catalog's database so no second connection competes with its transactions, and so every
 * catalog backend gets the same bindings.
 */
import { createHash } from 'node:crypto';
import { constants as fsConstants, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { syncDirectory } from '../../../shared/atomic-file';
import { errnoCode } from '../../../shared/errno';
import type { V4Identity, V4Store } from '../../session/v4/context';
import { fsError } from './errors';

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fsConstants;

interface Stored {
  readonly clientId: string;
  readonly fingerprint: string;
  readonly boundAt: number;
  readonly via: 'register' | 'migrate';
}

function toIdentity(stored: Stored): V4Identity {
  return {
    clientId: Buffer.from(stored.clientId, 'hex'),
    fingerprint: stored.fingerprint,
    boundAt: stored.boundAt,
    via: stored.via === 'migrate' ? 'migrate' : 'register',
  };
}

export function createDiskV4Store(identityDir: string): V4Store {
  const boundDir = join(identityDir, 'bound');
  const clientsDir = join(identityDir, 'clients');
  const byFingerprint = (fp: string): string =>
    join(boundDir, `${createHash('sha256').update(fp, 'utf8').digest('hex')}.json`);
  const byClient = (id: Buffer): string => join(clientsDir, `${id.toString('hex')}.json`);

  async function read(path: string): Promise<Stored | undefined> {
    try {
      return JSON.parse(await fsp.readFile(path, 'utf8')) as Stored;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw fsError(`cannot read ${path}`, err);
    }
  }

  /** Creates `path` with `text` unless it exists; false if it does. */
  async function createExclusive(path: string, text: string): Promise<boolean> {
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, FILE_MODE);
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') return false;
      throw fsError(`cannot create ${path}`, err);
    }
    try {
      await handle.writeFile(text);
      await handle.sync();
    } catch (err) {
      await handle.close().catch(() => undefined);
      await fsp.unlink(path).catch(() => undefined);
      throw fsError(`cannot write ${path}`, err);
    }
    await handle.close();
    return true;
  }

  async function ensureDirs(): Promise<void> {
    for (const dir of [identityDir, boundDir, clientsDir]) {
      await fsp.mkdir(dir, { recursive: true, mode: DIR_MODE }).catch((err: unknown) => {
        throw fsError(`cannot create ${dir}`, err);
      });
    }
  }

  return {
    async findByFingerprint(fingerprint) {
      const stored = await read(byFingerprint(fingerprint));
      return stored && stored.fingerprint === fingerprint ? toIdentity(stored) : undefined;
    },
    async findByClientId(clientId) {
      const stored = await read(byClient(clientId));
      return stored && toIdentity(stored);
    },
    async bind(identity) {
      await ensureDirs();
      const text = JSON.stringify({
        clientId: identity.clientId.toString('hex'),
        fingerprint: identity.fingerprint,
        boundAt: identity.boundAt,
        via: identity.via,
      } satisfies Stored);
      const clientPath = byClient(identity.clientId);
      if (!(await createExclusive(clientPath, text))) return false;
      if (!(await createExclusive(byFingerprint(identity.fingerprint), text))) {
        await fsp.unlink(clientPath).catch(() => undefined);
        return false;
      }
      try {
        await syncDirectory(clientsDir);
        await syncDirectory(boundDir);
      } catch (err) {
        throw fsError(`cannot sync ${identityDir}`, err);
      }
      return true;
    },
    async unbind(fingerprint) {
      const path = byFingerprint(fingerprint);
      const stored = await read(path);
      if (!stored || stored.fingerprint !== fingerprint) return;
      await fsp.unlink(byClient(Buffer.from(stored.clientId, 'hex'))).catch(() => undefined);
      await fsp.unlink(path).catch(() => undefined);
    },
    async listIdentities() {
      let names: string[];
      try {
        names = await fsp.readdir(boundDir);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') return [];
        throw fsError(`cannot list ${boundDir}`, err);
      }
      const out: V4Identity[] = [];
      for (const name of names.filter((n) => n.endsWith('.json'))) {
        const stored = await read(join(boundDir, name));
        if (stored) out.push(toIdentity(stored));
      }
      return out.sort((a, b) => a.boundAt - b.boundAt);
    },
    async close() {},
  };
}
