/**
 * POSIX `cksum` (PROTOCOL.md §6): CRC-32, polynomial 0x04C11DB7, MSB first, initial 0, over the
 * data and then its length (least significant byte first, as few bytes as needed), complemented.
 *
 * The `crc-32` package computes the reflected zlib CRC and cannot produce these values, hence
 * this implementation. It is table-driven with slicing-by-16: sixteen 256-entry tables let the
 * loop consume 16 bytes per iteration with independent lookups.
 */

const POLY = 0x04c11db7;
const SLICES = 16;
const TABLE_SIZE = 256;
const BYTE = 8;

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

/** Built once: a constant lookup table, never mutated after construction. */
const TABLES: Int32Array = buildTables();

/** Advances `crc` over `buf` (no length, no complement). */
export function crcUpdate(crc: number, buf: Uint8Array): number {
  const t = TABLES;
  let c = crc | 0;
  let i = 0;
  const n = buf.length;
  const fast = n - (n % SLICES);
  while (i < fast) {
    const a = c ^ ((buf[i] << 24) | (buf[i + 1] << 16) | (buf[i + 2] << 8) | buf[i + 3]);
    c =
      t[15 * 256 + (a >>> 24)] ^
      t[14 * 256 + ((a >>> 16) & 0xff)] ^
      t[13 * 256 + ((a >>> 8) & 0xff)] ^
      t[12 * 256 + (a & 0xff)] ^
      t[11 * 256 + buf[i + 4]] ^
      t[10 * 256 + buf[i + 5]] ^
      t[9 * 256 + buf[i + 6]] ^
      t[8 * 256 + buf[i + 7]] ^
      t[7 * 256 + buf[i + 8]] ^
      t[6 * 256 + buf[i + 9]] ^
      t[5 * 256 + buf[i + 10]] ^
      t[4 * 256 + buf[i + 11]] ^
      t[3 * 256 + buf[i + 12]] ^
      t[2 * 256 + buf[i + 13]] ^
      t[256 + buf[i + 14]] ^
      t[buf[i + 15]];
    i += SLICES;
  }
  for (; i < n; i++) c = (c << 8) ^ t[((c >>> 24) ^ buf[i]) & 0xff];
  return c;
}

/** Streaming cksum: `update` any number of times, then `digest`. */
export class Cksum {
  private crc = 0;
  private length = 0;

  update(data: Uint8Array): this {
    this.crc = crcUpdate(this.crc, data);
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
