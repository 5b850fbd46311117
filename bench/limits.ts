/** Reference speeds measured in the same run: openssl, and this project's cksum and AES. */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Cksum, type CrcUpdate } from '../shared/cksum';
import { createFileCipher, createFileDecipher } from '../shared/crypto';

const MB = 1e6;
const REPEATS = 3;
/** Block size the programs themselves use for file reads. */
const BLOCK = 1 << 20;

function bestSeconds(run: () => void): number {
  let best = Infinity;
  for (let i = 0; i < REPEATS; i++) {
    const start = process.hrtime.bigint();
    run();
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e9);
  }
  return best;
}

/** Seconds `openssl enc -aes-256-cbc` takes over `file` (best of three), or undefined. */
export function opensslSeconds(file: string): number | undefined {
  const key = randomBytes(32).toString('hex');
  const iv = '0'.repeat(32);
  try {
    return bestSeconds(() =>
      execFileSync('openssl', [
        'enc',
        '-aes-256-cbc',
        '-K',
        key,
        '-iv',
        iv,
        '-in',
        file,
        '-out',
        '/dev/null',
      ]),
    );
  } catch {
    return undefined;
  }
}

function inBlocks(data: Buffer, each: (block: Buffer) => void): void {
  for (let at = 0; at < data.length; at += BLOCK) each(data.subarray(at, at + BLOCK));
}

/** MB/s of this project's cksum over `data` with `advance` (the tables by default). */
export function cksumMBps(data: Buffer, advance?: CrcUpdate): number {
  return (
    data.length /
    MB /
    bestSeconds(() => {
      const c = new Cksum(advance);
      inBlocks(data, (b) => c.update(b));
      c.digest();
    })
  );
}

export function aesMBps(data: Buffer): { encrypt: number; decrypt: number } {
  const key = randomBytes(32);
  const cipher = createFileCipher(key);
  const parts: Buffer[] = [];
  inBlocks(data, (b) => parts.push(cipher.update(b)));
  parts.push(cipher.final());
  const ciphertext = Buffer.concat(parts);
  const encrypt =
    data.length /
    MB /
    bestSeconds(() => {
      const c = createFileCipher(key);
      inBlocks(data, (b) => c.update(b));
      c.final();
    });
  const decrypt =
    ciphertext.length /
    MB /
    bestSeconds(() => {
      const d = createFileDecipher(key);
      inBlocks(ciphertext, (b) => d.update(b));
      d.final();
    });
  return { encrypt, decrypt };
}
