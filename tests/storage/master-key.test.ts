import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import {
  loadMasterKey,
  openSealedAesKey,
  sealAesKey,
  SEALED_AES_KEY_BYTES,
  SEALED_FORMAT_V1,
} from '../../server/storage/master-key';
import { AsyncDatabase, OPEN_READWRITE } from '../../server/storage/sqlite/async';
import { DATABASE_FILE_NAME, openSqliteStore, type SqliteStore } from '../../server/storage/sqlite';
import { StorageError, StorageErrorCode } from '../../server/storage/types';
import { idOf, tempDirs } from './temp-dir';

const dirs = tempDirs('master-key');
const open: SqliteStore[] = [];

afterEach(async () => {
  for (const store of open.splice(0)) await store.close().catch(() => undefined);
  await dirs.cleanup();
});

const MASTER = Buffer.from(
  '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f',
  'hex',
);
const OTHER_MASTER = Buffer.alloc(32, 0x77);
const PUBLIC_KEY = Buffer.from('30819d300d06092a864886f70d0101010500', 'hex');

async function openStore(file: string, masterKey?: Buffer): Promise<SqliteStore> {
  const store = await openSqliteStore(masterKey ? { path: file, masterKey } : { path: file });
  open.push(store);
  return store;
}

async function closeAll(): Promise<void> {
  for (const store of open.splice(0)) await store.close();
}

/** Every byte SQLite keeps for the database: the file and its -wal / -shm companions. */
async function databaseBytes(dir: string): Promise<Buffer> {
  const names = (await readdir(dir)).filter((name) => name.startsWith(DATABASE_FILE_NAME));
  return Buffer.concat(await Promise.all(names.map((name) => readFile(path.join(dir, name)))));
}

async function storedAesKeyColumn(file: string): Promise<Buffer> {
  const db = await AsyncDatabase.open(file, OPEN_READWRITE);
  try {
    const row = await db.get<{ AESKey: Buffer }>('SELECT AESKey FROM clients');
    if (!row) throw new Error('no client row');
    return row.AESKey;
  } finally {
    await db.close();
  }
}

async function setup(): Promise<{ dir: string; file: string }> {
  const dir = await dirs.make();
  return { dir, file: path.join(dir, DATABASE_FILE_NAME) };
}

