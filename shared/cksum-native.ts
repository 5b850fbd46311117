/**
 * cksum (docs/protocol.md §6) through zlib's native crc32, which uses carry-less multiply: it
 * computes the reflected CRC (the bits of each byte taken least significant first) with the
 * same polynomial. Reflecting every input byte (bit-reverse.ts) and the register on the way in
 * and out turns it into cksum's, so the data is copied into a small scratch area, reversed there
 * and handed to zlib, which costs less CPU per byte than the tables of cksum.ts
 * (`npm run bench` prints both speeds).
 *
 * Loading it costs a few MB of memory (zlib and the WebAssembly engine), so it is for the
 * client, where the cksum of a large file is on the way to its answer; the server, whose memory
 * per connection is budgeted, keeps the tables.
 */
import { crc32 as zlibCrc32 } from 'node:zlib';
import { createBitReverser, REVERSED_BYTE, SCRATCH_BYTES, type BitReverser } from './bit-reverse';
import { crcUpdate } from './cksum';

/**
 * The scratch area of the native path: one per process, made at load like the tables. It is
 * only used synchronously within one call, which copies its own input in first, so no state
 * passes from one call to the next. Undefined where WebAssembly SIMD is missing.
 */
const REVERSER: BitReverser | undefined =
  typeof zlibCrc32 === 'function' ? createBitReverser() : undefined;
/** Below this, the copy and two calls into native code cost more than the tables save. */
const NATIVE_MIN_BYTES = 4096;

/** The 32 bits of `x` in reverse order. */
function reverse32(x: number): number {
  return (
    ((REVERSED_BYTE[x & 0xff] << 24) |
      (REVERSED_BYTE[(x >>> 8) & 0xff] << 16) |
      (REVERSED_BYTE[(x >>> 16) & 0xff] << 8) |
      REVERSED_BYTE[x >>> 24]) >>>
    0
  );
}

/**
 * `crcUpdate` through zlib: the MSB-first register c is the reflected register reverse32(c),
 * and zlib's crc32 takes and returns the complement of the reflected register.
 */
function viaZlib(crc: number, buf: Uint8Array, reverser: BitReverser): number {
  let z = ~reverse32(crc >>> 0) >>> 0;
  for (let at = 0; at < buf.length; at += SCRATCH_BYTES) {
    const n = Math.min(SCRATCH_BYTES, buf.length - at);
    reverser.scratch.set(buf.subarray(at, at + n));
    reverser.reverse(n);
    z = zlibCrc32(reverser.scratch.subarray(0, n), z);
  }
  return reverse32(~z >>> 0) | 0;
}

/** `crcUpdate` (cksum.ts), through zlib for inputs of NATIVE_MIN_BYTES and more. */
export function crcUpdateNative(crc: number, buf: Uint8Array): number {
  if (REVERSER !== undefined && buf.length >= NATIVE_MIN_BYTES) return viaZlib(crc, buf, REVERSER);
  return crcUpdate(crc, buf);
}

/** True where the zlib path is used (WebAssembly SIMD and zlib.crc32 are there). */
export const NATIVE_CKSUM = REVERSER !== undefined;
