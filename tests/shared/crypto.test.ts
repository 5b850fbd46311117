/**
 * Crypto of version 3 (docs/protocol.md §2, §5): AES-256-CBC / zero IV / PKCS#7 checked against
 * openssl and the real captures; RSA-1024 e = 17 key fields; OAEP-SHA-1 key wrapping.
 */
import { execFileSync } from 'node:child_process';
import {
  createCipheriv,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RequestCode, paddedLength } from '../../protocol';
import {
  CryptoError,
  CryptoErrorCode,
  aesDecrypt,
  aesEncrypt,
  createFileCipher,
  createFileDecipher,
  encodePublicKeyField,
  generateRsaKeyPair,
  generateRsaKeyPairSync,
  loadPrivateKey,
  parsePublicKeyField,
  publicKeyDerOf,
  unwrapAesKey,
  wrapAesKey,
} from '../../shared/crypto';
import { CAPTURE_NAMES, loadCapture } from '../protocol/captures';

const hex = (h: string): Buffer => Buffer.from(h, 'hex');
const ZERO_IV_HEX = '00'.repeat(16);

/** The CryptoError `fn` throws; fails the test if it throws nothing or something else. */
function cryptoErrorOf(fn: () => unknown): CryptoError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CryptoError) return err;
    throw err;
  }
  throw new Error('expected a CryptoError, nothing was thrown');
}

function openssl(args: string[], input: Buffer): Buffer {
  return execFileSync('openssl', args, { input, maxBuffer: 16 * 1024 * 1024 });
}

const rsaPair = (modulusLength: number): { publicDer: Buffer; privateKey: KeyObject } => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength,
    publicExponent: 17,
  });
  return { publicDer: publicKey.export({ type: 'spki', format: 'der' }), privateKey };
};

/** A key pair of ours, generated once for the file (RSA generation is the slow part). */
const ours = generateRsaKeyPairSync();

describe('AES-256-CBC, zero IV, PKCS#7 (§5)', () => {
  const key = randomBytes(32);

  it.each([0, 1, 15, 16, 17, 1020, 1024, 100_000])(
    'round-trips %i bytes; the ciphertext has the PKCS#7 length',
    (size) => {
      const plain = randomBytes(size);
      const cipher = aesEncrypt(key, plain);
      expect(cipher).toHaveLength(paddedLength(size));
      expect(aesDecrypt(key, cipher)).toEqual(plain);
    },
  );

  it.each([0, 1, 31, 1000, 4103])('equals openssl enc -aes-256-cbc for %i random bytes', (size) => {
    const plain = randomBytes(size);
    const args = ['enc', '-aes-256-cbc', '-K', key.toString('hex'), '-iv', ZERO_IV_HEX];
    const theirs = openssl(args, plain);
    expect(aesEncrypt(key, plain).toString('hex')).toBe(theirs.toString('hex'));
    expect(openssl([...args, '-d'], aesEncrypt(key, plain))).toEqual(plain);
  });

  it('streams: a cipher fed in pieces equals the one-shot helper', () => {
    const plain = randomBytes(5000);
    const cipher = createFileCipher(key);
    const parts = [0, 1, 17, 1024, 4000, 5000].slice(1).map((end, i, ends) => {
      const start = i === 0 ? 0 : ends[i - 1];
      return cipher.update(plain.subarray(start, end));
    });
    const streamed = Buffer.concat([...parts, cipher.final()]);
    expect(streamed).toEqual(aesEncrypt(key, plain));
    const decipher = createFileDecipher(key);
    expect(Buffer.concat([decipher.update(streamed), decipher.final()])).toEqual(plain);
  });

  it('rejects bad padding and a length that is not whole blocks: BAD_PADDING', () => {
    // Blocks that decrypt to a last byte of 0x00 / 0x11 are invalid PKCS#7 whatever the key.
    const raw = (lastByte: number): Buffer => {
      const c = createCipheriv('aes-256-cbc', key, Buffer.alloc(16)).setAutoPadding(false);
      const block = Buffer.alloc(16, 0x41);
      block[15] = lastByte;
      return Buffer.concat([c.update(block), c.final()]);
    };
    for (const bad of [raw(0x00), raw(0x11), aesEncrypt(key, randomBytes(20)).subarray(0, 17)]) {
      expect(cryptoErrorOf(() => aesDecrypt(key, bad)).code).toBe(CryptoErrorCode.BAD_PADDING);
    }
    expect(cryptoErrorOf(() => aesDecrypt(key, Buffer.alloc(0))).code).toBe(
      CryptoErrorCode.BAD_PADDING,
    );
  });

  it('refuses keys that are not 32 bytes: BAD_AES_KEY', () => {
    for (const bad of [Buffer.alloc(16), Buffer.alloc(31), Buffer.alloc(33)]) {
      expect(cryptoErrorOf(() => createFileCipher(bad)).code).toBe(CryptoErrorCode.BAD_AES_KEY);
      expect(cryptoErrorOf(() => createFileDecipher(bad)).code).toBe(CryptoErrorCode.BAD_AES_KEY);
      expect(cryptoErrorOf(() => aesEncrypt(bad, Buffer.alloc(1))).code).toBe(
        CryptoErrorCode.BAD_AES_KEY,
      );
    }
  });
});

