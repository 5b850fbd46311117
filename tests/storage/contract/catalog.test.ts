/**
 * The Catalog contract (server/storage/types.ts), the same for every backend in BACKENDS:
 * client and key records, file rows whose audit row commits with them, kept versions, audit.
 */
import type { AuditEntry, Catalog, NewFile } from '../../../server/storage/types';
import { aesKeyOf, idOf } from '../temp-dir';
import { BACKENDS, codeOf, useBackend } from './backends';

const PUBLIC_KEY = Buffer.from('30819d300d06092a864886f70d010101', 'hex');
const T0 = 1_700_000_000_000;

function entry(outcome: AuditEntry['outcome'], time: number, detail?: string): AuditEntry {
  return {
    time,
    remoteAddress: '127.0.0.1',
    clientId: idOf(1),
    name: 'alice',
    requestCode: 1028,
    outcome,
    ...(detail === undefined ? {} : { detail }),
  };
}

function file(name: string, size: number, at = T0, owner = idOf(1)): NewFile {
  return {
    clientId: owner,
    fileName: name,
    objectKey: `${owner.toString('hex')}/${name}`,
    size,
    cksum: size * 7,
    updatedAt: at,
  };
}

async function withClient(catalog: Catalog, byte = 1, name = 'alice'): Promise<void> {
  await catalog.registerClient(idOf(byte), name, T0);
  await catalog.setPublicKey(idOf(byte), PUBLIC_KEY, aesKeyOf(byte), T0);
}

