/**
 * POSIX `cksum` (docs/protocol.md §6): CRC-32, polynomial 0x04C11DB7, MSB first, initial 0, over the
 * data and then its length (least significant byte first, as few bytes as needed), complemented.
 *
 * The `crc-32` package computes the reflected zlib CRC and cannot produce these values, hence
 * this implementation. It is table-driven with slicing-by-16: sixteen 256-entry tables let the
 * loop consume 16 bytes per iteration with independent lookups. The loop reads the data as
 * 32-bit little-endian words and keeps the register byte-swapped to match (as zlib does for
 * its big-endian CRC), with tables stored byte-swapped too: four word loads instead of sixteen
 * byte loads (both ends checksum every byte, so this loop is hot). cksum-native.ts computes the
 * same values through zlib, faster but at a memory cost the client takes and the server does not.
 */

const POLY = 0x04c11db7;
const SLICES = 16;
const TABLE_SIZE = 256;
const BYTE = 8;
const WORD_BYTES = 4;
const WORDS_PER_STEP = SLICES / WORD_BYTES;

function buildTables(): Int32Array {
  const t = new Int32Array(SLICES * TABLE_SIZE);
  for (let i = 0; i < TABLE_SIZE; i++) {
    let c = i << 24;
    for (let k = 0; k < BYTE; k++) c = c & 0x80000000 ? (c << 1) ^ POLY : c << 1;
    t[i] = c;
  }
  // Table s advances a byte through s further zero bytes: T[s][i] = T[0] applied to T[s-1][i].
  for (let s = 1; s < SLICES; s++) {
    for (let i = 0; i < TABLE_SIZE; i++) {
      const prev = t[(s - 1) * TABLE_SIZE + i];
      t[s * TABLE_SIZE + i] = (prev << 8) ^ t[(prev >>> 24) & 0xff];
    }
  }
  return t;
}

/** Reverses the byte order of a 32-bit value. */
function bswap(x: number): number {
  return (x >>> 24) | ((x >>> 8) & 0xff00) | ((x << 8) & 0xff0000) | (x << 24);
}

/** Built once: constant lookup tables, never mutated after construction. */
const TABLES: Int32Array = buildTables();
const SWAPPED_TABLES: Int32Array = TABLES.map(bswap);
/** Word loads follow the platform's byte order; the word loop assumes little-endian. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Advances `crc` byte by byte over `buf[from..to)`. */
function crcBytes(crc: number, buf: Uint8Array, from: number, to: number): number {
  const t = TABLES;
  let c = crc;
  for (let i = from; i < to; i++) c = (c << 8) ^ t[((c >>> 24) ^ buf[i]) & 0xff];
  return c;
}

/** Advances `crc` over `buf` (no length, no complement). */
export function crcUpdate(crc: number, buf: Uint8Array): number {
  const n = buf.length;
  // Words must be aligned: the bytes before the first word boundary go one by one.
  const head = Math.min(n, (WORD_BYTES - (buf.byteOffset % WORD_BYTES)) % WORD_BYTES);
  let c = crcBytes(crc | 0, buf, 0, head);
  const steps = LITTLE_ENDIAN ? Math.floor((n - head) / SLICES) : 0;
  if (steps > 0) {
    const words = new Int32Array(buf.buffer, buf.byteOffset + head, steps * WORDS_PER_STEP);
    const t = SWAPPED_TABLES;
    let x = bswap(c);
    for (let w = 0; w < words.length; w += WORDS_PER_STEP) {
      const a = x ^ words[w];
      const b = words[w + 1];
      const d = words[w + 2];
      const e = words[w + 3];
      x =
        t[15 * 256 + (a & 0xff)] ^
        t[14 * 256 + ((a >>> 8) & 0xff)] ^
        t[13 * 256 + ((a >>> 16) & 0xff)] ^
        t[12 * 256 + (a >>> 24)] ^
        t[11 * 256 + (b & 0xff)] ^
        t[10 * 256 + ((b >>> 8) & 0xff)] ^
        t[9 * 256 + ((b >>> 16) & 0xff)] ^
        t[8 * 256 + (b >>> 24)] ^
        t[7 * 256 + (d & 0xff)] ^
        t[6 * 256 + ((d >>> 8) & 0xff)] ^
        t[5 * 256 + ((d >>> 16) & 0xff)] ^
        t[4 * 256 + (d >>> 24)] ^
        t[3 * 256 + (e & 0xff)] ^
        t[2 * 256 + ((e >>> 8) & 0xff)] ^
        t[256 + ((e >>> 16) & 0xff)] ^
        t[e >>> 24];
    }
    c = bswap(x);
  }
  return crcBytes(c, buf, head + steps * SLICES, n);
}

/** A function that advances a cksum register, as `crcUpdate` does. */
export type CrcUpdate = (crc: number, buf: Uint8Array) => number;

/**
 * Streaming cksum: `update` any number of times, then `digest`. `advance` computes the CRC:
 * the tables by default, or `crcUpdateNative` (cksum-native.ts).
 */
export class Cksum {
  private crc = 0;
  private length = 0;

  constructor(private readonly advance: CrcUpdate = crcUpdate) {}

  update(data: Uint8Array): this {
    this.crc = this.advance(this.crc, data);
    this.length += data.length;
    return this;
  }

  /** Bytes fed so far. */
  get bytes(): number {
    return this.length;
  }

  /** The value `cksum` prints; does not change the state, so more data may follow. */
  digest(): number {
    const t = TABLES;
    let c = this.crc;
    // The length is appended LSB first in as few bytes as needed (none for 0). Division, not
    // shifts, because lengths may pass 2^32.
    for (let len = this.length; len > 0; len = Math.floor(len / 256)) {
      c = (c << 8) ^ t[((c >>> 24) ^ (len % 256)) & 0xff];
    }
    return ~c >>> 0;
  }
}

/** cksum of one buffer. */
export function cksum(data: Uint8Array): number {
  return new Cksum().update(data).digest();
}
