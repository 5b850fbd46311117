/**
 * The client's v4 identity (docs/protocol-v4.md §2.1): `identity.key` in the config dir, and
 * its self-signed certificate kept beside it in `identity.crt`, so a run reads both instead of
 * issuing a certificate each time (which loads the X.509 library and signs). The certificate
 * is only a cache of the key: one that does not belong to the key is made anew.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  IdentityError,
  IdentityErrorCode,
  loadOrCreateIdentity,
  type Identity,
} from '../../shared/identity';
import { IDENTITY_CERT_FILE, IDENTITY_KEY_FILE } from '../config/config-files';

export { IDENTITY_CERT_FILE, IDENTITY_KEY_FILE };

const COMMON_NAME = 'sft-client';

export async function loadClientIdentity(configDir: string): Promise<Identity> {
  const paths = {
    key: join(configDir, IDENTITY_KEY_FILE),
    cert: join(configDir, IDENTITY_CERT_FILE),
  };
  const sources = { now: Date.now, random: randomBytes };
  try {
    return await loadOrCreateIdentity(paths, COMMON_NAME, sources);
  } catch (err) {
    if (!(err instanceof IdentityError && err.code === IdentityErrorCode.BAD_CERT_FILE)) throw err;
    // A certificate of an earlier key, or a damaged one: it only caches what the key defines.
    await rm(paths.cert, { force: true });
    return loadOrCreateIdentity(paths, COMMON_NAME, sources);
  }
}