describe.each(BACKENDS)('catalog contract: $name', (factory) => {
  const backend = useBackend(factory);

  it('registers, finds by id and name, refuses a taken name, replaces a keyless one', async () => {
    const { catalog } = backend();
    const first = await catalog.registerClient(idOf(1), 'alice', T0);
    expect(first).toMatchObject({ ok: true, client: { name: 'alice', publicKey: null } });
    expect((await catalog.findClientById(idOf(1)))?.name).toBe('alice');
    expect((await catalog.findClientByName('alice'))?.id.equals(idOf(1))).toBe(true);
    expect(await catalog.findClientById(idOf(9))).toBeUndefined();
    expect(await catalog.findClientByName('nobody')).toBeUndefined();

    // Keyless: a new registration of the name wins (§5.1), with its files gone.
    await catalog.putFile(file('a', 1));
    const again = await catalog.registerClient(idOf(2), 'alice', T0 + 1);
    expect(again.ok && again.replacedId?.equals(idOf(1))).toBe(true);
    expect(await catalog.findClientById(idOf(1))).toBeUndefined();
    expect(await catalog.findFile(idOf(1), 'a')).toBeUndefined();

    await catalog.setPublicKey(idOf(2), PUBLIC_KEY, aesKeyOf(2), T0 + 2);
    expect(await catalog.registerClient(idOf(3), 'alice', T0 + 3)).toEqual({
      ok: false,
      reason: 'name_taken',
    });
    expect((await catalog.listClients()).map((client) => client.name)).toEqual(['alice']);
  });

  it('sets the public key once and replaces the AES key; an unknown client is refused', async () => {
    const { catalog } = backend();
    await catalog.registerClient(idOf(1), 'alice', T0);
    expect(await catalog.setPublicKey(idOf(1), PUBLIC_KEY, aesKeyOf(1), T0 + 1)).toBe(true);
    expect(await catalog.setPublicKey(idOf(1), PUBLIC_KEY, aesKeyOf(2), T0 + 2)).toBe(false);
    expect(await catalog.setPublicKey(idOf(9), PUBLIC_KEY, aesKeyOf(2), T0 + 2)).toBe(false);
    expect((await catalog.findClientById(idOf(1)))?.aesKey).toEqual(aesKeyOf(1));
    await catalog.setAesKey(idOf(1), aesKeyOf(3), T0 + 3);
    const client = await catalog.findClientById(idOf(1));
    expect(client?.aesKey).toEqual(aesKeyOf(3));
    expect(client?.publicKey).toEqual(PUBLIC_KEY);
    expect(await codeOf(catalog.setAesKey(idOf(9), aesKeyOf(3), T0 + 3))).toBe('DATABASE');
  });

  it('registerClient writes its audit row with a registration, none with a refusal', async () => {
    const { catalog } = backend();
    const registered = (detail: string): AuditEntry => ({
      ...entry('registered', T0, detail),
      requestCode: 1025,
    });
    expect(await catalog.registerClient(idOf(1), 'alice', T0, registered('new'))).toMatchObject({
      ok: true,
    });
    expect((await catalog.findClientById(idOf(1)))?.name).toBe('alice');
    // A keyless name is replaced, its audit row committed with the replacement.
    const again = await catalog.registerClient(idOf(2), 'alice', T0 + 1, registered('replaced'));
    expect(again.ok && again.replacedId?.equals(idOf(1))).toBe(true);
    expect(await catalog.findClientById(idOf(1))).toBeUndefined();
    await catalog.setPublicKey(idOf(2), PUBLIC_KEY, aesKeyOf(2), T0 + 2);
    expect(await catalog.registerClient(idOf(3), 'alice', T0 + 3, registered('taken'))).toEqual({
      ok: false,
      reason: 'name_taken',
    });
    expect((await catalog.listAudit()).map((row) => row.detail)).toEqual(['new', 'replaced']);
  });

  it('registrations at once, one of a name registered among them, each with its audit row', async () => {
    const { catalog } = backend();
    const results = await Promise.all(
      ['a', 'b', 'a', 'c'].map((name, i) =>
        catalog.registerClient(idOf(i + 1), name, T0 + i, entry('registered', T0 + i, `${i}`)),
      ),
    );
    expect(results.map((result) => result.ok)).toEqual([true, true, true, true]);
    // The second 'a' replaced the first, keyless one (§5.1).
    const second = results[2];
    expect(second?.ok && second.replacedId?.equals(idOf(1))).toBe(true);
    expect((await catalog.findClientByName('a'))?.id.equals(idOf(3))).toBe(true);
    expect((await catalog.listClients()).map((client) => client.name)).toEqual(['a', 'b', 'c']);
    const details = (await catalog.listAudit()).map((row) => row.detail).sort();
    expect(details).toEqual(['0', '1', '2', '3']);
  });

  it('setPublicKey and setAesKey write their audit row with the key, none if nothing changed', async () => {
    const { catalog } = backend();
    await catalog.registerClient(idOf(1), 'alice', T0);
    const keySet = (detail: string): AuditEntry => ({ ...entry('key_set', T0, detail) });
    expect(await catalog.setPublicKey(idOf(1), PUBLIC_KEY, aesKeyOf(1), T0 + 1, keySet('1'))).toBe(
      true,
    );
    expect(await catalog.setPublicKey(idOf(1), PUBLIC_KEY, aesKeyOf(2), T0 + 2, keySet('2'))).toBe(
      false,
    );
    expect(await catalog.setPublicKey(idOf(9), PUBLIC_KEY, aesKeyOf(2), T0 + 2, keySet('9'))).toBe(
      false,
    );
    expect((await catalog.findClientById(idOf(1)))?.aesKey).toEqual(aesKeyOf(1));
    await catalog.setAesKey(idOf(1), aesKeyOf(3), T0 + 3, entry('reconnected', T0 + 3, '3'));
    const client = await catalog.findClientById(idOf(1));
    expect(client).toMatchObject({ aesKey: aesKeyOf(3), publicKey: PUBLIC_KEY, lastSeen: T0 + 3 });
    const unknown = catalog.setAesKey(idOf(9), aesKeyOf(3), T0 + 4, entry('reconnected', T0, '4'));
    expect(await codeOf(unknown)).toBe('DATABASE');
    expect((await catalog.listAudit()).map((row) => row.detail)).toEqual(['1', '3']);
  });

  it('touch raises LastSeen and never lowers it', async () => {
    const { catalog } = backend();
    await withClient(catalog);
    await catalog.touch(idOf(1), T0 + 100);
    await catalog.touch(idOf(1), T0 + 50);
    await catalog.flush();
    expect((await catalog.findClientById(idOf(1)))?.lastSeen).toBe(T0 + 100);
    const [summary] = await catalog.listClientSummaries();
    expect(summary).toMatchObject({ name: 'alice', hasPublicKey: true, lastSeen: T0 + 100 });
  });

  it('putFile writes the row and its audit row together, or neither', async () => {
    const { catalog } = backend();
    await withClient(catalog);
    await catalog.putFile(file('a.bin', 10), entry('file_stored', T0 + 1, 'a.bin'));
    expect(await catalog.findFile(idOf(1), 'a.bin')).toMatchObject({
      objectKey: `${idOf(1).toString('hex')}/a.bin`,
      status: 'received',
      verified: false,
      size: 10,
      cksum: 70,
      updatedAt: T0,
    });
    // No such client: the row is refused, and its audit row is not written either.
    const orphan = file('b.bin', 5, T0, idOf(9));
    expect(await codeOf(catalog.putFile(orphan, entry('file_stored', T0 + 2, 'b.bin')))).toBe(
      'DATABASE',
    );
    expect((await catalog.listAudit()).map((row) => row.detail)).toEqual(['a.bin']);
  });

  it('putFile verified writes the row verified with its audit row and the check after it, or none', async () => {
    const { catalog } = backend();
    await withClient(catalog);
    await catalog.putFile(file('a.bin', 1), entry('file_stored', T0, 'old a.bin'));
    // Same time for both rows: their order is the order written, not the clock's.
    const verified = { verified: { audit: entry('checksum_ok', T0 + 1, 'a.bin sha256') } };
    await catalog.putFile(
      file('a.bin', 10, T0 + 1),
      entry('file_stored', T0 + 1, 'a.bin'),
      verified,
    );
    expect(await catalog.findFile(idOf(1), 'a.bin')).toMatchObject({
      status: 'verified',
      verified: true,
      size: 10,
      cksum: 70,
      updatedAt: T0 + 1,
    });
    expect((await catalog.listFiles()).map((row) => row.status)).toEqual(['verified']);
    const trail = (await catalog.listAudit()).map((row) => `${row.outcome} ${row.detail ?? ''}`);
    expect(trail).toEqual([
      'file_stored old a.bin',
      'file_stored a.bin',
      'checksum_ok a.bin sha256',
    ]);

    // No such client: neither the row nor any of its audit rows.
    const orphan = file('b.bin', 5, T0 + 2, idOf(9));
    const refused = catalog.putFile(orphan, entry('file_stored', T0 + 2, 'b.bin'), {
      verified: { audit: entry('checksum_ok', T0 + 2, 'b.bin') },
    });
    expect(await codeOf(refused)).toBe('DATABASE');
    expect(await catalog.listAudit()).toHaveLength(3);
    expect(await catalog.findFile(idOf(9), 'b.bin')).toBeUndefined();

    // A later plain putFile of the name starts over as received.
    await catalog.putFile(file('a.bin', 2, T0 + 3));
    expect(await catalog.findFile(idOf(1), 'a.bin')).toMatchObject({ status: 'received' });
  });

  it('a row keeps what v4 verified (SHA-256, flags) until a row without it replaces it', async () => {
    const { catalog } = backend();
    await withClient(catalog);
    const sha256 = Buffer.alloc(32, 0xab);
    const v4 = { sha256, flags: 3 };
    await catalog.putFile({ ...file('a.bin', 10), v4 }, entry('file_stored', T0, 'a.bin'), {
      verified: { audit: entry('checksum_ok', T0, 'a.bin') },
    });
    sha256.fill(0); // the catalog keeps its own copy
    const expected = { sha256: Buffer.alloc(32, 0xab), flags: 3 };
    expect((await catalog.findFile(idOf(1), 'a.bin'))?.v4).toEqual(expected);
    expect((await catalog.listFiles())[0]?.v4).toEqual(expected);
    // A status change (the admin's migration marks rows so) leaves it.
    await catalog.setFileStatus(idOf(1), 'a.bin', 'verified', T0 + 1);
    expect((await catalog.findFile(idOf(1), 'a.bin'))?.v4).toEqual(expected);

    // A v3 upload's row replaces the file: nothing verified over v4 is left to vouch for it.
    await catalog.putFile(file('a.bin', 11, T0 + 2), entry('file_stored', T0 + 2, 'a.bin'));
    const replaced = await catalog.findFile(idOf(1), 'a.bin');
    expect(replaced).toMatchObject({ size: 11, status: 'received' });
    expect(replaced?.v4).toBeUndefined();
    await catalog.putFile(file('b.bin', 1, T0 + 3));
    expect((await catalog.listFiles()).map((row) => row.v4)).toEqual([undefined, undefined]);
  });

  it('putFile verified at once for many files: each pair of audit rows in its order', async () => {
    const { catalog } = backend();
    await withClient(catalog);
    const names = ['f1', 'f2', 'f3', 'f4', 'f5', 'f6'];
    await Promise.all(
      names.map((name, i) =>
        catalog.putFile(file(name, i + 1), entry('file_stored', T0, name), {
          verified: { audit: entry('checksum_ok', T0, name) },
        }),
      ),
    );
    const files = await catalog.listFiles();
    expect(files.map((row) => [row.fileName, row.status])).toEqual(
      names.map((name) => [name, 'verified']),
    );
    const trail = await catalog.listAudit();
    expect(trail).toHaveLength(names.length * 2);
    for (const name of names) {
      const rows = trail.filter((row) => row.detail === name).map((row) => row.outcome);
      expect(rows).toEqual(['file_stored', 'checksum_ok']);
    }
    // Verified without a row of its own: the check's row alone.
    await catalog.putFile(file('g', 1), undefined, {
      verified: { audit: entry('checksum_ok', T0 + 1, 'g') },
    });
    expect((await catalog.listAudit()).at(-1)).toMatchObject({
      outcome: 'checksum_ok',
      detail: 'g',
    });
    expect(await catalog.findFile(idOf(1), 'g')).toMatchObject({ status: 'verified' });
  });

  it('setFileStatus changes a row with its audit row; a missing row changes nothing', async () => {
    const { catalog } = backend();
    await withClient(catalog);
    await catalog.putFile(file('a', 1));
    expect(
      await catalog.setFileStatus(idOf(1), 'nope', 'verified', T0, entry('checksum_ok', T0)),
    ).toBe(false);
    expect(await catalog.listAudit()).toEqual([]);
    expect(
      await catalog.setFileStatus(idOf(1), 'a', 'verified', T0 + 5, entry('checksum_ok', T0 + 5)),
    ).toBe(true);
    expect(await catalog.findFile(idOf(1), 'a')).toMatchObject({
      status: 'verified',
      verified: true,
      updatedAt: T0 + 5,
    });
    expect((await catalog.listAudit()).map((row) => row.outcome)).toEqual(['checksum_ok']);
    // A new upload of the name starts over as received.
    await catalog.putFile(file('a', 2, T0 + 6));
    expect(await catalog.findFile(idOf(1), 'a')).toMatchObject({ status: 'received', size: 2 });
  });

  it('setFileStatus unlessFailed leaves a failed row and its audit row unwritten', async () => {
    const { catalog } = backend();
    await withClient(catalog);
    await catalog.putFile(file('a', 1));
    await catalog.putFile(file('b', 2));
    await catalog.setFileStatus(idOf(1), 'b', 'failed', T0);
    const unlessFailed = { unlessFailed: true };
    const ok = (at: number): AuditEntry => entry('checksum_ok', at);
    expect(await catalog.setFileStatus(idOf(1), 'b', 'verified', T0 + 1, ok(1), unlessFailed)).toBe(
      false,
    );
    expect(await catalog.setFileStatus(idOf(1), 'c', 'verified', T0 + 1, ok(1), unlessFailed)).toBe(
      false,
    );
    expect(await catalog.findFile(idOf(1), 'b')).toMatchObject({ status: 'failed', updatedAt: T0 });
    expect(await catalog.listAudit()).toEqual([]);
    expect(await catalog.setFileStatus(idOf(1), 'a', 'verified', T0 + 2, ok(2), unlessFailed)).toBe(
      true,
    );
    expect(await catalog.findFile(idOf(1), 'a')).toMatchObject({
      status: 'verified',
      verified: true,
      updatedAt: T0 + 2,
    });
    expect((await catalog.listAudit()).map((row) => row.time)).toEqual([2]);
  });

  it('storedBytes counts the live files of a client that did not fail', async () => {
    const { catalog } = backend();
    await withClient(catalog, 1, 'alice');
    await withClient(catalog, 2, 'bob');
    await catalog.putFile(file('a', 100));
    await catalog.putFile(file('b', 20));
    await catalog.putFile(file('c', 3, T0, idOf(2)));
    await catalog.setFileStatus(idOf(1), 'b', 'failed', T0);
    expect(await catalog.storedBytes(idOf(1))).toBe(100);
    expect(await catalog.storedBytes(idOf(2))).toBe(3);
    expect(await catalog.storedBytes(idOf(9))).toBe(0);
    expect((await catalog.listFiles()).map((row) => row.fileName)).toEqual(['a', 'b', 'c']);
    // One client's rows (a v4 LIST), failed ones included: the session leaves those out.
    expect((await catalog.listFiles(idOf(1))).map((row) => row.fileName)).toEqual(['a', 'b']);
    expect((await catalog.listFiles(idOf(2))).map((row) => row.fileName)).toEqual(['c']);
    expect(await catalog.listFiles(idOf(9))).toEqual([]);
  });

  it('lists the audit trail oldest first, from a time, or its newest entries', async () => {
    const { catalog } = backend();
    await Promise.all([
      catalog.audit(entry('registered', T0 + 2, 'second')),
      catalog.audit(entry('registered', T0 + 1, 'first')),
      catalog.audit(entry('registered', T0 + 3, 'third')),
    ]);
    const details = (rows: Array<{ detail?: string }>) => rows.map((row) => row.detail);
    expect(details(await catalog.listAudit())).toEqual(['first', 'second', 'third']);
    expect(details(await catalog.listAudit(T0 + 2))).toEqual(['second', 'third']);
    expect(details(await catalog.queryAudit({ limit: 1 }))).toEqual(['third']);
    const ids = (await catalog.listAudit()).map((row) => row.id);
    expect(new Set(ids).size).toBe(3);
  });

  it('keeps a verified row as a version, refuses a number twice, prunes the oldest', async () => {
    const { catalog } = backend();
    await withClient(catalog);
    const hex = idOf(1).toString('hex');
    const as = (version: number) => ({
      version,
      objectKey: `.versions/${hex}/a/${version}`,
      archivedAt: T0 + 1000 + version,
    });
    await catalog.putFile(file('a', 1));
    // Not verified: nothing to keep.
    expect(await catalog.archiveFile(idOf(1), 'a', as(1), 2)).toEqual({
      archived: undefined,
      pruned: [],
    });
    expect(await catalog.archiveFile(idOf(1), 'missing', as(1), 2)).toMatchObject({
      archived: undefined,
    });
    for (const version of [1, 2, 3]) {
      await catalog.putFile(file('a', version * 10, T0 + version));
      await catalog.setFileStatus(idOf(1), 'a', 'verified', T0 + version);
      const result = await catalog.archiveFile(idOf(1), 'a', as(version), 2);
      expect(result.archived).toMatchObject({ version, size: version * 10, status: 'verified' });
      expect(result.pruned.map((kept) => kept.version)).toEqual(version === 3 ? [1] : []);
    }
    expect(await codeOf(catalog.archiveFile(idOf(1), 'a', as(3), 2))).toBeDefined();
    const versions = await catalog.listVersions({ clientId: idOf(1), fileName: 'a' });
    expect(versions.map((kept) => [kept.version, kept.size, kept.objectKey])).toEqual([
      [2, 20, `.versions/${hex}/a/2`],
      [3, 30, `.versions/${hex}/a/3`],
    ]);
    expect(versions[0]).toMatchObject({ updatedAt: T0 + 2, archivedAt: T0 + 1002 });
    expect(await catalog.listVersions({ clientId: idOf(2) })).toEqual([]);
    expect(await catalog.listVersions()).toHaveLength(2);
  });

  it('restores a version as the live row, keeping the current one, with its audit row', async () => {
    const { catalog } = backend();
    await withClient(catalog);
    const hex = idOf(1).toString('hex');
    const as = (version: number) => ({
      version,
      objectKey: `.versions/${hex}/a/${version}`,
      archivedAt: T0 + 100 * version,
    });
    await catalog.putFile(file('a', 10, T0));
    await catalog.setFileStatus(idOf(1), 'a', 'verified', T0);
    await catalog.archiveFile(idOf(1), 'a', as(1), 3);
    await catalog.putFile(file('a', 20, T0 + 1));
    const live = `${hex}/a`;
    const options = { objectKey: live, current: as(2), keep: 3, now: T0 + 500 };
    expect(await catalog.restoreVersion(idOf(1), 'a', 7, options)).toBeUndefined();
    const result = await catalog.restoreVersion(idOf(1), 'a', 1, {
      ...options,
      audit: entry('file_restored', T0 + 500, 'a'),
    });
    expect(result?.archived).toMatchObject({ version: 2, size: 20, status: 'received' });
    expect(await catalog.findFile(idOf(1), 'a')).toMatchObject({
      objectKey: live,
      size: 10,
      status: 'verified',
      verified: true,
      updatedAt: T0 + 500,
    });
    const kept = await catalog.listVersions({ clientId: idOf(1), fileName: 'a' });
    expect(kept.map((version) => version.version)).toEqual([1, 2]);
    expect((await catalog.listAudit()).map((row) => row.outcome)).toEqual(['file_restored']);
  });

  it('a replaced keyless registration takes its versions with it', async () => {
    const { catalog } = backend();
    await catalog.registerClient(idOf(1), 'keyless', T0);
    await catalog.putFile(file('a', 1));
    await catalog.setFileStatus(idOf(1), 'a', 'verified', T0);
    const hex = idOf(1).toString('hex');
    await catalog.archiveFile(
      idOf(1),
      'a',
      { version: 1, objectKey: `.versions/${hex}/a/1`, archivedAt: T0 },
      3,
    );
    expect(await catalog.listVersions()).toHaveLength(1);
    await catalog.registerClient(idOf(2), 'keyless', T0 + 1);
    expect(await catalog.listVersions()).toEqual([]);
  });
});
