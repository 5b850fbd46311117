/**
 * Fingerprints name identities in version 4 (docs/protocol-v4.md §2): `SHA256:` followed by the
 * unpadded base64 of the SHA-256 of the DER SubjectPublicKeyInfo, as OpenSSH prints host keys.
 * They depend on the key only, so a certificate re-issued for the same key keeps its name.
 */
import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';

export const FINGERPRINT_PREFIX = 'SHA256:' as const;
/** 32 bytes are 43 base64 characters without padding. */
const FINGERPRINT_FORM = /^SHA256:[A-Za-z0-9+/]{43}$/;

export function fingerprintOfSpki(spkiDer: Uint8Array): string {
  const digest = createHash('sha256').update(spkiDer).digest('base64');
  return FINGERPRINT_PREFIX + digest.replace(/=+$/, '');
}

export function fingerprintOfKey(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return fingerprintOfSpki(publicKey.export({ type: 'spki', format: 'der' }));
}

/** The fingerprint of a DER certificate's public key; throws if the DER is not a certificate. */
export function fingerprintOfCertificate(certDer: Uint8Array): string {
  return fingerprintOfKey(new X509Certificate(certDer).publicKey);
}

/** The fingerprint written as `SHA256:` + 43 base64 characters, or undefined if malformed. */
export function parseFingerprint(text: string): string | undefined {
  const trimmed = text.trim();
  return FINGERPRINT_FORM.test(trimmed) ? trimmed : undefined;
}
