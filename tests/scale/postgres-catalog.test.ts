/**
 * The PostgreSQL Catalog: the schema made and versioned on start, the records of types.ts
 * round-tripping, and what several instances sharing one database rely on: registrations
 * unique across instances, per-file locks held across instances, stored bytes counted from
 * every instance's writes, and AES keys sealed with the master key.
 */
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { sealAesKey } from '../../server/storage/master-key';
import {
  openPostgres,
  openPostgresV4Store,
  type PostgresBackend,
} from '../../server/storage/postgres';
import { SCHEMA_VERSION } from '../../server/storage/postgres/schema';
import type { AuditEntry } from '../../server/storage/types';
import { usePostgres } from '../helpers/postgres';
import { aesKeyOf, idOf } from '../storage/temp-dir';

const pg = usePostgres();
const opened: PostgresBackend[] = [];
let clock = 1_000_000;

async function open(
  extra: { masterKey?: Buffer; readOnly?: boolean; onBatch?: (size: number) => void } = {},
): Promise<PostgresBackend> {
  const backend = await openPostgres({ url: pg.url, now: () => clock, touchFlushMs: 20, ...extra });
  opened.push(backend);
  return backend;
}

async function sql<R extends Record<string, unknown>>(text: string, params: unknown[] = []) {
  const client = new Client({ connectionString: pg.url });
  await client.connect();
  try {
    return (await client.query<R>(text, params)).rows;
  } finally {
    await client.end();
  }
}

function audit(outcome: AuditEntry['outcome'], clientId: Buffer | null = null): AuditEntry {
  clock += 1;
  return {
    time: clock,
    remoteAddress: '127.0.0.1',
    clientId,
    name: null,
    requestCode: 1028,
    outcome,
  };
}

afterEach(async () => {
  for (const backend of opened.splice(0)) await backend.close();
});

