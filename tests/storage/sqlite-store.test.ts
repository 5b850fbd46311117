/**
 * The SQLite store's records: clients (registration, keys set once, LastSeen written behind),
 * file rows and their statuses, and the audit trail.
 */
import { type SqliteStore } from '../../server/storage/sqlite';
import { StorageError, StorageErrorCode, type AuditEntry } from '../../server/storage/types';
import { PUBLIC_KEY, raw, sqliteStores } from './sqlite-fixture';
import { aesKeyOf, idOf } from './temp-dir';

const { newStore } = sqliteStores('store');

describe('clients', () => {
  it('registers a free name and finds it by id and by name', async () => {
    const { store } = await newStore();
    const result = await store.registerClient(idOf(1), 'alice', 1000);
    expect(result).toEqual({
      ok: true,
      client: { id: idOf(1), name: 'alice', publicKey: null, aesKey: null, lastSeen: 1000 },
    });
    expect(await store.findClientById(idOf(1))).toMatchObject({ name: 'alice', lastSeen: 1000 });
    expect(await store.findClientByName('alice')).toMatchObject({ id: idOf(1) });
    expect(await store.findClientById(idOf(2))).toBeUndefined();
    expect(await store.findClientByName('bob')).toBeUndefined();
  });

  it('replaces a record of the same name that never got a key, with its files (§5.1)', async () => {
    const { store } = await newStore();
    await store.registerClient(idOf(1), 'alice', 1000);
    await store.putFile({
      clientId: idOf(1),
      fileName: 'f',
      objectKey: `${idOf(1).toString('hex')}/f`,
      size: 3,
      cksum: 7,
      updatedAt: 1001,
    });
    const result = await store.registerClient(idOf(2), 'alice', 2000);
    expect(result).toMatchObject({ ok: true, replacedId: idOf(1), client: { id: idOf(2) } });
    expect(await store.findClientById(idOf(1))).toBeUndefined();
    expect(await store.findFile(idOf(1), 'f')).toBeUndefined();
    expect(await store.findClientByName('alice')).toMatchObject({ id: idOf(2) });
  });

  it('refuses a name whose record has a public key', async () => {
    const { store } = await newStore();
    await store.registerClient(idOf(1), 'alice', 1000);
    expect(await store.setPublicKey(idOf(1), PUBLIC_KEY, aesKeyOf(5), 1500)).toBe(true);
    expect(await store.registerClient(idOf(2), 'alice', 2000)).toEqual({
      ok: false,
      reason: 'name_taken',
    });
    expect(await store.findClientById(idOf(2))).toBeUndefined();
    expect(await store.findClientByName('alice')).toMatchObject({ id: idOf(1) });
  });

  it('keeps concurrent registrations of one name consistent: one wins, the rest replace or fail', async () => {
    const { store } = await newStore();
    const results = await Promise.all(
      [1, 2, 3, 4, 5].map((byte) => store.registerClient(idOf(byte), 'race', 1000 + byte)),
    );
    expect(results.every((result) => result.ok)).toBe(true);
    // Each later one replaced the keyless record before it, so exactly one row remains.
    expect((await store.listClients()).map((client) => client.id)).toEqual([idOf(5)]);
  });

  it('sets the public key once only (§5.2)', async () => {
    const { store } = await newStore();
    await store.registerClient(idOf(1), 'alice', 1000);
    expect(await store.setPublicKey(idOf(1), PUBLIC_KEY, aesKeyOf(5), 1500)).toBe(true);
    expect(await store.setPublicKey(idOf(1), Buffer.from('other'), aesKeyOf(6), 1600)).toBe(false);
    expect(await store.setPublicKey(idOf(9), PUBLIC_KEY, aesKeyOf(6), 1600)).toBe(false);
    expect(await store.findClientById(idOf(1))).toEqual({
      id: idOf(1),
      name: 'alice',
      publicKey: PUBLIC_KEY,
      aesKey: aesKeyOf(5),
      lastSeen: 1500,
    });
  });

  it('replaces the AES key, and refuses one for an unknown client', async () => {
    const { store } = await newStore();
    await store.registerClient(idOf(1), 'alice', 1000);
    await store.setPublicKey(idOf(1), PUBLIC_KEY, aesKeyOf(5), 1500);
    await store.setAesKey(idOf(1), aesKeyOf(6), 1700);
    expect(await store.findClientById(idOf(1))).toMatchObject({
      aesKey: aesKeyOf(6),
      lastSeen: 1700,
    });
    await expect(store.setAesKey(idOf(9), aesKeyOf(6), 1700)).rejects.toMatchObject({
      code: StorageErrorCode.DATABASE,
    });
  });

  it('keeps its own copy of buffers handed in (decoder views are reused)', async () => {
    const { store } = await newStore();
    const view = Buffer.from(idOf(1));
    const pending = store.registerClient(view, 'alice', 1000);
    view.fill(0xee);
    await pending;
    expect(await store.findClientById(idOf(1))).toBeDefined();
  });

  it('writes LastSeen behind, shows it at once, and never moves it backwards', async () => {
    const { store, file } = await newStore();
    await store.registerClient(idOf(1), 'alice', 1000);
    await store.touch(idOf(1), 5000);
    await store.touch(idOf(1), 4000);
    expect((await store.findClientById(idOf(1)))?.lastSeen).toBe(5000);
    await store.flush();
    const db = await raw(file);
    try {
      const row = await db.get<{ LastSeen: number }>('SELECT LastSeen FROM clients');
      expect(row?.LastSeen).toBe(5000);
    } finally {
      await db.close();
    }
  });

  it('persists everything across close and reopen', async () => {
    const { store, dir } = await newStore();
    await store.registerClient(idOf(1), 'alice', 1000);
    await store.setPublicKey(idOf(1), PUBLIC_KEY, aesKeyOf(5), 1500);
    await store.touch(idOf(1), 9000);
    await store.putFile({
      clientId: idOf(1),
      fileName: 'a.bin',
      objectKey: `${idOf(1).toString('hex')}/a.bin`,
      size: 100,
      cksum: 42,
      updatedAt: 1600,
    });
    await store.setFileStatus(idOf(1), 'a.bin', 'verified', 1700);
    await store.close();

    const { store: again } = await newStore(dir);
    expect(await again.findClientByName('alice')).toEqual({
      id: idOf(1),
      name: 'alice',
      publicKey: PUBLIC_KEY,
      aesKey: aesKeyOf(5),
      lastSeen: 9000,
    });
    expect(await again.findFile(idOf(1), 'a.bin')).toMatchObject({
      verified: true,
      status: 'verified',
      size: 100,
      cksum: 42,
      updatedAt: 1700,
    });
  });
});

