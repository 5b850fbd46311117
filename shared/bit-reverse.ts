/**
 * Reverses the bit order inside every byte, 16 bytes per step, with WebAssembly SIMD: the
 * low and the high nibble of each byte are looked up (i8x16.swizzle) in two 16-entry tables
 * of reversed nibbles and swapped. cksum.ts uses it to run the MSB-first cksum CRC on zlib's
 * native (reflected, CLMUL-accelerated) crc32: reflecting every input byte turns one into the
 * other (docs/protocol.md §6).
 *
 * The module is 161 bytes, written out below instruction by instruction. It exports `mem` (a
 * scratch memory) and `rev(ptr, len)`, which reverses `len` bytes at `ptr` in place (len a
 * multiple of 16).
 */

/** Bytes of scratch memory: one WebAssembly page. */
export const SCRATCH_BYTES = 64 * 1024;
const STEP = 16;

/** rev4(i) for a nibble i: its four bits in reverse order. */
function rev4(i: number): number {
  return ((i & 1) << 3) | ((i & 2) << 1) | ((i & 4) >> 1) | ((i & 8) >> 3);
}

/** Byte i with its bits reversed. */
export const REVERSED_BYTE: Uint8Array = Uint8Array.from(
  { length: 256 },
  (_, i) => (rev4(i & 0x0f) << 4) | rev4(i >> 4),
);

/** rev4 of each low nibble, moved to the high nibble; and rev4 of each high nibble, low. */
const LOW_TO_HIGH = Array.from({ length: 16 }, (_, i) => rev4(i) << 4);
const HIGH_TO_LOW = Array.from({ length: 16 }, (_, i) => rev4(i));

/** SIMD instructions: prefix 0xfd, then the opcode (LEB128; all of these fit one byte). */
const V128_LOAD = [0xfd, 0x00];
const V128_STORE = [0xfd, 0x0b];
const V128_CONST = [0xfd, 0x0c];
const I8X16_SWIZZLE = [0xfd, 0x0e];
const V128_AND = [0xfd, 0x4e];
const V128_OR = [0xfd, 0x50];
const I8X16_SHR_U = [0xfd, 0x6d];
/** memarg: alignment hint 2^0, offset 0. */
const MEMARG = [0x00, 0x00];

// Locals: 0 = ptr (param), 1 = len (param, then the end address), 2 = v (v128).
const BODY = [
  0x01,
  0x01,
  0x7b, //                          one local group: 1 × v128
  0x20,
  0x00,
  0x20,
  0x01,
  0x6a,
  0x21,
  0x01, //  end = ptr + len
  0x02,
  0x40, //                                block
  0x03,
  0x40, //                                  loop
  0x20,
  0x00,
  0x20,
  0x01,
  0x4f,
  0x0d,
  0x01, //      br_if (ptr >= end) out of the block
  0x20,
  0x00, //                                    ptr (the store's address)
  0x20,
  0x00,
  ...V128_LOAD,
  ...MEMARG,
  0x21,
  0x02, // v = load ptr
  ...V128_CONST,
  ...LOW_TO_HIGH, //                 LOW_TO_HIGH[
  0x20,
  0x02,
  ...V128_CONST,
  ...Array<number>(STEP).fill(0x0f),
  ...V128_AND, // v & 0x0f
  ...I8X16_SWIZZLE, //                              ]
  ...V128_CONST,
  ...HIGH_TO_LOW, //                 HIGH_TO_LOW[
  0x20,
  0x02,
  0x41,
  0x04,
  ...I8X16_SHR_U, //          v >> 4 (per byte)
  ...I8X16_SWIZZLE, //                              ]
  ...V128_OR, //                                    one | the other
  ...V128_STORE,
  ...MEMARG, //                      store at ptr
  0x20,
  0x00,
  0x41,
  STEP,
  0x6a,
  0x21,
  0x00, //      ptr += 16
  0x0c,
  0x00, //                                    continue the loop
  0x0b, //                                        end loop
  0x0b, //                                      end block
  0x0b, //                                    end function
];

function section(id: number, content: readonly number[]): number[] {
  // Every section here is shorter than 128 bytes: its size is one LEB128 byte.
  return [id, content.length, ...content];
}

const ascii = (text: string): number[] => [...Buffer.from(text, 'ascii')];

const MODULE_BYTES = Uint8Array.from([
  ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // "\0asm", version 1
  ...section(1, [0x01, 0x60, 0x02, 0x7f, 0x7f, 0x00]), // type 0: (i32, i32) -> ()
  ...section(3, [0x01, 0x00]), // function 0 has type 0
  ...section(5, [0x01, 0x00, SCRATCH_BYTES / 65536]), // one memory, min pages, no max
  ...section(7, [0x02, 0x03, ...ascii('rev'), 0x00, 0x00, 0x03, ...ascii('mem'), 0x02, 0x00]),
  ...section(10, [0x01, BODY.length, ...BODY]), // the code of function 0
]);

/** The part of the WebAssembly API used here (the project's type libraries do not declare it). */
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { readonly exports: Record<string, unknown> };
}

/** Reverses bits in the bytes of `scratch[0, length)` (a view of its memory). */
export interface BitReverser {
  readonly scratch: Buffer;
  reverse(length: number): void;
}

/**
 * A reverser with its own scratch memory, or undefined where WebAssembly SIMD is not
 * available (the caller then keeps its table-driven path).
 */
export function createBitReverser(): BitReverser | undefined {
  const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (wasm === undefined || !wasm.validate(MODULE_BYTES)) return undefined;
  const instance = new wasm.Instance(new wasm.Module(MODULE_BYTES));
  const rev = instance.exports.rev as (ptr: number, len: number) => void;
  const memory = instance.exports.mem as { readonly buffer: ArrayBuffer };
  const scratch = Buffer.from(memory.buffer, 0, SCRATCH_BYTES);
  return {
    scratch,
    reverse(length: number): void {
      const whole = length - (length % STEP);
      rev(0, whole);
      for (let i = whole; i < length; i++) scratch[i] = REVERSED_BYTE[scratch[i]];
    },
  };
}
