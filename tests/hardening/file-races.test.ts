/**
 * One client, two connections, one stored file (found by the fuzz soak at 30,000 cases): an
 * upload committing on one connection while the other sends 1031 for that name, or uploads it
 * too. The database row and the file on disk must still agree afterwards.
 *
 * Deterministic: the in-memory store holds the first upload inside `putFile` (after its rename)
 * until the other connection's request has reached the server and had every chance to run;
 * the in-memory stores never wait on I/O, so a few event-loop turns are enough for that.
 */
import { cksum } from '../../shared/cksum';
import { Code, Reply, checksum, fileReceived, uploadPackets } from '../helpers/raw-client';
import { memoryBackends } from '../../server/storage/memory';
import { patternBytes } from '../helpers/hardening-server';
import { reconnectWithKey, registerWithKey, startServer, type TestServer } from '../server/harness';

const FILE = 'shared.bin';
/** Event-loop turns the second request gets while the first is held (it needs ~5). */
const TURNS = 50;

let server: TestServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** A promise with its resolve function, to hold and release a store call. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

/**
 * Starts a server whose store holds the next `putFile` until released; `entered` resolves
 * when that call arrives. Every other call passes straight through.
 */
async function startHeld() {
  const stores = memoryBackends();
  const { store, files, bytes } = stores;
  const hold = gate();
  const entered = gate();
  let armed = false;
  const putFile = store.putFile.bind(store);
  store.putFile = async (file) => {
    if (armed) {
      armed = false;
      entered.open();
      await hold.promise;
    }
    return putFile(file);
  };
  server = await startServer({ store, files });
  return {
    s: server,
    store,
    files,
    bytes,
    hold,
    entered: entered.promise,
    arm: () => (armed = true),
  };
}

describe('a file given up with 1031', () => {
  it('cannot be verified by a later 1029: 1607, and the row stays failed (its bytes are gone)', async () => {
    const { s, store, bytes } = await startHeld();
    const c = await s.connect();
    const me = await registerWithKey(c, 'gave-up');
    const r = await c.request(uploadPackets(me.id, FILE, me.aesKey, patternBytes(1000, 5)));
    expect(r.code).toBe(Reply.FILE_RECEIVED);
    expect((await c.request(checksum(Code.CRC_ABORT, me.id, FILE))).code).toBe(Reply.ACK);
    // From this connection or another one of the same client (found by the fuzz soak).
    const other = await s.connect();
    await reconnectWithKey(other, me);
    expect((await other.request(checksum(Code.CRC_OK, me.id, FILE))).code).toBe(Reply.ERROR);
    expect((await c.request(checksum(Code.CRC_OK, me.id, FILE))).code).toBe(Reply.ERROR);
    const key = `${me.id.toString('hex')}/${FILE}`;
    expect({ status: store.files.get(key)?.status, onDisk: bytes.objects.has(key) }).toEqual({
      status: 'failed',
      onDisk: false,
    });
    // Uploading it again makes it verifiable again.
    const again = await c.request(uploadPackets(me.id, FILE, me.aesKey, patternBytes(1000, 6)));
    expect(again.code).toBe(Reply.FILE_RECEIVED);
    expect((await c.request(checksum(Code.CRC_OK, me.id, FILE))).code).toBe(Reply.ACK);
    expect(store.files.get(key)?.status).toBe('verified');
  });
});

describe('one stored file changed from two connections at once', () => {
  it('a 1031 arriving while an upload of that name commits: row and file still agree', async () => {
    const { s, store, bytes, hold, entered, arm } = await startHeld();
    const a = await s.connect();
    const me = await registerWithKey(a, 'racer');
    // Connection B (same client, its own session) stored the file first: its 1031 may give it up.
    const b = await s.connect();
    const meOnB = await reconnectWithKey(b, me);
    const first = await b.request(uploadPackets(me.id, FILE, meOnB.aesKey, patternBytes(2000, 1)));
    expect(first.code).toBe(Reply.FILE_RECEIVED);

    // Connection A re-sends the file; it is renamed into place and held before its row.
    arm();
    const second = patternBytes(5000, 2);
    await a.write(uploadPackets(me.id, FILE, me.aesKey, second));
    await entered;
    // Connection B (same client) gives the file up meanwhile.
    let touched = false;
    const touch = store.touch.bind(store);
    store.touch = async (...args) => {
      touched = true;
      return touch(...args);
    };
    await b.write(checksum(Code.CRC_ABORT, me.id, FILE));
    while (!touched) await turns(1);
    await turns(TURNS);
    hold.open();

    expect(fileReceived(await a.next()).cksum).toBe(cksum(second));
    expect((await b.next()).code).toBe(Reply.ACK);
    const key = `${me.id.toString('hex')}/${FILE}`;
    // The 1031 came last: the file is given up and gone. Without the lock the row said
    // "received" for a file the 1031 had just deleted.
    expect({
      status: store.files.get(key)?.status,
      onDisk: bytes.objects.has(key),
    }).toEqual({ status: 'failed', onDisk: false });
  });

  it('two uploads of one name from two connections: the row describes the file on disk', async () => {
    const { s, store, files, bytes, hold, entered, arm } = await startHeld();
    const a = await s.connect();
    const me = await registerWithKey(a, 'twice');
    const b = await s.connect();
    const meOnB = await reconnectWithKey(b, me);

    arm();
    const fromA = patternBytes(3000, 3);
    await a.write(uploadPackets(me.id, FILE, me.aesKey, fromA));
    await entered;
    let begun = false;
    const beginUpload = files.beginUpload.bind(files);
    files.beginUpload = async (...args) => {
      begun = true;
      return beginUpload(...args);
    };
    // One packet: B's whole upload runs as soon as its temp file is open.
    const fromB = patternBytes(7000, 4);
    await b.write(uploadPackets(me.id, FILE, meOnB.aesKey, fromB, 8192));
    while (!begun) await turns(1);
    await turns(TURNS);
    hold.open();

    expect(fileReceived(await a.next()).cksum).toBe(cksum(fromA));
    expect(fileReceived(await b.next()).cksum).toBe(cksum(fromB));
    const key = `${me.id.toString('hex')}/${FILE}`;
    const row = store.files.get(key);
    const onDisk = bytes.objects.get(key) ?? Buffer.alloc(0);
    expect({ size: row?.size, cksum: row?.cksum }).toEqual({
      size: onDisk.length,
      cksum: cksum(onDisk),
    });
  });
});
