/**
 * The audit trail, end to end: a real `sft-server` process, one client that goes
 * through every audited outcome of 1025/1026/1027 and of uploads, a second address that runs
 * into the registration rate limit, then `sft-server admin audit|clients|files` (the built
 * dist/server/process/main.js, as an operator runs it next to the live server) must show all of it.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Code,
  RawClient,
  Reply,
  checksum,
  register,
  reconnect,
  sendPublicKey,
  uploadPackets,
} from '../helpers/raw-client';
import type { ServerProcess } from '../helpers/server-process';
import {
  loopbackAddress,
  patternBytes,
  runAdminCommand,
  sleep,
  spawnHardened,
} from '../helpers/hardening-server';
import { registerWithKey, testKeys } from '../server/harness';

/** Own 127.31.x.y addresses, apart from the other hardening suites. */
const CLIENT_ADDRESS = loopbackAddress(31, 0);
const BURST_ADDRESS = loopbackAddress(31, 1);
const MAX_FILE_SIZE = 100_000;
const BURST = 3;

interface AuditRow {
  id: number;
  time: string;
  remoteAddress: string;
  clientId: string | null;
  name: string | null;
  requestCode: number;
  outcome: string;
  detail: string | null;
}

let root: string;
let dataDir: string;
let server: ServerProcess;
let aliceId: string;
/** ISO time taken between the client's requests and the burst of registrations. */
let mark: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sft-audit-'));
  dataDir = join(root, 'data');
  await mkdir(dataDir);
  server = await spawnHardened(dataDir, [
    '--max-file-size',
    String(MAX_FILE_SIZE),
    // A bucket that does not refill during the test: the 4th registration is over the limit.
    '--register-rate',
    '0.001',
    '--register-burst',
    String(BURST),
  ]);

  const c = await RawClient.connect(server.port, '127.0.0.1', CLIENT_ADDRESS);
  try {
    const keys = testKeys();
    const me = await registerWithKey(c, 'alice', keys); // registered, key_set
    aliceId = me.id.toString('hex');
    const up = (name: string, size: number, key = me.aesKey) =>
      uploadPackets(me.id, name, key, patternBytes(size, size));
    const codes: number[] = [];
    const ask = async (bytes: Buffer | Buffer[]) => codes.push((await c.request(bytes)).code);
    await ask(up('a.bin', 3000)); // file_stored
    await ask(checksum(Code.CRC_OK, me.id, 'a.bin')); // checksum_ok
    await ask(up('b.bin', 2000)); // file_stored
    await c.write(checksum(Code.CRC_RETRY, me.id, 'b.bin')); // checksum_retry, no answer (§5.5)
    await ask(up('b.bin', 2000)); // file_stored
    await ask(checksum(Code.CRC_ABORT, me.id, 'b.bin')); // checksum_failed
    await ask(up('../escape', 100)); // rejected_name (§9)
    await ask(up('huge.bin', MAX_FILE_SIZE + 1)); // quota_exceeded, on packet 1
    await ask(up('garbled.bin', 1000, Buffer.alloc(32, 0x11))); // file_rejected: wrong key
    await ask(register('alice')); // name_taken
    await ask(register(Buffer.alloc(255, 0x41))); // invalid_name: no NUL (§2)
    await ask(sendPublicKey(me.id, 'alice', keys.publicKeyDer)); // key_rejected: set once
    await ask(reconnect(me.id, 'alice')); // reconnected
    await ask(reconnect(Buffer.alloc(16, 0xee), 'alice')); // unknown_client
    await ask(reconnect(me.id, 'mallory')); // reconnect_refused
    expect(codes).toEqual([
      Reply.FILE_RECEIVED,
      Reply.ACK,
      Reply.FILE_RECEIVED,
      Reply.FILE_RECEIVED,
      Reply.ACK,
      Reply.ERROR,
      Reply.ERROR,
      Reply.ERROR,
      Reply.REGISTRATION_FAILED,
      Reply.REGISTRATION_FAILED,
      Reply.REGISTRATION_FAILED,
      Reply.RECONNECTED,
      Reply.RECONNECT_REFUSED,
      Reply.RECONNECT_REFUSED,
    ]);
  } finally {
    c.destroy();
  }

  // Rows carry the server's clock in ms: step past it so `mark` splits the two batches.
  await sleep(20);
  mark = new Date().toISOString();
  await sleep(20);
  const burst = await RawClient.connect(server.port, '127.0.0.1', BURST_ADDRESS);
  try {
    const codes: number[] = [];
    for (let i = 0; i <= BURST; i++) codes.push((await burst.request(register(`burst-${i}`))).code);
    expect(codes).toEqual([...Array(BURST).fill(Reply.REGISTERED), Reply.REGISTRATION_FAILED]);
  } finally {
    burst.destroy();
  }
});

afterAll(async () => {
  await server?.stop('SIGKILL');
  if (root) await rm(root, { recursive: true, force: true });
});

function adminJson<T>(args: readonly string[]): T {
  const run = runAdminCommand(dataDir, [...args, '--json']);
  expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
  return JSON.parse(run.stdout) as T;
}

