/**
 * Version 3 and version 4 share a port; the first bytes decide (protocol/version.ts). On the
 * built server with both stacks: a 1025 whose (meaningless, §1) id field starts with 0x16 is
 * still version 3, and a connection that half-closes before sending anything is closed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawClient, Reply, register } from '../helpers/raw-client';
import { startServerProcess, type ServerProcess } from '../helpers/server-process';

let root: string;
let server: ServerProcess;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sft-first-bytes-'));
  server = await startServerProcess(join(root, 'data'));
});

afterAll(async () => {
  await server?.stop('SIGKILL');
  await rm(root, { recursive: true, force: true });
});

it('a 1025 whose id field starts with 0x16 (not 16 03) is served as version 3', async () => {
  const c = await RawClient.connect(server.port);
  try {
    const id = Buffer.alloc(16);
    id[0] = 0x16;
    id[1] = 0x00;
    expect((await c.request(register('sixteen', id))).code).toBe(Reply.REGISTERED);
  } finally {
    c.destroy();
  }
});

it('0x16 alone waits for the next byte, then decides', async () => {
  const c = await RawClient.connect(server.port);
  try {
    const frame = register(
      'split-first-byte',
      Buffer.from('16000000000000000000000000000000', 'hex'),
    );
    await c.write(frame.subarray(0, 1));
    await new Promise((r) => setTimeout(r, 200));
    expect((await c.request(frame.subarray(1))).code).toBe(Reply.REGISTERED);
  } finally {
    c.destroy();
  }
});

it('a connection that half-closes before its first byte is closed by the server', async () => {
  const c = await RawClient.connect(server.port);
  c.end();
  expect(await c.untilClosed(5000)).toEqual([]);
});
