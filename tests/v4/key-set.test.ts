/** Checking a signed key set (docs/protocol-v4.md §2.5, §4.14): signature, dates, ids. */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import {
  decodeResponse,
  encodeResponse,
  KeyStatus,
  keySetStatement,
  ResponseCode,
  type KeyEntry,
  type KeySet,
} from '../../protocol/v4';
import { fingerprintOfKey } from '../../shared/fingerprint';
import { checkKeySet } from '../../client/v4/key-rotation';

const NOW = 1_800_000_000_000;

function entry(key: KeyObject, status: KeyEntry['status'], notAfter = 0): KeyEntry {
  return {
    keyId: fingerprintOfKey(key),
    algorithm: 'Ed25519',
    notBefore: NOW - 1000,
    notAfter,
    status,
    publicKey: key.export({ type: 'spki', format: 'der' }),
  };
}

function signed(keys: KeyEntry[], signer: KeyObject): KeySet {
  const signature = sign(null, keySetStatement(keys, NOW), signer);
  return { code: ResponseCode.KEY_SET, keys, issuedAt: NOW, signature };
}

describe('signed key set', () => {
  const a = generateKeyPairSync('ed25519');
  const b = generateKeyPairSync('ed25519');
  const c = generateKeyPairSync('ed25519');
  const presented = fingerprintOfKey(a.publicKey);

  it('round-trips on the wire and names next and retired keys', () => {
    const set = signed(
      [
        entry(a.publicKey, KeyStatus.CURRENT, NOW + 5000),
        entry(b.publicKey, KeyStatus.NEXT),
        entry(c.publicKey, KeyStatus.RETIRED, NOW - 10),
      ],
      a.privateKey,
    );
    const frame = encodeResponse(set);
    const decoded = decodeResponse(frame.readUInt16LE(0), frame.subarray(6)) as KeySet;
    expect(decoded).toEqual(set);
    expect(checkKeySet(decoded, presented, NOW, 'srv')).toEqual({
      next: [fingerprintOfKey(b.publicKey)],
      retired: [fingerprintOfKey(c.publicKey)],
    });
  });

  it('refuses a bad signature, a signature by another key, and a set whose current key is not the presented one', () => {
    const good = signed(
      [entry(a.publicKey, KeyStatus.CURRENT), entry(b.publicKey, KeyStatus.NEXT)],
      a.privateKey,
    );
    const flipped = Buffer.from(good.signature);
    flipped[5] = (flipped[5] ?? 0) ^ 1;
    const invalid = expect.objectContaining({ code: 'KEY_SET_INVALID' }) as Error;
    expect(() => checkKeySet({ ...good, signature: flipped }, presented, NOW, 'srv')).toThrow(
      invalid,
    );
    const byNext = signed(good.keys as KeyEntry[], b.privateKey);
    expect(() => checkKeySet(byNext, presented, NOW, 'srv')).toThrow(invalid);
    // A next key slipped in after signing breaks the signature too.
    const tampered = { ...good, keys: [...good.keys, entry(c.publicKey, KeyStatus.NEXT)] };
    expect(() => checkKeySet(tampered, presented, NOW, 'srv')).toThrow(invalid);
    const other = signed([entry(b.publicKey, KeyStatus.CURRENT)], b.privateKey);
    expect(() => checkKeySet(other, presented, NOW, 'srv')).toThrow(invalid);
  });

  it('refuses a set whose presented key expired, and never pins an expired next key', () => {
    const invalid = expect.objectContaining({ code: 'KEY_SET_INVALID' }) as Error;
    const expired = signed([entry(a.publicKey, KeyStatus.CURRENT, NOW - 1)], a.privateKey);
    expect(() => checkKeySet(expired, presented, NOW, 'srv')).toThrow(invalid);
    const staleNext = signed(
      [entry(a.publicKey, KeyStatus.CURRENT), entry(b.publicKey, KeyStatus.NEXT, NOW - 1)],
      a.privateKey,
    );
    expect(checkKeySet(staleNext, presented, NOW, 'srv').next).toEqual([]);
  });

  it('refuses a key id that is not the fingerprint of its key', () => {
    const lying = { ...entry(b.publicKey, KeyStatus.NEXT), keyId: fingerprintOfKey(c.publicKey) };
    const set = signed([entry(a.publicKey, KeyStatus.CURRENT), lying], a.privateKey);
    expect(() => checkKeySet(set, presented, NOW, 'srv')).toThrow(
      expect.objectContaining({ code: 'KEY_SET_INVALID' }) as Error,
    );
  });
});