describe('audit trail of a live server, read with sft-server admin', () => {
  it('records every 1025/1026/1027 and every upload outcome, in order, with address and id', () => {
    const rows = adminJson<AuditRow[]>(['audit']);
    const mine = rows.filter((r) => r.remoteAddress === CLIENT_ADDRESS);
    expect(mine.map((r) => [r.requestCode, r.outcome])).toEqual([
      [Code.REGISTER, 'registered'],
      [Code.PUBLIC_KEY, 'key_set'],
      [Code.SEND_FILE, 'file_stored'],
      [Code.CRC_OK, 'checksum_ok'],
      [Code.SEND_FILE, 'file_stored'],
      [Code.CRC_RETRY, 'checksum_retry'],
      [Code.SEND_FILE, 'file_stored'],
      [Code.CRC_ABORT, 'checksum_failed'],
      [Code.SEND_FILE, 'rejected_name'],
      [Code.SEND_FILE, 'quota_exceeded'],
      // A ciphertext that does not decrypt is counted towards a lockout (§9), then refused.
      [Code.SEND_FILE, 'decrypt_failed'],
      [Code.SEND_FILE, 'file_rejected'],
      [Code.REGISTER, 'name_taken'],
      [Code.REGISTER, 'invalid_name'],
      [Code.PUBLIC_KEY, 'key_rejected'],
      [Code.RECONNECT, 'reconnected'],
      [Code.RECONNECT, 'unknown_client'],
      [Code.RECONNECT, 'reconnect_refused'],
    ]);
    // The client id the server gave out is on every row that names this client.
    const withId = mine.filter((r) => r.outcome !== 'name_taken' && r.outcome !== 'invalid_name');
    expect(withId.filter((r) => r.outcome !== 'unknown_client').map((r) => r.clientId)).toEqual(
      Array(withId.length - 1).fill(aliceId),
    );
    expect(mine.find((r) => r.outcome === 'registered')?.name).toBe('alice');
    expect(mine.find((r) => r.outcome === 'unknown_client')?.clientId).toBe('ee'.repeat(16));
    // Times never go backwards (the table is indexed and listed by time).
    const times = rows.map((r) => Date.parse(r.time));
    expect([...times].sort((a, b) => a - b)).toEqual(times);
  });

  it('the burst from one address: three registered, then rate_limited', () => {
    const rows = adminJson<AuditRow[]>(['audit']).filter((r) => r.remoteAddress === BURST_ADDRESS);
    expect(rows.map((r) => r.outcome)).toEqual([
      ...Array(BURST).fill('registered'),
      'rate_limited',
    ]);
    expect(rows.map((r) => r.name)).toEqual(
      Array.from({ length: BURST + 1 }, (_, i) => `burst-${i}`),
    );
  });

  it('--since keeps only the rows from that time on (ISO or an age)', () => {
    const later = adminJson<AuditRow[]>(['audit', '--since', mark]);
    expect(later.map((r) => r.remoteAddress)).toEqual(Array(BURST + 1).fill(BURST_ADDRESS));
    const lastHour = adminJson<AuditRow[]>(['audit', '--since', '1h']);
    expect(lastHour).toHaveLength(adminJson<AuditRow[]>(['audit']).length);
    const clients = adminJson<Array<{ name: string }>>(['clients', '--since', mark]);
    expect(clients.map((c) => c.name).sort()).toEqual(['burst-0', 'burst-1', 'burst-2']);
  });

  it('the audit table shows one line per row with its outcome, and a count', () => {
    const json = adminJson<AuditRow[]>(['audit']);
    const run = runAdminCommand(dataDir, ['audit']);
    expect(run.status).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    // Header, one line per row, the count line.
    expect(lines).toHaveLength(json.length + 2);
    json.forEach((row, i) => {
      const cells = (lines[i + 1] as string).split(/\s{2,}/);
      expect(cells).toEqual(expect.arrayContaining([row.remoteAddress, row.outcome]));
    });
    expect(lines[lines.length - 1]).toBe(`${json.length} audit entries`);
  });

  it('clients and files show who uploaded what', () => {
    const clients = adminJson<Array<{ id: string; name: string; hasPublicKey: boolean }>>([
      'clients',
    ]);
    expect(clients.find((c) => c.name === 'alice')).toMatchObject({
      id: aliceId,
      hasPublicKey: true,
    });
    expect(clients).toHaveLength(1 + BURST);
    const files = adminJson<
      Array<{ clientId: string; owner: string; fileName: string; status: string; size: number }>
    >(['files']);
    expect(
      files.map((f) => [f.owner, f.clientId === aliceId, f.fileName, f.status, f.size]).sort(),
    ).toEqual([
      ['alice', true, 'a.bin', 'verified', 3000],
      ['alice', true, 'b.bin', 'failed', 2000],
    ]);
    const table = runAdminCommand(dataDir, ['files']);
    expect(table.status).toBe(0);
    expect(table.stdout).toContain(`${aliceId}/a.bin`);
  });
});
