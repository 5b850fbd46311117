/** The end-to-end file format (docs/protocol-v4.md §5.9): round trips and every tampering. */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ciphertextSize,
  decryptFile,
  E2E_HEADER_SIZE,
  E2E_SEGMENT_SIZE,
  encryptFile,
  plaintextSize,
} from '../../shared/e2e-stream';
import { patternBytes, removeDirs, tempDir } from './helpers';

const SECRET = Buffer.alloc(32, 7);

describe('e2e stream format', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir('e2e-stream');
  });
  afterEach(async () => removeDirs(dir));

  const seal = async (data: Buffer, name = 'f.bin'): Promise<string> => {
    await writeFile(join(dir, 'plain'), data);
    await rm(join(dir, 'sealed'), { force: true });
    await encryptFile(join(dir, 'plain'), join(dir, 'sealed'), SECRET, name, randomBytes);
    return join(dir, 'sealed');
  };

  const expectFailure = async (name: string, code: string, secret = SECRET): Promise<void> => {
    const out = join(dir, 'out');
    await expect(decryptFile(join(dir, 'sealed'), out, secret, name)).rejects.toMatchObject({
      code,
    });
    expect(existsSync(out)).toBe(false);
  };

  it.each([0, 1, E2E_SEGMENT_SIZE - 1, E2E_SEGMENT_SIZE, E2E_SEGMENT_SIZE + 1, 200_000])(
    'round-trips %i bytes with the documented size',
    async (size) => {
      const data = patternBytes(size, size + 1);
      const sealed = await seal(data);
      expect((await stat(sealed)).size).toBe(ciphertextSize(size));
      expect(plaintextSize(ciphertextSize(size))).toBe(size);
      await decryptFile(sealed, join(dir, 'out'), SECRET, 'f.bin');
      expect((await readFile(join(dir, 'out'))).equals(data)).toBe(true);
    },
  );

  it('two encryptions of one file differ (fresh salt and nonce prefix)', async () => {
    const data = Buffer.from('same content');
    const a = await readFile(await seal(data));
    await writeFile(join(dir, 'plain'), data);
    await encryptFile(join(dir, 'plain'), join(dir, 'sealed2'), SECRET, 'f.bin', randomBytes);
    expect(a.equals(await readFile(join(dir, 'sealed2')))).toBe(false);
  });

  it('refuses a flipped byte in the header, a segment or a tag', async () => {
    for (const at of [
      E2E_HEADER_SIZE - 1,
      E2E_HEADER_SIZE + 10,
      E2E_HEADER_SIZE + E2E_SEGMENT_SIZE + 3,
    ]) {
      const sealed = await seal(patternBytes(E2E_SEGMENT_SIZE * 2, 5));
      const bytes = await readFile(sealed);
      bytes[at] = (bytes[at] ?? 0) ^ 1;
      await writeFile(sealed, bytes);
      await expectFailure('f.bin', 'E2E_AUTH');
    }
  });

  it('refuses truncation at a segment boundary, swapped segments, another name and another key', async () => {
    const data = patternBytes(E2E_SEGMENT_SIZE * 3, 6);
    const seg = E2E_SEGMENT_SIZE + 16;
    let bytes = await readFile(await seal(data));
    await writeFile(join(dir, 'sealed'), bytes.subarray(0, E2E_HEADER_SIZE + 2 * seg));
    await expectFailure('f.bin', 'E2E_AUTH');

    bytes = await readFile(await seal(data));
    const swapped = Buffer.concat([
      bytes.subarray(0, E2E_HEADER_SIZE),
      bytes.subarray(E2E_HEADER_SIZE + seg, E2E_HEADER_SIZE + 2 * seg),
      bytes.subarray(E2E_HEADER_SIZE, E2E_HEADER_SIZE + seg),
      bytes.subarray(E2E_HEADER_SIZE + 2 * seg),
    ]);
    await writeFile(join(dir, 'sealed'), swapped);
    await expectFailure('f.bin', 'E2E_AUTH');

    await seal(data);
    await expectFailure('g.bin', 'E2E_AUTH');
    await expectFailure('f.bin', 'E2E_AUTH', Buffer.alloc(32, 8));
  });

  it('refuses what is not this format', async () => {
    await writeFile(join(dir, 'sealed'), Buffer.alloc(100));
    await expectFailure('f.bin', 'E2E_FORMAT');
    await writeFile(join(dir, 'sealed'), Buffer.alloc(10));
    await expectFailure('f.bin', 'E2E_FORMAT');
  });
});
