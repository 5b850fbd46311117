/**
 * Writes issued together share one transaction (group commit) and client records are cached
 * for speed: neither may change what a caller observes.
 */
import * as path from 'node:path';
import { DATABASE_FILE_NAME, openSqliteStore, type SqliteStore } from '../../server/storage/sqlite';
import { StorageErrorCode, type AuditEntry } from '../../server/storage/types';
import { aesKeyOf, idOf, tempDirs } from './temp-dir';

const dirs = tempDirs('group');
const open: SqliteStore[] = [];
const PUBLIC_KEY = Buffer.from('30819d300d06092a864886f70d010101', 'hex');

async function newStore(dir?: string): Promise<{ store: SqliteStore; dir: string }> {
  const dataDir = dir ?? (await dirs.make());
  const store = await openSqliteStore({ path: path.join(dataDir, DATABASE_FILE_NAME) });
  open.push(store);
  return { store, dir: dataDir };
}

afterEach(async () => {
  for (const store of open.splice(0)) await store.close();
  await dirs.cleanup();
});

function entry(time: number, name: string): AuditEntry {
  return {
    time,
    remoteAddress: '127.0.0.1',
    clientId: null,
    name,
    requestCode: 1025,
    outcome: 'registered',
  };
}

describe('group commit', () => {
  it('commits every write of a burst, in order, and audit rows with them', async () => {
    const { store, dir } = await newStore();
    const count = 20;
    const results = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        Promise.all([
          store.registerClient(idOf(i + 1), `client-${i}`, i),
          store.audit(entry(i, `client-${i}`)),
        ]),
      ),
    );
    expect(results.every(([registered]) => registered.ok)).toBe(true);
    await store.close();

    const reopened = (await newStore(dir)).store;
    expect((await reopened.listClients()).map((c) => c.name).sort()).toEqual(
      Array.from({ length: count }, (_, i) => `client-${i}`).sort(),
    );
    expect((await reopened.listAudit()).map((e) => e.name)).toEqual(
      Array.from({ length: count }, (_, i) => `client-${i}`),
    );
  });

  it('a write that fails alone does not take the others of its group down', async () => {
    const { store } = await newStore();
    await store.registerClient(idOf(1), 'alice', 1);
    const [taken, missingKey, fresh, audited] = await Promise.allSettled([
      store.registerClient(idOf(2), 'alice', 2),
      store.setAesKey(idOf(9), aesKeyOf(9), 3),
      store.registerClient(idOf(3), 'bob', 4),
      store.audit(entry(5, 'bob')),
    ]);
    // alice has no key yet, so her name is taken over (§5.1); nothing failed there.
    expect(taken).toMatchObject({ status: 'fulfilled', value: { ok: true } });
    expect(missingKey).toMatchObject({
      status: 'rejected',
      reason: { code: StorageErrorCode.DATABASE },
    });
    expect(fresh).toMatchObject({ status: 'fulfilled', value: { ok: true } });
    expect(audited.status).toBe('fulfilled');
    expect((await store.listClients()).map((c) => c.name)).toEqual(['alice', 'bob']);
    expect(await store.findClientById(idOf(1))).toBeUndefined();
  });
});

describe('client cache', () => {
  it('lookups see every committed change of a client', async () => {
    const { store } = await newStore();
    await store.registerClient(idOf(1), 'carol', 10);
    expect(await store.findClientById(idOf(1))).toMatchObject({ publicKey: null, aesKey: null });

    expect(await store.setPublicKey(idOf(1), PUBLIC_KEY, aesKeyOf(1), 20)).toBe(true);
    expect(await store.findClientById(idOf(1))).toMatchObject({
      publicKey: PUBLIC_KEY,
      aesKey: aesKeyOf(1),
      lastSeen: 20,
    });

    await store.setAesKey(idOf(1), aesKeyOf(2), 30);
    expect((await store.findClientById(idOf(1)))?.aesKey).toEqual(aesKeyOf(2));

    await store.touch(idOf(1), 40);
    expect((await store.findClientById(idOf(1)))?.lastSeen).toBe(40);
    await store.flush();
    expect((await store.findClientById(idOf(1)))?.lastSeen).toBe(40);
  });

  it('forgets a keyless client whose name is registered anew', async () => {
    const { store } = await newStore();
    await store.registerClient(idOf(1), 'dave', 1);
    expect(await store.findClientById(idOf(1))).toBeDefined();
    const again = await store.registerClient(idOf(2), 'dave', 2);
    expect(again).toMatchObject({ ok: true, replacedId: idOf(1) });
    expect(await store.findClientById(idOf(1))).toBeUndefined();
    expect((await store.findClientById(idOf(2)))?.name).toBe('dave');
  });

  it('hands out copies: a caller changing a record does not change the next lookup', async () => {
    const { store } = await newStore();
    await store.registerClient(idOf(1), 'erin', 1);
    const first = await store.findClientById(idOf(1));
    (first as { lastSeen: number }).lastSeen = 999;
    expect((await store.findClientById(idOf(1)))?.lastSeen).toBe(1);
  });
});