describe('files', () => {
  const hex = idOf(1).toString('hex');

  async function storeWithClient(): Promise<SqliteStore> {
    const { store } = await newStore();
    await store.registerClient(idOf(1), 'alice', 1000);
    return store;
  }

  it('upserts a file row as received and unverified, resetting a verified one', async () => {
    const store = await storeWithClient();
    const base = { clientId: idOf(1), fileName: 'a', objectKey: `${hex}/a`, cksum: 1 };
    await store.putFile({ ...base, size: 10, updatedAt: 2000 });
    expect(await store.setFileStatus(idOf(1), 'a', 'verified', 2100)).toBe(true);
    await store.putFile({ ...base, size: 20, cksum: 2, updatedAt: 2200 });
    expect(await store.findFile(idOf(1), 'a')).toEqual({
      clientId: idOf(1),
      fileName: 'a',
      objectKey: `${hex}/a`,
      verified: false,
      status: 'received',
      size: 20,
      cksum: 2,
      updatedAt: 2200,
    });
    expect(await store.listFiles()).toHaveLength(1);
  });

  it('marks files verified or failed; unknown files report false', async () => {
    const store = await storeWithClient();
    for (const name of ['v', 'f']) {
      await store.putFile({
        clientId: idOf(1),
        fileName: name,
        objectKey: `${hex}/${name}`,
        size: 1,
        cksum: 1,
        updatedAt: 2000,
      });
    }
    expect(await store.setFileStatus(idOf(1), 'v', 'verified', 3000)).toBe(true);
    expect(await store.setFileStatus(idOf(1), 'f', 'failed', 3000)).toBe(true);
    expect(await store.setFileStatus(idOf(1), 'nope', 'verified', 3000)).toBe(false);
    expect(await store.findFile(idOf(1), 'v')).toMatchObject({
      verified: true,
      status: 'verified',
    });
    expect(await store.findFile(idOf(1), 'f')).toMatchObject({ verified: false, status: 'failed' });
  });

  it('counts stored bytes per client, leaving out failed files', async () => {
    const store = await storeWithClient();
    await store.registerClient(idOf(2), 'bob', 1000);
    const put = (id: Buffer, name: string, size: number) =>
      store.putFile({
        clientId: id,
        fileName: name,
        objectKey: `${id.toString('hex')}/${name}`,
        size,
        cksum: 0,
        updatedAt: 2000,
      });
    await put(idOf(1), 'a', 100);
    await put(idOf(1), 'b', 50);
    await put(idOf(1), 'c', 7);
    await put(idOf(2), 'a', 1000);
    await store.setFileStatus(idOf(1), 'c', 'failed', 2100);
    expect(await store.storedBytes(idOf(1))).toBe(150);
    expect(await store.storedBytes(idOf(2))).toBe(1000);
    expect(await store.storedBytes(idOf(3))).toBe(0);
  });

  it('rejects a file of an unknown client with a StorageError, not a driver error', async () => {
    const store = await storeWithClient();
    const error = await store
      .putFile({
        clientId: idOf(9),
        fileName: 'a',
        objectKey: 'x/a',
        size: 1,
        cksum: 1,
        updatedAt: 1,
      })
      .catch((err: unknown) => err);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).code).toBe(StorageErrorCode.DATABASE);
  });

  it('writes the audit row of a file change with it, and none when the change fails', async () => {
    const store = await storeWithClient();
    const audit = (outcome: AuditEntry['outcome'], clientId = idOf(1)): AuditEntry => ({
      time: 5000,
      remoteAddress: '127.0.0.1',
      clientId,
      name: null,
      requestCode: 1028,
      outcome,
      detail: 'a',
    });
    const file = { fileName: 'a', objectKey: `${hex}/a`, size: 1, cksum: 1, updatedAt: 1 };
    await store.putFile({ ...file, clientId: idOf(1) }, audit('file_stored'));
    // An unknown client breaks the row's foreign key: the audit row goes with it.
    await expect(
      store.putFile({ ...file, clientId: idOf(9) }, audit('file_stored', idOf(9))),
    ).rejects.toBeInstanceOf(StorageError);
    expect(await store.setFileStatus(idOf(1), 'a', 'verified', 2, audit('checksum_ok'))).toBe(true);
    expect(await store.setFileStatus(idOf(1), 'nope', 'failed', 3, audit('checksum_failed'))).toBe(
      false,
    );
    const rows = await store.listAudit();
    expect(rows.map((r) => [r.outcome, r.clientId?.toString('hex')])).toEqual([
      ['file_stored', hex],
      ['checksum_ok', hex],
    ]);
  });

  it('in a group commit too: audit rows only of the file changes that succeeded', async () => {
    const store = await storeWithClient();
    const audit = (detail: string, clientId = idOf(1)): AuditEntry => ({
      time: 6000,
      remoteAddress: '127.0.0.1',
      clientId,
      name: null,
      requestCode: 1028,
      outcome: 'file_stored',
      detail,
    });
    const file = (name: string, clientId = idOf(1)) => ({
      clientId,
      fileName: name,
      objectKey: `${hex}/${name}`,
      size: 1,
      cksum: 1,
      updatedAt: 1,
    });
    // Queued together, so they share one transaction; the second breaks its foreign key.
    const results = await Promise.allSettled([
      store.putFile(file('g1'), audit('g1')),
      store.putFile(file('g2', idOf(9)), audit('g2', idOf(9))),
      store.putFile(file('g3'), audit('g3')),
      store.setFileStatus(idOf(1), 'missing', 'verified', 7, audit('missing')),
    ]);
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'rejected',
      'fulfilled',
      'fulfilled',
    ]);
    expect((await store.listAudit()).map((r) => r.detail)).toEqual(['g1', 'g3']);
    expect((await store.listFiles()).map((f) => f.fileName).sort()).toEqual(['g1', 'g3']);
  });
});

