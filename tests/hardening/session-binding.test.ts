/**
 * Sessions are per connection (docs/protocol.md §9), tried as an attacker would: a built server
 * on loopback and requests written byte by byte. An attacker knows the victim's client id and
 * name (both travel in clear) but not the victim's RSA private key.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Code,
  RawClient,
  Reply,
  checksum,
  reconnect,
  sendFilePacket,
  uploadPackets,
} from '../helpers/raw-client';
import type { ServerProcess } from '../helpers/server-process';
import {
  LOOSE_ADDRESS_FLAGS,
  eventually,
  loopbackAddress,
  patternBytes,
  runAdminCommand,
  spawnHardened,
  uploadAndConfirm,
  walkTree,
} from '../helpers/hardening-server';
import { registerWithKey, testKeys, unwrapWith, type Registered } from '../server/harness';

let root: string;
let dataDir: string;
let server: ServerProcess | undefined;
const sockets: RawClient[] = [];

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'sft-binding-'));
  dataDir = join(root, 'data');
  await mkdir(dataDir, { recursive: true });
});

afterEach(async () => {
  for (const c of sockets.splice(0)) c.destroy();
  await server?.stop('SIGKILL');
  server = undefined;
  await rm(root, { recursive: true, force: true });
});

/** Own 127.41.x.y addresses, apart from the other hardening suites. */
function from(i: number): string {
  return loopbackAddress(41, i);
}

async function open(address = from(0)): Promise<RawClient> {
  if (server === undefined) throw new Error('no server');
  const c = await RawClient.connect(server.port, '127.0.0.1', address);
  sockets.push(c);
  return c;
}

interface Victim extends Registered {
  readonly fileName: string;
  readonly plaintext: Buffer;
}

/** The victim: registered, one verified file, its connection closed. */
async function victimWithFile(): Promise<Victim> {
  const c = await open(from(1));
  const me = await registerWithKey(c, 'victim', testKeys());
  const result = await uploadAndConfirm(c, dataDir, me, { fileName: 'precious.bin', size: 9000 });
  c.destroy();
  return { ...me, fileName: result.fileName, plaintext: result.plaintext };
}

interface FileRow {
  readonly fileName: string;
  readonly verified: boolean;
  readonly status: string;
  readonly size: number;
}

function fileRows(): FileRow[] {
  const run = runAdminCommand(dataDir, ['files', '--json']);
  expect(run.status).toBe(0);
  return JSON.parse(run.stdout) as FileRow[];
}

function auditOutcomes(): string[] {
  const run = runAdminCommand(dataDir, ['audit', '--json']);
  expect(run.status).toBe(0);
  return (JSON.parse(run.stdout) as Array<{ outcome: string }>).map((e) => e.outcome);
}

async function expectVictimIntact(v: Victim): Promise<void> {
  const stored = await readFile(join(dataDir, v.id.toString('hex'), v.fileName));
  expect(stored.equals(v.plaintext)).toBe(true);
  const row = fileRows().find((f) => f.fileName === v.fileName);
  expect(row).toMatchObject({ verified: true, status: 'verified', size: v.plaintext.length });
}

