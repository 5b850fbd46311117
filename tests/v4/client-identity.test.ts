import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  IDENTITY_CERT_FILE,
  IDENTITY_KEY_FILE,
  loadClientIdentity,
} from '../../client/v4/client-identity';
import { fingerprintOfCertificate } from '../../shared/fingerprint';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sft-client-identity-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('client v4 identity', () => {
  it('keeps the certificate it issued and presents the same one on the next run', async () => {
    const first = await loadClientIdentity(dir);
    const certPem = await readFile(join(dir, IDENTITY_CERT_FILE), 'utf8');
    expect(certPem).toBe(first.certPem);
    expect((await stat(join(dir, IDENTITY_CERT_FILE))).mode & 0o777).toBe(0o600);
    const second = await loadClientIdentity(dir);
    expect(second.certPem).toBe(first.certPem);
    expect(second.fingerprint).toBe(first.fingerprint);
    expect(fingerprintOfCertificate(second.certDer)).toBe(first.fingerprint);
  });

  it('issues a new certificate when the kept one is not of its key', async () => {
    const other = await mkdtemp(join(tmpdir(), 'sft-client-identity-other-'));
    try {
      const stranger = await loadClientIdentity(other);
      const own = await loadClientIdentity(dir);
      await writeFile(join(dir, IDENTITY_CERT_FILE), stranger.certPem);
      const again = await loadClientIdentity(dir);
      expect(again.fingerprint).toBe(own.fingerprint);
      expect(fingerprintOfCertificate(again.certDer)).toBe(own.fingerprint);
      expect(await readFile(join(dir, IDENTITY_CERT_FILE), 'utf8')).toBe(again.certPem);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it('issues a new certificate when the kept one is damaged, keeping the key', async () => {
    const own = await loadClientIdentity(dir);
    const keyPem = await readFile(join(dir, IDENTITY_KEY_FILE), 'utf8');
    await writeFile(join(dir, IDENTITY_CERT_FILE), 'not a certificate');
    const again = await loadClientIdentity(dir);
    expect(again.fingerprint).toBe(own.fingerprint);
    expect(await readFile(join(dir, IDENTITY_KEY_FILE), 'utf8')).toBe(keyPem);
  });
});
