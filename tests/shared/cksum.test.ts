/**
 * POSIX cksum (docs/protocol.md §6): the spec vectors, the real `cksum` command, streaming in pieces,
 * and lengths that need more than four bytes, against a plain bitwise reference.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { REVERSED_BYTE, SCRATCH_BYTES, createBitReverser } from '../../shared/bit-reverse';
import { Cksum, cksum, crcUpdate } from '../../shared/cksum';
import { NATIVE_CKSUM, crcUpdateNative } from '../../shared/cksum-native';
import { CAPTURE_NAMES, loadCapture } from '../protocol/captures';
import { seededRandom } from '../protocol/support';

const POLY = 0x04c11db7;

/** The textbook definition, one bit at a time; `length` may exceed 2^32. */
function referenceCksum(data: Uint8Array, length: bigint = BigInt(data.length), crc = 0): number {
  const step = (c: number, byte: number): number => {
    let x = (c ^ (byte << 24)) >>> 0;
    for (let bit = 0; bit < 8; bit++) x = (x & 0x80000000 ? (x << 1) ^ POLY : x << 1) >>> 0;
    return x;
  };
  let c = crc >>> 0;
  for (const byte of data) c = step(c, byte);
  for (let n = length; n > 0n; n >>= 8n) c = step(c, Number(n & 0xffn));
  return ~c >>> 0;
}

function pseudoRandomBytes(size: number, seed: number): Buffer {
  const rand = seededRandom(seed);
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = Math.floor(rand() * 256);
  return out;
}

describe('cksum vectors (§6)', () => {
  it.each([
    ['empty', Buffer.alloc(0), 4294967295],
    ['"123456789"', Buffer.from('123456789'), 930766865],
    ['"a"', Buffer.from('a'), 1220704766],
    ['1024 zero bytes', Buffer.alloc(1024), 3975907619],
  ])('%s', (_what, data, expected) => {
    expect(cksum(data)).toBe(expected);
    expect(new Cksum().update(data).digest()).toBe(expected);
    expect(referenceCksum(data)).toBe(expected);
  });

  it.each(CAPTURE_NAMES)('matches the manifest cksum of the %s input file', (name) => {
    const capture = loadCapture(name);
    expect(cksum(capture.input)).toBe(capture.manifest.input_file.cksum);
  });
});

describe('against the cksum command', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'sft-cksum-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([0, 1, 15, 16, 17, 255, 256, 1023, 1024, 1025, 65536, 1_000_003])(
    'agrees on a random file of %i bytes',
    (size) => {
      const data = pseudoRandomBytes(size, size + 1);
      const file = path.join(dir, `random-${size}.bin`);
      writeFileSync(file, data);
      const [crc, length] = execFileSync('cksum', [file], { encoding: 'utf8' }).trim().split(/\s+/);
      expect(Number(length)).toBe(size);
      expect(cksum(data)).toBe(Number(crc));
      expect(new Cksum(crcUpdateNative).update(data).digest()).toBe(Number(crc));
    },
  );

  it('agrees on a file of 70000 zero bytes (a three-byte length)', () => {
    const file = path.join(dir, 'zeros.bin');
    writeFileSync(file, Buffer.alloc(70000));
    const [crc] = execFileSync('cksum', [file], { encoding: 'utf8' }).split(' ');
    expect(cksum(Buffer.alloc(70000))).toBe(Number(crc));
  });
});

