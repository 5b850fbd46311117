import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  fingerprintOfCertificate,
  fingerprintOfSpki,
  parseFingerprint,
} from '../../shared/fingerprint';
import { IdentityErrorCode, loadOrCreateIdentity, loadOrCreateKey } from '../../shared/identity';

const sources = { now: () => Date.UTC(2026, 0, 1), random: randomBytes };

describe('fingerprints', () => {
  it('are SHA256: and the unpadded base64 of the SPKI digest', () => {
    // sha256("") = e3b0c442...; base64 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=
    expect(fingerprintOfSpki(Buffer.alloc(0))).toBe(
      'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU',
    );
  });

  it('parse only the exact form', () => {
    const good = 'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU';
    expect(parseFingerprint(` ${good}\n`)).toBe(good);
    expect(parseFingerprint(good + '=')).toBeUndefined();
    expect(parseFingerprint('MD5:' + good.slice(7))).toBeUndefined();
    expect(parseFingerprint(good.slice(0, -1))).toBeUndefined();
  });
});

describe('identity files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sft-identity-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('makes an Ed25519 key and a self-signed certificate, 0600, stable across loads', async () => {
    const paths = {
      key: join(dir, 'identity', 'identity.key'),
      cert: join(dir, 'identity', 'identity.crt'),
    };
    const first = await loadOrCreateIdentity(paths, 'sft-server', sources);
    expect(first.created).toBe(true);
    expect((await stat(paths.key)).mode & 0o777).toBe(0o600);
    expect((await stat(paths.cert)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'identity'))).mode & 0o777).toBe(0o700);
    const cert = new X509Certificate(first.certDer);
    expect(cert.subject).toBe('CN=sft-server');
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.publicKey.asymmetricKeyType).toBe('ed25519');
    expect(fingerprintOfCertificate(first.certDer)).toBe(first.fingerprint);
    const second = await loadOrCreateIdentity(paths, 'sft-server', sources);
    expect(second.created).toBe(false);
    expect(second.fingerprint).toBe(first.fingerprint);
    expect(second.certPem).toBe(first.certPem);
  });

  it('keeps the fingerprint when only the key is kept (client: a certificate per run)', async () => {
    const keyPath = join(dir, 'identity.key');
    const a = await loadOrCreateIdentity({ key: keyPath }, 'c', sources);
    const b = await loadOrCreateIdentity({ key: keyPath }, 'c', sources);
    expect(b.fingerprint).toBe(a.fingerprint);
    expect(b.certDer.equals(a.certDer)).toBe(false);
  });

  it('refuses a key file that is not an Ed25519 key', async () => {
    const keyPath = join(dir, 'identity.key');
    await writeFile(keyPath, 'not a key');
    await expect(loadOrCreateKey(keyPath)).rejects.toMatchObject({
      code: IdentityErrorCode.BAD_KEY_FILE,
    });
  });

  it('refuses a certificate of another key', async () => {
    const a = { key: join(dir, 'a.key'), cert: join(dir, 'a.crt') };
    const b = { key: join(dir, 'b.key'), cert: join(dir, 'b.crt') };
    await loadOrCreateIdentity(a, 'a', sources);
    await loadOrCreateIdentity(b, 'b', sources);
    await writeFile(a.cert, await readFile(b.cert));
    await expect(loadOrCreateIdentity(a, 'a', sources)).rejects.toMatchObject({
      code: IdentityErrorCode.BAD_CERT_FILE,
    });
  });
});