describe('loadMasterKey', () => {
  const base64 = MASTER.toString('base64');

  it('reads 32 bytes of base64 from a file, trimming whitespace', async () => {
    const { dir } = await setup();
    const keyFile = path.join(dir, 'master.key');
    await writeFile(keyFile, `  ${base64}\n`, { mode: 0o600 });
    expect(loadMasterKey({ file: keyFile })).toEqual(MASTER);
  });

  it('reads the environment value, and prefers the file when both are given', async () => {
    expect(loadMasterKey({ env: `${base64}\n` })).toEqual(MASTER);
    const { dir } = await setup();
    const keyFile = path.join(dir, 'master.key');
    await writeFile(keyFile, OTHER_MASTER.toString('base64'));
    expect(loadMasterKey({ file: keyFile, env: base64 })).toEqual(OTHER_MASTER);
  });

  it('returns undefined when nothing is configured or the variable is empty', () => {
    expect(loadMasterKey({})).toBeUndefined();
    expect(loadMasterKey({ env: '' })).toBeUndefined();
    expect(loadMasterKey({ env: '  \n' })).toBeUndefined();
  });

  it.each([
    ['too short', Buffer.alloc(16, 1).toString('base64')],
    ['too long', Buffer.alloc(48, 1).toString('base64')],
    ['not base64', `${base64.slice(0, -4)}!!!!`],
    ['hex instead of base64', MASTER.toString('hex')],
  ])('rejects a key that is %s with MASTER_KEY, without echoing it', (_label, value) => {
    const error = (() => {
      try {
        loadMasterKey({ env: value });
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).code).toBe(StorageErrorCode.MASTER_KEY);
    expect((error as StorageError).message).not.toContain(value);
    expect((error as StorageError).message).not.toContain(value.slice(0, 12));
  });

  it('rejects a missing key file with MASTER_KEY', async () => {
    const { dir } = await setup();
    expect(() => loadMasterKey({ file: path.join(dir, 'absent.key') })).toThrow(
      expect.objectContaining({ code: StorageErrorCode.MASTER_KEY }),
    );
  });
});

describe('sealing', () => {
  it('round-trips, uses a fresh nonce per seal, and binds the value to its client id', () => {
    const aesKey = randomBytes(32);
    const first = sealAesKey(MASTER, idOf(1), aesKey);
    const second = sealAesKey(MASTER, idOf(1), aesKey);
    expect(first).toHaveLength(SEALED_AES_KEY_BYTES);
    expect(first[0]).toBe(SEALED_FORMAT_V1);
    expect(first.equals(second)).toBe(false);
    expect(openSealedAesKey(MASTER, idOf(1), first)).toEqual(aesKey);
    expect(() => openSealedAesKey(MASTER, idOf(2), first)).toThrow(
      expect.objectContaining({ code: StorageErrorCode.MASTER_KEY }),
    );
    const tampered = Buffer.from(first);
    tampered[20] = (tampered[20] as number) ^ 1;
    expect(() => openSealedAesKey(MASTER, idOf(1), tampered)).toThrow(
      expect.objectContaining({ code: StorageErrorCode.MASTER_KEY }),
    );
  });
});

describe('keys at rest in defensive.db', () => {
  it('leaves no AES key in the clear in the database files when a master key is set', async () => {
    const { dir, file } = await setup();
    const store = await openStore(file, MASTER);
    const keys = [randomBytes(32), randomBytes(32), randomBytes(32)];
    await store.registerClient(idOf(1), 'alice', 1);
    await store.setPublicKey(idOf(1), PUBLIC_KEY, keys[0] as Buffer, 2);
    await store.setAesKey(idOf(1), keys[1] as Buffer, 3);
    await store.registerClient(idOf(2), 'bob', 4);
    await store.setPublicKey(idOf(2), PUBLIC_KEY, keys[2] as Buffer, 5);
    expect((await store.findClientById(idOf(1)))?.aesKey).toEqual(keys[1]);

    // While open (pages in the WAL) and after close (checkpointed into the file).
    for (const phase of ['open', 'closed']) {
      const bytes = await databaseBytes(dir);
      for (const key of keys) {
        expect({ phase, found: bytes.includes(key) }).toEqual({ phase, found: false });
      }
      await closeAll();
    }
    const reopened = await openStore(file, MASTER);
    expect((await reopened.findClientByName('bob'))?.aesKey).toEqual(keys[2]);
  });

  it('reads rows stored in plain form and re-seals them on next use', async () => {
    const { dir, file } = await setup();
    const plainKey = randomBytes(32);
    const plain = await openStore(file);
    await plain.registerClient(idOf(1), 'alice', 1);
    await plain.setPublicKey(idOf(1), PUBLIC_KEY, plainKey, 2);
    await closeAll();
    expect(await storedAesKeyColumn(file)).toEqual(plainKey);

    const sealed = await openStore(file, MASTER);
    expect((await sealed.findClientById(idOf(1)))?.aesKey).toEqual(plainKey);
    await closeAll();
    const column = await storedAesKeyColumn(file);
    expect(column).toHaveLength(SEALED_AES_KEY_BYTES);
    expect(openSealedAesKey(MASTER, idOf(1), column)).toEqual(plainKey);
    expect((await databaseBytes(dir)).includes(plainKey)).toBe(false);
  });

  it('re-seals a plain row found by name, too', async () => {
    const { file } = await setup();
    const plainKey = randomBytes(32);
    const plain = await openStore(file);
    await plain.registerClient(idOf(1), 'alice', 1);
    await plain.setPublicKey(idOf(1), PUBLIC_KEY, plainKey, 2);
    await closeAll();
    const sealed = await openStore(file, MASTER);
    expect((await sealed.findClientByName('alice'))?.aesKey).toEqual(plainKey);
    await closeAll();
    expect(await storedAesKeyColumn(file)).toHaveLength(SEALED_AES_KEY_BYTES);
  });

  it('refuses a sealed row with a wrong master key, or without one, with MASTER_KEY', async () => {
    const { file } = await setup();
    const store = await openStore(file, MASTER);
    await store.registerClient(idOf(1), 'alice', 1);
    await store.setPublicKey(idOf(1), PUBLIC_KEY, randomBytes(32), 2);
    await closeAll();

    const wrong = await openStore(file, OTHER_MASTER);
    await expect(wrong.findClientById(idOf(1))).rejects.toMatchObject({
      code: StorageErrorCode.MASTER_KEY,
    });
    await expect(wrong.findClientByName('alice')).rejects.toMatchObject({
      code: StorageErrorCode.MASTER_KEY,
    });
    await closeAll();
    const none = await openStore(file);
    await expect(none.findClientById(idOf(1))).rejects.toMatchObject({
      code: StorageErrorCode.MASTER_KEY,
    });
    // A client without a key yet is still usable: only key material needs the master key.
    await none.registerClient(idOf(2), 'bob', 3);
    expect(await none.findClientById(idOf(2))).toMatchObject({ aesKey: null });
  });

  it('never puts the master key or an AES key into an error message', async () => {
    const { file } = await setup();
    const aesKey = randomBytes(32);
    const store = await openStore(file, MASTER);
    await store.registerClient(idOf(1), 'alice', 1);
    await store.setPublicKey(idOf(1), PUBLIC_KEY, aesKey, 2);
    await closeAll();
    const wrong = await openStore(file, OTHER_MASTER);
    const error = (await wrong.findClientById(idOf(1)).catch((err: unknown) => err)) as Error;
    for (const secret of [MASTER, OTHER_MASTER, aesKey]) {
      for (const encoding of ['hex', 'base64'] as const) {
        expect(error.message).not.toContain(secret.toString(encoding));
      }
    }
  });
});