describe('requests are bound to the session of their connection', () => {
  beforeEach(async () => {
    server = await spawnHardened(dataDir, LOOSE_ADDRESS_FLAGS);
  });

  it('bare 1029/1030/1031 with a victim id on a fresh connection: 1607, nothing changes', async () => {
    const v = await victimWithFile();
    for (const code of [Code.CRC_ABORT, Code.CRC_OK, Code.CRC_RETRY]) {
      const attacker = await open(from(2));
      const r = await attacker.request(checksum(code, v.id, v.fileName));
      expect(r.code).toBe(Reply.ERROR);
      attacker.destroy();
    }
    await expectVictimIntact(v);
    expect(auditOutcomes()).toContain('unbound_request');
    expect(server?.lines.some((l) => l.level === 40 && l.reason === 'NOT_BOUND')).toBe(true);
  });

  it('1028 with a victim id on a fresh connection: 1607, nothing written', async () => {
    const v = await victimWithFile();
    const before = (await walkTree(dataDir)).filter((e) => e.kind === 'file').length;
    const attacker = await open(from(2));
    const packets = uploadPackets(v.id, v.fileName, randomBytes(32), Buffer.alloc(100, 1));
    const r = await attacker.request(packets);
    expect(r.code).toBe(Reply.ERROR);
    await expectVictimIntact(v);
    const after = (await walkTree(dataDir)).filter((e) => e.kind === 'file').length;
    expect(after).toBe(before);
  });

  it('1028 on a connection bound to A carrying B id: 1607, B untouched', async () => {
    const v = await victimWithFile();
    const attacker = await open(from(2));
    const a = await registerWithKey(attacker, 'mallory', testKeys());
    // Packets encrypted with A's own session key but naming B.
    const r = await attacker.request(uploadPackets(v.id, v.fileName, a.aesKey, Buffer.alloc(64)));
    expect(r.code).toBe(Reply.ERROR);
    // And a 1027 as B on A's connection does not rebind it.
    const re = await attacker.request(reconnect(v.id, v.name));
    expect(re.code).toBe(Reply.ERROR);
    await expectVictimIntact(v);
  });

  it('1029 for a file this connection did not store: 1607, even for the bound client', async () => {
    const v = await victimWithFile();
    const c = await open(from(1));
    const re = await c.request(reconnect(v.id, v.name));
    expect(re.code).toBe(Reply.RECONNECTED);
    const r = await c.request(checksum(Code.CRC_ABORT, v.id, v.fileName));
    expect(r.code).toBe(Reply.ERROR);
    await expectVictimIntact(v);
  });

  it('a 1027 as the victim elsewhere does not disturb the victim upload in flight', async () => {
    const victimConn = await open(from(1));
    const me = await registerWithKey(victimConn, 'victim', testKeys());
    const plaintext = patternBytes(50_000, 7);
    const packets = uploadPackets(me.id, 'big.bin', me.aesKey, plaintext);
    const half = Math.floor(packets.length / 2);
    await victimConn.write(packets.slice(0, half));
    // The attacker reconnects as the victim: a new stored key, a new session on its connection.
    const attacker = await open(from(2));
    expect((await attacker.request(reconnect(me.id, me.name))).code).toBe(Reply.RECONNECTED);
    const r = await victimConn.request(packets.slice(half));
    expect(r.code).toBe(Reply.FILE_RECEIVED);
    const ack = await victimConn.request(checksum(Code.CRC_OK, me.id, 'big.bin'));
    expect(ack.code).toBe(Reply.ACK);
    const stored = await readFile(join(dataDir, me.id.toString('hex'), 'big.bin'));
    expect(stored.equals(plaintext)).toBe(true);
  });
});

describe('decrypt failures lock the id out from that address', () => {
  it('300 forged uploads from several addresses: the original stays restorable, lockouts audited', async () => {
    server = await spawnHardened(dataDir, [...LOOSE_ADDRESS_FLAGS, '--lockout-failures', '3']);
    const v = await victimWithFile();
    const addresses = 6;
    let stored = 0;
    let refused = 0;
    for (let attempt = 0; attempt < 300; attempt++) {
      const attacker = await open(from(10 + (attempt % addresses)));
      const re = await attacker.request(reconnect(v.id, v.name));
      if (re.code !== Reply.RECONNECTED) {
        expect(re.code).toBe(Reply.ERROR);
        refused++;
        attacker.destroy();
        continue;
      }
      // One block of random ciphertext: valid padding about once in 256 tries.
      const forged = sendFilePacket(
        v.id,
        { contentSize: 16, origSize: 15, packet: 1, total: 1, fileName: v.fileName },
        randomBytes(16),
      );
      const r = await attacker.request(forged);
      if (r.code === Reply.FILE_RECEIVED) {
        stored++;
        await attacker.request(checksum(Code.CRC_OK, v.id, v.fileName));
      } else {
        expect(r.code).toBe(Reply.ERROR);
      }
      attacker.destroy();
    }
    // Every address is locked after three failures; nearly all attempts were refused at 1027.
    expect(refused).toBeGreaterThan(300 - addresses * 4);
    const outcomes = auditOutcomes();
    expect(outcomes.filter((o) => o === 'decrypt_failed').length).toBeGreaterThanOrEqual(
      addresses * 3 - stored,
    );
    expect(outcomes.filter((o) => o === 'locked_out').length).toBeGreaterThanOrEqual(1);
    // The victim's original bytes are on disk: live, or as a version that can be restored.
    const hex = v.id.toString('hex');
    if (stored > 0) {
      const restore = runAdminCommand(dataDir, ['restore', hex, v.fileName]);
      expect(restore.status).toBe(0);
    }
    const restored = await eventually(async () => {
      const bytes = await readFile(join(dataDir, hex, v.fileName));
      return bytes.equals(v.plaintext);
    }, 10000);
    expect(restored).toBe(true);
    // The victim's own client is not locked out from its own address.
    const own = await open(from(1));
    const re = await own.request(reconnect(v.id, v.name));
    expect(re.code).toBe(Reply.RECONNECTED);
    expect(unwrapWith(v.keys, re.payload.subarray(16, 144))).toHaveLength(32);
  });
});
