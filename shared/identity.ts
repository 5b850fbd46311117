/**
 * Identity keys of version 4 (docs/protocol-v4.md §2): an Ed25519 key and a self-signed X.509
 * certificate for it, made in process with @peculiar/x509 over Node's WebCrypto. Peers trust
 * the key by its fingerprint, never the certificate's names or dates, so the certificate only
 * carries the key into the TLS handshake.
 *
 * On disk: the private key as PKCS#8 PEM, 0600; the server also keeps its certificate (so
 * `openssl s_client` shows the same one every time), the client makes one per run.
 */
import type * as X509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, webcrypto, type KeyObject } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CodedError } from './coded-error';
import { writeFileAtomic } from './atomic-file';
import { isNotFound } from './errno';
import { fingerprintOfCertificate, fingerprintOfKey } from './fingerprint';

const ALGORITHM = { name: 'Ed25519' } as const;
const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
/** Certificates outlive any deployment: trust rests on the pinned key, not on dates. */
const CERT_LIFETIME_MS = 100 * 365 * 24 * 3600 * 1000;
/** Clock skew tolerated by peers that do look at notBefore. */
const BACKDATE_MS = 24 * 3600 * 1000;
const SERIAL_BYTES = 16;

type SelfSignedCrypto = Parameters<typeof X509.X509CertificateGenerator.createSelfSigned>[1];

export const IdentityErrorCode = {
  /** The key file exists but does not hold an Ed25519 PKCS#8 key. */
  BAD_KEY_FILE: 'BAD_KEY_FILE',
  /** The certificate file does not belong to the key beside it. */
  BAD_CERT_FILE: 'BAD_CERT_FILE',
} as const;
export type IdentityErrorCode = (typeof IdentityErrorCode)[keyof typeof IdentityErrorCode];

export class IdentityError extends CodedError<IdentityErrorCode> {
  override readonly name = 'IdentityError';
}

export interface Identity {
  /** PKCS#8 PEM, for `tls` options. */
  readonly keyPem: string;
  readonly certPem: string;
  readonly certDer: Buffer;
  readonly privateKey: KeyObject;
  readonly fingerprint: string;
}

export interface IdentitySources {
  /** Milliseconds since the epoch. */
  readonly now: () => number;
  readonly random: (size: number) => Buffer;
}

function toPem(label: string, der: Uint8Array): string {
  const body = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${body.replace(/\n$/, '')}\n-----END ${label}-----\n`;
}

async function importKeyPair(privateKey: KeyObject): Promise<webcrypto.CryptoKeyPair> {
  const subtle = webcrypto.subtle;
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' });
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  return {
    privateKey: await subtle.importKey('pkcs8', pkcs8, ALGORITHM, false, ['sign']),
    publicKey: await subtle.importKey('spki', spki, ALGORITHM, true, ['verify']),
  };
}

/** A self-signed certificate for `privateKey` (Ed25519), subject `CN=<commonName>`. */
export async function issueCertificate(
  privateKey: KeyObject,
  commonName: string,
  sources: IdentitySources,
): Promise<Identity> {
  // Loaded on first use: a process that only reads its certificate (every v3 client run, a
  // server restart) does not pay the library's memory and start-up time.
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  const keys = await importKeyPair(privateKey);
  const now = sources.now();
  const serial = sources.random(SERIAL_BYTES);
  serial[0] = (serial[0] ?? 0) & 0x7f; // a positive INTEGER (RFC 5280, section 4.1.2.2)
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial.toString('hex'),
      name: new x509.Name([{ CN: [commonName] }]).toString(),
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + CERT_LIFETIME_MS),
      signingAlgorithm: ALGORITHM,
      keys,
    },
    // Passed per call: setting x509.cryptoProvider would be process-wide state.
    webcrypto as unknown as SelfSignedCrypto,
  );
  const certDer = Buffer.from(cert.rawData);
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    certPem: toPem('CERTIFICATE', certDer),
    certDer,
    privateKey,
    fingerprint: fingerprintOfKey(privateKey),
  };
}

export async function generateIdentityKey(): Promise<KeyObject> {
  const pair = (await webcrypto.subtle.generateKey(ALGORITHM, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', pair.privateKey));
  return createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
}

function parseKey(pem: string, path: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new IdentityError(IdentityErrorCode.BAD_KEY_FILE, `${path}: not a private key`, {
      cause: err,
    });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new IdentityError(
      IdentityErrorCode.BAD_KEY_FILE,
      `${path}: an ${key.asymmetricKeyType ?? 'unknown'} key, expected Ed25519`,
    );
  }
  return key;
}

async function readIfPresent(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** The key in `keyPath`, or a new one written there (0600) if the file does not exist. */
export async function loadOrCreateKey(
  keyPath: string,
): Promise<{ key: KeyObject; created: boolean }> {
  const pem = await readIfPresent(keyPath);
  if (pem !== undefined) return { key: parseKey(pem, keyPath), created: false };
  const key = await generateIdentityKey();
  await mkdir(dirname(keyPath), { recursive: true, mode: DIR_MODE });
  await writeFileAtomic(keyPath, key.export({ type: 'pkcs8', format: 'pem' }), { mode: FILE_MODE });
  return { key, created: true };
}

/** Reads the key and, if given, the certificate; makes and saves whatever is missing. */
export async function loadOrCreateIdentity(
  paths: { readonly key: string; readonly cert?: string },
  commonName: string,
  sources: IdentitySources,
): Promise<Identity & { readonly created: boolean }> {
  const { key, created } = await loadOrCreateKey(paths.key);
  const certPem = paths.cert === undefined ? undefined : await readIfPresent(paths.cert);
  if (certPem !== undefined && !created) {
    const certDer = pemBody(certPem);
    let fingerprint: string;
    try {
      fingerprint = fingerprintOfCertificate(certDer);
    } catch (err) {
      throw new IdentityError(IdentityErrorCode.BAD_CERT_FILE, `${paths.cert}: not a certificate`, {
        cause: err,
      });
    }
    if (fingerprint !== fingerprintOfKey(key)) {
      throw new IdentityError(
        IdentityErrorCode.BAD_CERT_FILE,
        `${paths.cert} does not belong to the key in ${paths.key}`,
      );
    }
    return {
      keyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
      certPem,
      certDer,
      privateKey: key,
      fingerprint,
      created,
    };
  }
  const identity = await issueCertificate(key, commonName, sources);
  if (paths.cert !== undefined) {
    await writeFileAtomic(paths.cert, identity.certPem, { mode: FILE_MODE });
  }
  return { ...identity, created };
}

function pemBody(pem: string): Buffer {
  const match = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(pem);
  return Buffer.from(match?.[1]?.replace(/\s+/g, '') ?? '', 'base64');
}