describe.each(CAPTURE_NAMES)('the real capture %s', (name) => {
  const capture = loadCapture(name);
  const { connection } = capture;
  const privateKey = loadPrivateKey(capture.privateKeyDer);

  it('ciphertext decrypts to the input file, for every upload attempt', () => {
    const packets = connection.requests.filter((r) => r.code === RequestCode.SEND_FILE);
    // Packet 1 starts an attempt (client-a re-sends whole uploads after a 1607).
    const attempts: (typeof packets)[] = [];
    for (const p of packets) {
      if (p.packet === 1) attempts.push([]);
      attempts[attempts.length - 1].push(p);
    }
    expect(attempts.length).toBeGreaterThan(0);
    for (const attempt of attempts) {
      const joined = Buffer.concat(
        attempt.map((p) =>
          capture.c2s.subarray(p.chunk_offset ?? 0, (p.chunk_offset ?? 0) + (p.chunk_len ?? 0)),
        ),
      );
      const contentSize = attempt[0].content_size ?? 0;
      expect(contentSize).toBe(paddedLength(capture.input.length));
      const plain = aesDecrypt(hex(connection.aes_key), joined.subarray(0, contentSize));
      expect(plain.equals(capture.input)).toBe(true);
    }
  });

  it('priv.key (base64 over several lines) loads, and me.info holds the same key', () => {
    expect(capture.privateKeyDer.length).toBeGreaterThan(600);
    const fromMeInfo = Buffer.from(capture.meInfo.slice(2).join(''), 'base64');
    expect(fromMeInfo).toEqual(capture.privateKeyDer);
    expect(capture.meInfo[1]).toBe(connection.client_id);
    const publicDer = publicKeyDerOf(privateKey);
    expect(publicDer).toHaveLength(160);
    if (connection.public_key_der_hex) {
      expect(publicDer.toString('hex')).toBe(connection.public_key_der_hex);
    }
  });

  it("unwraps the server's 1602/1605 key to the manifest aes_key", () => {
    const answer = connection.peer_server_responses.find((r) => r.wrapped_key_len === 128);
    expect(answer).toBeDefined();
    const at = (answer?.offset ?? 0) + 7 + 16;
    const wrapped = capture.s2c.subarray(at, at + 128);
    expect(unwrapAesKey(privateKey, wrapped).toString('hex')).toBe(connection.aes_key);
  });

  const sent1026 = connection.requests.find((r) => r.code === RequestCode.SEND_PUBLIC_KEY);
  if (sent1026) {
    it('1026 public key field parses, and is the key of priv.key', () => {
      const at = sent1026.offset + 23 + 255;
      const field = capture.c2s.subarray(at, at + 160);
      const key = parsePublicKeyField(field);
      expect(key.asymmetricKeyDetails).toMatchObject({ modulusLength: 1024, publicExponent: 17n });
      expect(key.export({ type: 'spki', format: 'der' })).toEqual(publicKeyDerOf(privateKey));
      // What the server will do with it: wrap a key only this client can unwrap.
      const aesKey = randomBytes(32);
      expect(unwrapAesKey(privateKey, wrapAesKey(key, aesKey))).toEqual(aesKey);
    });
  }
});

describe('RSA-1024 with e = 17 (§2)', () => {
  it('generates a key whose SPKI DER is exactly the 160-byte field', () => {
    expect(ours.publicKeyDer).toHaveLength(160);
    const key = createPublicKey({ key: ours.publicKeyDer, format: 'der', type: 'spki' });
    expect(key.asymmetricKeyDetails).toMatchObject({ modulusLength: 1024, publicExponent: 17n });
    expect(key.export({ format: 'jwk' }).e).toBe('EQ');
    expect(encodePublicKeyField(ours.publicKeyDer)).toEqual(ours.publicKeyDer);
    const priv = createPrivateKey({ key: ours.privateKeyDer, format: 'der', type: 'pkcs8' });
    expect(publicKeyDerOf(priv)).toEqual(ours.publicKeyDer);
  });

  it('generates the same shape off the main thread', async () => {
    const pair = await generateRsaKeyPair();
    expect(pair.publicKeyDer).toHaveLength(160);
    expect(parsePublicKeyField(pair.publicKeyDer).asymmetricKeyDetails?.publicExponent).toBe(17n);
  });

  it('pads a shorter DER with zeros, and the parser accepts the zeros', () => {
    const padded = Buffer.concat([ours.publicKeyDer, Buffer.alloc(2)]);
    expect(parsePublicKeyField(padded).asymmetricKeyDetails?.modulusLength).toBe(1024);
  });

  it('cannot fit e = 65537 (162 bytes) into the field: BAD_PUBLIC_KEY', () => {
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const der = publicKey.export({ type: 'spki', format: 'der' });
    expect(der).toHaveLength(162);
    expect(cryptoErrorOf(() => encodePublicKeyField(der)).code).toBe(
      CryptoErrorCode.BAD_PUBLIC_KEY,
    );
  });
});

