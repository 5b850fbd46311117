/** Temp directories for storage tests, removed after each test. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

export interface TempDirs {
  make(): Promise<string>;
  cleanup(): Promise<void>;
}

export function tempDirs(prefix: string): TempDirs {
  const made: string[] = [];
  return {
    async make() {
      const dir = await mkdtemp(path.join(tmpdir(), `sft-${prefix}-`));
      made.push(dir);
      return dir;
    },
    async cleanup() {
      for (const dir of made.splice(0)) {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

/** Root ignores file permissions, so permission tests cannot fail for it. */
export const runningAsRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** A 16-byte id made of one repeated byte, easy to read in failures. */
export function idOf(byte: number): Buffer {
  return Buffer.alloc(16, byte);
}

/** A 32-byte AES key made of one repeated byte. */
export function aesKeyOf(byte: number): Buffer {
  return Buffer.alloc(32, byte);
}