describe('streaming', () => {
  it('update in arbitrary pieces equals one shot and the bitwise reference', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 3000 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (data, rawCuts) => {
          const cuts = rawCuts.map((c) => c % (data.length + 1)).sort((a, b) => a - b);
          const sum = new Cksum();
          let from = 0;
          for (const cut of [...cuts, data.length]) {
            sum.update(data.subarray(from, cut));
            from = cut;
          }
          expect(sum.bytes).toBe(data.length);
          expect(sum.digest()).toBe(cksum(data));
          expect(sum.digest()).toBe(referenceCksum(data));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('reads views at any byte offset (the 16-byte slicing loop and its tail)', () => {
    const base = pseudoRandomBytes(200, 7);
    for (let offset = 0; offset < 17; offset++) {
      for (const length of [0, 1, 15, 16, 17, 31, 32, 33, 100]) {
        const view = base.subarray(offset, offset + length);
        expect(cksum(view)).toBe(referenceCksum(view));
      }
    }
  });

  it('digest leaves the state alone, so more data may follow', () => {
    const sum = new Cksum().update(Buffer.from('1234'));
    expect(sum.digest()).toBe(cksum(Buffer.from('1234')));
    sum.update(Buffer.from('56789'));
    expect(sum.digest()).toBe(930766865);
  });

  it('crcUpdate chains: the raw CRC of a whole equals that of its parts', () => {
    const data = pseudoRandomBytes(1000, 3);
    expect(crcUpdate(crcUpdate(0, data.subarray(0, 333)), data.subarray(333))).toBe(
      crcUpdate(0, data),
    );
  });
});

describe('the native path (zlib crc32 over bit-reversed bytes)', () => {
  it('is available here: WebAssembly SIMD and zlib.crc32 (Node 20.15+)', () => {
    // The tables would still give right answers without it, only slower: say so here.
    expect(createBitReverser()).toBeDefined();
    expect(NATIVE_CKSUM).toBe(true);
  });

  it('reverses the bits of every byte, whole 16-byte steps and the tail', () => {
    const reverser = createBitReverser();
    if (reverser === undefined) throw new Error('no WebAssembly SIMD');
    const data = Buffer.from(Array.from({ length: 256 + 7 }, (_, i) => i & 0xff));
    data.copy(reverser.scratch);
    reverser.reverse(data.length);
    for (let i = 0; i < data.length; i++) {
      let expected = 0;
      for (let bit = 0; bit < 8; bit++) if (data[i] & (1 << bit)) expected |= 0x80 >> bit;
      expect(reverser.scratch[i]).toBe(expected);
      expect(REVERSED_BYTE[data[i]]).toBe(expected);
    }
  });

  it.each([
    4095,
    4096,
    4097,
    SCRATCH_BYTES - 1,
    SCRATCH_BYTES,
    SCRATCH_BYTES + 1,
    3 * SCRATCH_BYTES + 17,
  ])('agrees with the tables on %i bytes, at any offset and from any state', (size) => {
    const base = pseudoRandomBytes(size + 3, size);
    for (const offset of [0, 1, 3]) {
      const view = base.subarray(offset, offset + size);
      for (const state of [0, 0x04c11db7, -1, 0x80000001]) {
        expect(crcUpdateNative(state, view)).toBe(crcUpdate(state, view));
      }
    }
  });

  it('streams: pieces above and below the threshold give the whole-buffer cksum', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 3 * SCRATCH_BYTES }), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 0, max: 1000 }),
        (sizes, seed) => {
          const pieces = sizes.map((size, i) => pseudoRandomBytes(size, seed + i));
          const sum = new Cksum(crcUpdateNative);
          for (const piece of pieces) sum.update(piece);
          const whole = Buffer.concat(pieces);
          expect(sum.digest()).toBe(
            ~crcUpdate(0, Buffer.concat([whole, lengthBytes(whole.length)])) >>> 0,
          );
          expect(sum.digest()).toBe(cksum(whole));
        },
      ),
      { numRuns: 25 },
    );
  });

  it('leaves the input unchanged (only the scratch copy is reversed)', () => {
    const data = pseudoRandomBytes(100_000, 11);
    const copy = Buffer.from(data);
    new Cksum(crcUpdateNative).update(data).digest();
    expect(data.equals(copy)).toBe(true);
  });
});

/** The length as cksum appends it: least significant byte first, as few bytes as needed. */
function lengthBytes(length: number): Buffer {
  const out: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) out.push(n % 256);
  return Buffer.from(out);
}

describe('lengths that need more than four bytes', () => {
  /**
   * Feeding 4 GiB through the test would take seconds, but CRC over zero bytes from state 0
   * stays 0, so the state after N zero bytes is exactly { crc: 0, length: N }. Setting that state
   * directly tests digest's length loop for any N.
   */
  const afterZeros = (n: number): Cksum => {
    const sum = new Cksum();
    Object.assign(sum as unknown as { length: number }, { length: n });
    return sum;
  };

  it('the shortcut is faithful: crafted state equals really feeding the zeros', () => {
    for (const n of [1, 255, 256, 70000]) {
      expect(afterZeros(n).bytes).toBe(n);
      expect(afterZeros(n).digest()).toBe(cksum(Buffer.alloc(n)));
    }
  });

  it.each([2 ** 32 - 1, 2 ** 32, 2 ** 32 + 5, 2 ** 40 + 3, 2 ** 48 + 0x123456, 2 ** 53 - 1])(
    'appends all the length bytes of %i',
    (n) => {
      expect(afterZeros(n).digest()).toBe(referenceCksum(new Uint8Array(0), BigInt(n)));
    },
  );

  it('distinguishes lengths that agree in their low 32 bits', () => {
    expect(afterZeros(2 ** 32 + 5).digest()).not.toBe(afterZeros(5).digest());
  });
});