describe('audit trail', () => {
  const entry = (time: number, outcome: AuditEntry['outcome'], detail?: string): AuditEntry => ({
    time,
    remoteAddress: '127.0.0.1',
    // A 1025 carries no usable id; later outcomes know the client.
    clientId: outcome === 'registered' ? null : idOf(1),
    name: 'alice',
    requestCode: 1025,
    outcome,
    ...(detail === undefined ? {} : { detail }),
  });

  it('records entries and lists them oldest first, from a time on', async () => {
    const { store } = await newStore();
    await store.audit(entry(3000, 'name_taken', 'second try'));
    await store.audit(entry(1000, 'registered'));
    await store.audit(entry(2000, 'rate_limited'));
    const all = await store.listAudit();
    expect(all.map((row) => row.time)).toEqual([1000, 2000, 3000]);
    expect(all[2]).toMatchObject({
      remoteAddress: '127.0.0.1',
      clientId: idOf(1),
      name: 'alice',
      requestCode: 1025,
      outcome: 'name_taken',
      detail: 'second try',
    });
    expect(all[0]).toMatchObject({ clientId: null, outcome: 'registered' });
    expect(all[0]).not.toHaveProperty('detail');
    expect((await store.listAudit(2000)).map((row) => row.outcome)).toEqual([
      'rate_limited',
      'name_taken',
    ]);
    expect((await store.queryAudit({ limit: 1 })).map((row) => row.time)).toEqual([3000]);
  });

  it('commits many concurrent entries, all of them, each once', async () => {
    const { store } = await newStore();
    const count = 500;
    await Promise.all(
      Array.from({ length: count }, (_, i) => store.audit(entry(i, 'file_stored', `f${i}`))),
    );
    const rows = await store.listAudit();
    expect(rows).toHaveLength(count);
    expect(new Set(rows.map((row) => row.detail)).size).toBe(count);
  });

  it('survives a restart', async () => {
    const { store, dir } = await newStore();
    await store.audit(entry(1000, 'registered'));
    await store.close();
    const { store: again } = await newStore(dir);
    expect(await again.listAudit()).toHaveLength(1);
  });
});