describe('PostgreSQL catalog', () => {
  test('two instances starting at once migrate once; the version is recorded', async () => {
    await Promise.all([open(), open()]);
    const rows = await sql<{ version: number }>('SELECT version FROM schema_version ORDER BY 1');
    expect(rows.map((row) => row.version)).toEqual(
      Array.from({ length: SCHEMA_VERSION }, (_, n) => n + 1),
    );
  });

  test('a database newer than the code is refused', async () => {
    await open();
    await sql('INSERT INTO schema_version (version, applied_at) VALUES ($1, 0)', [
      SCHEMA_VERSION + 1,
    ]);
    try {
      await expect(open()).rejects.toMatchObject({ code: 'DATABASE' });
    } finally {
      await sql('DELETE FROM schema_version WHERE version = $1', [SCHEMA_VERSION + 1]);
    }
  });

  test('clients, keys and files round-trip; stored bytes count live files', async () => {
    const catalog = await open();
    const id = idOf(0x11);
    const registered = await catalog.registerClient(id, 'alice', 5);
    expect(registered).toMatchObject({ ok: true });
    expect(await catalog.setPublicKey(id, Buffer.from('spki'), aesKeyOf(1), 6)).toBe(true);
    expect(await catalog.setPublicKey(id, Buffer.from('other'), aesKeyOf(2), 7)).toBe(false);
    await catalog.setAesKey(id, aesKeyOf(3), 8);
    const found = await catalog.findClientByName('alice');
    expect(found?.aesKey).toEqual(aesKeyOf(3));
    expect(found?.publicKey).toEqual(Buffer.from('spki'));
    const hex = id.toString('hex');
    const file = {
      clientId: id,
      fileName: 'a.txt',
      objectKey: `${hex}/a.txt`,
      size: 100,
      cksum: 7,
      updatedAt: 9,
    };
    await catalog.putFile(file, audit('file_stored', id));
    await catalog.putFile({ ...file, fileName: 'b.txt', objectKey: `${hex}/b.txt`, size: 50 });
    expect(await catalog.setFileStatus(id, 'a.txt', 'verified', 10, audit('checksum_ok', id))).toBe(
      true,
    );
    expect(await catalog.setFileStatus(id, 'b.txt', 'failed', 10)).toBe(true);
    expect(await catalog.setFileStatus(id, 'none', 'failed', 10, audit('checksum_failed'))).toBe(
      false,
    );
    expect(await catalog.storedBytes(id)).toBe(100);
    expect(await catalog.findFile(id, 'a.txt')).toMatchObject({
      status: 'verified',
      verified: true,
      size: 100,
    });
    const outcomes = (await catalog.queryAudit({})).map((entry) => entry.outcome);
    expect(outcomes).toEqual(['file_stored', 'checksum_ok']);
    await expect(catalog.setAesKey(idOf(0x99), aesKeyOf(1), 1)).rejects.toMatchObject({
      code: 'DATABASE',
    });
  });

  test('a name is registered once across instances; a keyless record is replaced', async () => {
    const [a, b] = await Promise.all([open(), open()]);
    const results = await Promise.all([
      a.registerClient(idOf(0x21), 'bob', 1),
      b.registerClient(idOf(0x22), 'bob', 1),
    ]);
    // Either one lost the race (name_taken), or the later one replaced the keyless earlier one
    // (§5.1); never two rows of one name.
    const won = results.filter((result) => result.ok);
    if (won.length === 2) {
      const replaced = won.map((result) => (result.ok ? result.replacedId : undefined));
      expect(replaced.filter((id) => id !== undefined)).toHaveLength(1);
    } else {
      expect(won).toHaveLength(1);
    }
    const rows = await sql<{ n: number }>(
      "SELECT count(*)::int AS n FROM clients WHERE name = 'bob'",
    );
    expect(rows[0]?.n).toBe(1);
    // Keyless: a later registration takes the name over, on either instance.
    const again = await b.registerClient(idOf(0x23), 'bob', 2);
    expect(again).toMatchObject({ ok: true });
    await b.setPublicKey(idOf(0x23), Buffer.from('k'), aesKeyOf(1), 3);
    expect(await a.registerClient(idOf(0x24), 'bob', 4)).toEqual({
      ok: false,
      reason: 'name_taken',
    });
    expect((await a.findClientByName('bob'))?.id).toEqual(idOf(0x23));
  });

  test('writes of many sessions at once group-commit; one failing write fails alone', async () => {
    const batches: number[] = [];
    const catalog = await open({ onBatch: (size) => batches.push(size) });
    await catalog.registerClient(idOf(0x31), 'carol', 1);
    const writes = [];
    for (let n = 0; n < 40; n += 1) {
      writes.push(
        catalog.putFile(
          {
            clientId: idOf(0x31),
            fileName: `f${n}`,
            objectKey: `k${n}`,
            size: 1,
            cksum: 0,
            updatedAt: 1,
          },
          audit('file_stored', idOf(0x31)),
        ),
      );
    }
    // No client 0x32: the foreign key refuses this one row; the others commit.
    writes.push(
      catalog.putFile(
        { clientId: idOf(0x32), fileName: 'x', objectKey: 'x', size: 1, cksum: 0, updatedAt: 1 },
        audit('file_stored'),
      ),
    );
    const settled = await Promise.allSettled(writes);
    expect(settled.filter((result) => result.status === 'fulfilled')).toHaveLength(40);
    expect(settled[40]).toMatchObject({ status: 'rejected', reason: { code: 'DATABASE' } });
    expect(await catalog.storedBytes(idOf(0x31))).toBe(40);
    // The registration alone, then the 41 writes in far fewer transactions than writes.
    expect(batches[0]).toBe(1);
    expect(batches.slice(1).reduce((sum, size) => sum + size, 0)).toBe(41);
    expect(batches.length).toBeLessThan(20);
    expect(
      (await catalog.queryAudit({})).filter(
        (e) => e.outcome === 'file_stored' && e.clientId?.equals(idOf(0x31)),
      ),
    ).toHaveLength(40);
  });

  test('AES keys are sealed with the master key; plain rows are re-sealed on use', async () => {
    const masterKey = randomBytes(32);
    const catalog = await open({ masterKey });
    await catalog.registerClient(idOf(0x41), 'dave', 1);
    await catalog.setPublicKey(idOf(0x41), Buffer.from('k'), aesKeyOf(4), 2);
    const [row] = await sql<{ aes_key: Buffer }>('SELECT aes_key FROM clients WHERE id = $1', [
      idOf(0x41),
    ]);
    expect(row?.aes_key.length).toBe(61);
    expect(row?.aes_key.includes(aesKeyOf(4))).toBe(false);
    expect((await catalog.findClientById(idOf(0x41)))?.aesKey).toEqual(aesKeyOf(4));
    // Another master key cannot open it.
    const other = await open({ masterKey: randomBytes(32) });
    await expect(other.findClientById(idOf(0x41))).rejects.toMatchObject({
      code: 'MASTER_KEY',
    });
    await sql('UPDATE clients SET aes_key = $1 WHERE id = $2', [aesKeyOf(5), idOf(0x41)]);
    expect((await catalog.findClientById(idOf(0x41)))?.aesKey).toEqual(aesKeyOf(5));
    const [resealed] = await sql<{ aes_key: Buffer }>('SELECT aes_key FROM clients WHERE id = $1', [
      idOf(0x41),
    ]);
    expect(resealed?.aes_key).not.toEqual(aesKeyOf(5));
    expect(sealAesKey(masterKey, idOf(0x41), aesKeyOf(5)).length).toBe(resealed?.aes_key.length);
    expect((await catalog.listClientSummaries()).find((c) => c.name === 'dave')).toMatchObject({
      aesKeySealed: true,
    });
  });

  test('versions: archive, prune and restore', async () => {
    const catalog = await open();
    const id = idOf(0x51);
    await catalog.registerClient(id, 'erin', 1);
    const base = {
      clientId: id,
      fileName: 'v.txt',
      objectKey: 'live',
      size: 10,
      cksum: 1,
      updatedAt: 1,
    };
    await catalog.putFile(base);
    await catalog.setFileStatus(id, 'v.txt', 'verified', 2);
    for (let n = 1; n <= 3; n += 1) {
      const result = await catalog.archiveFile(
        id,
        'v.txt',
        { version: n, objectKey: `v${n}`, archivedAt: 10 + n },
        2,
      );
      expect(result.archived?.version).toBe(n);
      expect(result.pruned.map((v) => v.version)).toEqual(n === 3 ? [1] : []);
    }
    expect((await catalog.listVersions({ clientId: id })).map((v) => v.version)).toEqual([2, 3]);
    const restored = await catalog.restoreVersion(id, 'v.txt', 2, {
      objectKey: 'live',
      current: { version: 4, objectKey: 'v4', archivedAt: 20 },
      keep: 3,
      now: 21,
      audit: audit('file_restored', id),
    });
    expect(restored?.archived?.version).toBe(4);
    expect(
      await catalog.restoreVersion(id, 'v.txt', 99, { objectKey: 'live', keep: 3, now: 22 }),
    ).toBeUndefined();
    expect(
      (await catalog.listAudit()).filter((e) => e.clientId?.equals(id)).map((e) => e.outcome),
    ).toEqual(['file_restored']);
  });

  test('LastSeen is written behind and visible to other instances after the flush', async () => {
    const [a, b] = await Promise.all([open(), open()]);
    await a.registerClient(idOf(0x61), 'frank', 1);
    await a.touch(idOf(0x61), 500);
    expect((await a.findClientById(idOf(0x61)))?.lastSeen).toBe(500);
    await a.flush();
    expect((await b.findClientById(idOf(0x61)))?.lastSeen).toBe(500);
  });

  test('file locks serialize one file name across instances, not different names', async () => {
    const [a, b] = await Promise.all([open(), open()]);
    const events: string[] = [];
    let releaseFirst!: () => void;
    const firstHolds = new Promise<void>((resolve) => (releaseFirst = resolve));
    const first = a.fileLocks.run('k/one', async () => {
      events.push('a start');
      await firstHolds;
      events.push('a end');
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const second = b.fileLocks.run('k/one', async () => {
      events.push('b start');
    });
    const other = b.fileLocks.run('k/two', async () => {
      events.push('other');
    });
    await other;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(events).toEqual(['a start', 'other']);
    releaseFirst();
    await Promise.all([first, second]);
    expect(events).toEqual(['a start', 'other', 'a end', 'b start']);
  });

  test('v4 bindings: a fingerprint and a client bind once across instances', async () => {
    const [one, two] = await Promise.all([
      openPostgresV4Store({ url: pg.url, now: () => clock }),
      openPostgresV4Store({ url: pg.url, now: () => clock }),
    ]);
    try {
      const identity = {
        clientId: idOf(0x71),
        fingerprint: 'SHA256:aa',
        boundAt: 5,
        via: 'register' as const,
      };
      const results = await Promise.all([
        one.bind(identity),
        two.bind({ ...identity, boundAt: 6 }),
      ]);
      expect(results.sort()).toEqual([false, true]);
      expect(await two.bind({ ...identity, fingerprint: 'SHA256:bb' })).toBe(false);
      expect(await two.findByFingerprint('SHA256:aa')).toMatchObject({
        clientId: idOf(0x71),
        via: 'register',
      });
      expect((await one.findByClientId(idOf(0x71)))?.fingerprint).toBe('SHA256:aa');
      await one.unbind('SHA256:aa');
      expect(await two.findByFingerprint('SHA256:aa')).toBeUndefined();
      expect(await two.bind({ ...identity, fingerprint: 'SHA256:cc', via: 'migrate' })).toBe(true);
      expect((await one.listIdentities()).map((i) => i.fingerprint)).toEqual(['SHA256:cc']);
    } finally {
      await one.close();
      await two.close();
    }
  });

  test('a closed catalog refuses work with CLOSED; an unreachable server is DATABASE', async () => {
    const backend = await openPostgres({ url: pg.url, now: () => clock });
    await backend.close();
    await expect(backend.findClientById(idOf(1))).rejects.toMatchObject({ code: 'CLOSED' });
    const url = new URL(pg.url);
    url.port = '1';
    await expect(openPostgres({ url: url.toString(), now: () => clock })).rejects.toMatchObject({
      code: 'DATABASE',
    });
  });
});
