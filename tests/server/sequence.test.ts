/**
 * docs/protocol.md §9, strict order: packets of one upload swapped in transit (1, 3, 2, 4, 5)
 * are refused with 1607 and nothing is stored. Every packet arrives here, none is missing, so
 * only a check of the packet number can tell: a server without one would decrypt the blocks in
 * the wrong order (CBC still unpads) and answer 1603 with garbage on disk.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Cksum } from '../../shared/cksum';
import {
  fileReceived,
  Reply,
  uploadPackets,
  type RawClient,
  type RawResponse,
} from '../helpers/raw-client';
import {
  registerWithKey,
  removeDir,
  startRealServer,
  type RealServer,
  type Registered,
} from './harness';

let server: RealServer;
let client: RawClient;
let me: Registered;

beforeEach(async () => {
  server = await startRealServer();
  client = await server.connect();
  me = await registerWithKey(client, 'sequence');
});

afterEach(async () => {
  await server.close();
  await removeDir(server.dataDir);
});

function data(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

function cksum(b: Buffer): number {
  const c = new Cksum();
  c.update(b);
  return c.digest();
}

/** The packet order with packets `at` and `at + 1` (1-based) exchanged. */
function swapped(total: number, at: number): number[] {
  const order = Array.from({ length: total }, (_, i) => i + 1);
  [order[at - 1], order[at]] = [order[at], order[at - 1]];
  return order;
}

/**
 * Sends a complete upload after the refused one and collects every answer up to its 1603:
 * what came before it answered the swapped packets.
 */
async function answersUntilNextUpload(): Promise<RawResponse[]> {
  const payload = data(2500, 7);
  await client.write(uploadPackets(me.id, 'after.bin', me.aesKey, payload));
  const answers: RawResponse[] = [];
  for (;;) {
    const r = await client.next();
    if (r.code === Reply.FILE_RECEIVED && fileReceived(r).fileName === 'after.bin') {
      expect(fileReceived(r).cksum).toBe(cksum(payload));
      return answers;
    }
    answers.push(r);
  }
}

async function expectNothingStored(name: string): Promise<void> {
  const hex = me.id.toString('hex');
  expect(await readdir(join(server.dataDir, hex))).toEqual(['after.bin']);
  const incoming = await readdir(join(server.dataDir, '.incoming')).catch(() => []);
  expect(incoming).toEqual([]);
  expect(await server.store.findFile(me.id, name)).toBeUndefined();
  expect(await server.store.findFile(me.id, 'after.bin')).toBeDefined();
}

describe('§9 strict order: swapped packets', () => {
  it.each([
    // 5 packets, 2 and 3 exchanged: 1, 3, 2, 4, 5
    { total: 5, at: 2, together: true },
    { total: 5, at: 2, together: false },
    // deep in a larger upload, after packets taken by the connection's fast path
    { total: 40, at: 20, together: true },
    // the last two: the would-be last packet arrives early
    { total: 6, at: 5, together: true },
  ])(
    '$total packets, $at and its successor exchanged (written at once: $together): 1607, nothing stored',
    async ({ total, at, together }) => {
      const name = `swapped-${total}-${at}.bin`;
      // Ciphertext of exactly `total` packets of 1024 bytes (PKCS#7 adds one to 16 bytes).
      const plaintext = data(total * 1024 - 1, total + at);
      const packets = uploadPackets(me.id, name, me.aesKey, plaintext);
      expect(packets).toHaveLength(total);
      const order = swapped(total, at);
      if (together) {
        await client.write(order.map((n) => packets[n - 1]));
      } else {
        for (const n of order) {
          await client.write(packets[n - 1]);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      }
      const answers = await answersUntilNextUpload();
      expect(answers.length).toBeGreaterThanOrEqual(1);
      expect(answers.map((r) => r.code)).toEqual(answers.map(() => Reply.ERROR));
      await expectNothingStored(name);
    },
  );

  it('the same packets in order are stored (the swap alone is what is refused)', async () => {
    const name = 'in-order.bin';
    const plaintext = data(5 * 1024 - 1, 3);
    const r = await client.request(uploadPackets(me.id, name, me.aesKey, plaintext));
    expect(r.code).toBe(Reply.FILE_RECEIVED);
    expect(fileReceived(r).cksum).toBe(cksum(plaintext));
  });
});
