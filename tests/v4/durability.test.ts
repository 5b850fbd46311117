/**
 * Durability before STORED (docs/protocol-v4.md §5.4, §5.10, §7), watched as
 * tests/storage/durability.test.ts watches it for 1603: the real v4 server (SQLite + disk) in
 * this process, every fsync, rename, folder creation, SQLite statement and COMMIT, and every
 * answer frame the server hands its TLS sockets, in one ordered log. For each STORED the file
 * must have been synced after its last write and before its rename, its folder synced after
 * the rename (a new client folder into the data directory), and its row committed: for plain
 * uploads, and for pipelined ones whose commits run while the connection reads on.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { RequestCode, ResponseCode, UploadFlag } from '../../protocol/v4';
import type { Backends } from '../../server/storage/open-backends';
import { installProbe, Probe } from '../storage/durability-probe';
import { brokenRulesBefore } from '../storage/durability-rules';
import { removeDirs, tempDir } from './helpers';
import { openSqliteDisk, startMemoryServer, type MemoryServer } from './memory-server';
import { registeredPeer, type RawV4 } from './raw-v4';

const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

let probe: Probe;
let dir: string;
let scratch: string;
let backends: Backends;
let server: MemoryServer;
const peers: RawV4[] = [];

beforeEach(async () => {
  probe = new Probe();
  scratch = await tempDir('v4-durability-scratch');
  await installProbe(probe, scratch);
  dir = await tempDir('v4-durability');
  backends = await openSqliteDisk(dir);
  server = await startMemoryServer(dir, { backends, files: true });
});

afterEach(async () => {
  for (const peer of peers.splice(0)) peer.close();
  await server.close();
  await backends.close();
  probe.restore();
  await removeDirs(dir, scratch);
});

/** A connection registered as `name`, closed after the test, and its client id in hex. */
async function registered(name: string): Promise<{ peer: RawV4; clientHex: string }> {
  const registration = await registeredPeer(server.port, name);
  peers.push(registration.peer);
  return registration;
}

function sendUpload(peer: RawV4, fileName: string, data: Buffer, flags: number): void {
  peer.send({
    code: RequestCode.UPLOAD_BEGIN_FLAGS,
    fileName,
    size: data.length,
    check: randomBytes(32),
    flags,
  });
  peer.send({ code: RequestCode.UPLOAD_DATA, data });
  peer.send({ code: RequestCode.UPLOAD_END, sha256: sha256(data) });
}

/** Per server socket: the client it registered and its STORED answers, in order. */
function storedBySocket(): Map<string, number[]> {
  const sockets = new Map<Socket, { clientHex: string; stored: number[] }>();
  for (const e of probe.events) {
    if (e.kind !== 'v4-answer') continue;
    const seen = sockets.get(e.socket) ?? { clientHex: '', stored: [] };
    sockets.set(e.socket, seen);
    // REGISTERED: header (6 bytes), then the 16-byte client id.
    if (e.code === ResponseCode.REGISTERED) seen.clientHex = e.frame.toString('hex', 6, 22);
    if (e.code === ResponseCode.STORED) seen.stored.push(e.seq);
  }
  return new Map([...sockets.values()].map((s) => [s.clientHex, s.stored]));
}

/** The broken rules of every file sent over each connection, in order. */
function brokenFor(sent: ReadonlyMap<string, readonly string[]>): string[] {
  const stored = storedBySocket();
  const broken: string[] = [];
  for (const [clientHex, names] of sent) {
    const answers = stored.get(clientHex) ?? [];
    expect(answers).toHaveLength(names.length);
    names.forEach((name, i) => {
      const seq = answers[i] as number;
      broken.push(...brokenRulesBefore(probe, dir, clientHex, name, { seq, name: 'STORED' }));
    });
  }
  return broken;
}

describe('an answered v4 upload is on stable storage before its STORED', () => {
  it('plain uploads, one after another: file, folder entry and row', async () => {
    const { peer, clientHex } = await registered('plain');
    const names = ['one.bin', 'two.bin', 'three.bin'];
    for (const [i, name] of names.entries()) {
      const data = randomBytes(3000 + i);
      peer.send({
        code: RequestCode.UPLOAD_BEGIN,
        fileName: name,
        size: data.length,
        check: randomBytes(32),
      });
      expect((await peer.next()).code).toBe(ResponseCode.UPLOAD_OFFSET);
      peer.send({ code: RequestCode.UPLOAD_DATA, data });
      peer.send({ code: RequestCode.UPLOAD_END, sha256: sha256(data) });
      expect((await peer.next()).code).toBe(ResponseCode.STORED);
    }
    expect(brokenFor(new Map([[clientHex, names]]))).toEqual([]);
  });

  it('pipelined uploads on several connections, their commits overlapping: every one', async () => {
    const connections = await Promise.all(['p0', 'p1', 'p2'].map((n) => registered(n)));
    const sent = new Map<string, string[]>();
    for (const { peer, clientHex } of connections) {
      const names = Array.from({ length: 6 }, (_, i) => `${clientHex.slice(0, 4)}-${i}.bin`);
      sent.set(clientHex, names);
      for (const name of names) sendUpload(peer, name, randomBytes(2000), UploadFlag.PIPELINED);
    }
    await Promise.all(
      connections.map(async ({ peer }) => {
        for (let i = 0; i < 12; i++) {
          expect((await peer.next()).code).toBe(
            i % 2 === 0 ? ResponseCode.UPLOAD_OFFSET : ResponseCode.STORED,
          );
        }
      }),
    );
    expect(brokenFor(sent)).toEqual([]);
  });
});