describe('parsePublicKeyField rejects what is not an RSA-1024 SPKI (§2): BAD_PUBLIC_KEY', () => {
  const rejects = (field: Buffer): void => {
    expect(cryptoErrorOf(() => parsePublicKeyField(field)).code).toBe(
      CryptoErrorCode.BAD_PUBLIC_KEY,
    );
  };
  const pad160 = (der: Buffer): Buffer =>
    Buffer.concat([der, Buffer.alloc(Math.max(0, 160 - der.length))]);

  it('non-DER bytes', () => {
    rejects(Buffer.alloc(160));
    rejects(Buffer.alloc(160, 0xff));
    rejects(Buffer.alloc(0));
    rejects(Buffer.from([0x30]));
    rejects(randomBytes(160).fill(0x02, 0, 1));
  });

  it('a DER sequence that claims more bytes than the field holds', () => {
    const field = Buffer.from(ours.publicKeyDer);
    field[2] = 0xff; // SEQUENCE length 255 in a 160-byte field
    rejects(field);
    rejects(Buffer.concat([Buffer.from([0x30, 0x83, 0, 0, 0x10]), Buffer.alloc(155)]));
  });

  it('a valid sequence that is not a key', () => {
    rejects(pad160(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x05])));
  });

  it('non-zero bytes after the DER', () => {
    rejects(Buffer.concat([ours.publicKeyDer, Buffer.from([0x00, 0x01])]));
    const small = rsaPair(512).publicDer;
    const field = pad160(small);
    field[159] = 0x01;
    rejects(field);
  });

  it('a 2048-bit key, whole or cut to the field', () => {
    const der = rsaPair(2048).publicDer;
    rejects(der);
    rejects(der.subarray(0, 160));
  });

  it('a 512-bit key', () => {
    rejects(pad160(rsaPair(512).publicDer));
  });

  it('an EC key', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    rejects(pad160(publicKey.export({ type: 'spki', format: 'der' })));
  });
});

describe('AES key wrapping, RSA-OAEP with SHA-1 (§2)', () => {
  const publicKey = parsePublicKeyField(ours.publicKeyDer);
  const privateKey = loadPrivateKey(ours.privateKeyDer);

  it('wraps to 128 bytes and unwraps to the same key; OAEP is randomised', () => {
    const aesKey = randomBytes(32);
    const wrapped = wrapAesKey(publicKey, aesKey);
    expect(wrapped).toHaveLength(128);
    expect(unwrapAesKey(privateKey, wrapped)).toEqual(aesKey);
    expect(wrapAesKey(publicKey, aesKey)).not.toEqual(wrapped);
  });

  it('is OAEP with SHA-1 and MGF1-SHA-1: openssl unwraps what we wrap', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sft-oaep-'));
    try {
      const keyFile = path.join(dir, 'key.pem');
      writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
      const aesKey = randomBytes(32);
      const unwrapped = openssl(
        [
          'pkeyutl',
          '-decrypt',
          '-inkey',
          keyFile,
          '-pkeyopt',
          'rsa_padding_mode:oaep',
          '-pkeyopt',
          'rsa_oaep_md:sha1',
          '-pkeyopt',
          'rsa_mgf1_md:sha1',
        ],
        wrapAesKey(publicKey, aesKey),
      );
      expect(unwrapped).toEqual(aesKey);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails with the wrong private key: UNWRAP_FAILED', () => {
    const wrapped = wrapAesKey(publicKey, randomBytes(32));
    const other = loadCapture('client-a-register-upload');
    const wrongKey = loadPrivateKey(other.privateKeyDer);
    expect(cryptoErrorOf(() => unwrapAesKey(wrongKey, wrapped)).code).toBe(
      CryptoErrorCode.UNWRAP_FAILED,
    );
    expect(cryptoErrorOf(() => unwrapAesKey(privateKey, Buffer.alloc(128))).code).toBe(
      CryptoErrorCode.UNWRAP_FAILED,
    );
  });

  it('refuses to wrap a key that is not 32 bytes: BAD_AES_KEY', () => {
    expect(cryptoErrorOf(() => wrapAesKey(publicKey, Buffer.alloc(16))).code).toBe(
      CryptoErrorCode.BAD_AES_KEY,
    );
  });
});

describe('loadPrivateKey', () => {
  it('refuses bytes that are not a PKCS#8 RSA key: BAD_PRIVATE_KEY', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const ec = privateKey.export({ type: 'pkcs8', format: 'der' });
    for (const bad of [Buffer.alloc(0), randomBytes(600), ec, ours.publicKeyDer]) {
      expect(cryptoErrorOf(() => loadPrivateKey(bad)).code).toBe(CryptoErrorCode.BAD_PRIVATE_KEY);
    }
  });
});
