/**
 * Kept versions (docs/protocol.md §9: an upload never destroys a verified file) through the
 * FileVault over every backend in BACKENDS: a replaced verified file stays restorable byte for
 * byte, at most `keepVersions` are kept, a failed or given-up replacement leaves the previous
 * verified content restorable, and a restore is audited.
 */
import { cksum } from '../../../shared/cksum';
import type { FileVault } from '../../../server/storage/file-vault';
import { liveKey, versionKey } from '../../../server/storage/object-keys';
import type { AuditEntry } from '../../../server/storage/types';
import { idOf } from '../temp-dir';
import { BACKENDS, codeOf, readAll, useBackend, vaultOf, type BackendUnderTest } from './backends';

const T0 = 1_700_000_000_000;
const ID = idOf(7);
const HEX = ID.toString('hex');

/** An upload as the session stores it: bytes through the vault, then the row, then 1029. */
async function upload(
  backend: BackendUnderTest,
  vault: FileVault,
  name: string,
  data: Buffer,
  options: { verify?: boolean; at?: number } = {},
): Promise<void> {
  const sink = await vault.beginUpload(HEX, name);
  await sink.write(data);
  const { objectKey } = await sink.commit();
  const at = options.at ?? T0;
  await backend.catalog.putFile({
    clientId: ID,
    fileName: name,
    objectKey,
    size: data.length,
    cksum: cksum(data),
    updatedAt: at,
  });
  if (options.verify ?? true) await backend.catalog.setFileStatus(ID, name, 'verified', at);
}

async function live(backend: BackendUnderTest, name: string): Promise<string | undefined> {
  return (await readAll(await backend.bytes.read(liveKey(HEX, name))))?.toString();
}

async function kept(backend: BackendUnderTest, name: string): Promise<Array<[number, string]>> {
  const versions = await backend.catalog.listVersions({ clientId: ID, fileName: name });
  const out: Array<[number, string]> = [];
  for (const version of versions) {
    const bytes = await readAll(await backend.bytes.read(version.objectKey));
    out.push([version.version, bytes?.toString() ?? '<gone>']);
  }
  return out;
}

function restoredEntry(): AuditEntry {
  return {
    time: T0 + 99,
    remoteAddress: 'admin',
    clientId: ID,
    name: 'alice',
    requestCode: 0,
    outcome: 'file_restored',
    detail: 'a.txt',
  };
}

describe.each(BACKENDS)('kept versions: $name', (factory) => {
  const backend = useBackend(factory);
  let clock = T0;
  const now = (): number => (clock += 1);

  beforeEach(async () => {
    await backend().catalog.registerClient(ID, 'alice', T0);
  });

  it('a replaced verified file stays restorable byte for byte; the restore is audited', async () => {
    const b = backend();
    const vault = vaultOf(b, { now });
    await upload(b, vault, 'a.txt', Buffer.from('version one'));
    await upload(b, vault, 'a.txt', Buffer.from('version two'));
    expect(await live(b, 'a.txt')).toBe('version two');
    expect(await kept(b, 'a.txt')).toEqual([[1, 'version one']]);
    const [version] = await b.catalog.listVersions({ clientId: ID, fileName: 'a.txt' });
    expect(version).toMatchObject({
      objectKey: versionKey(HEX, 'a.txt', 1),
      size: 11,
      cksum: cksum(Buffer.from('version one')),
      status: 'verified',
    });

    const result = await vault.restore(ID, 'a.txt', { audit: restoredEntry() });
    expect(result.restored.version).toBe(1);
    expect(result.archived?.version).toBe(2);
    expect(await live(b, 'a.txt')).toBe('version one');
    expect(await b.catalog.findFile(ID, 'a.txt')).toMatchObject({
      status: 'verified',
      size: 11,
      cksum: cksum(Buffer.from('version one')),
      objectKey: liveKey(HEX, 'a.txt'),
    });
    expect(await kept(b, 'a.txt')).toEqual([
      [1, 'version one'],
      [2, 'version two'],
    ]);
    expect((await b.catalog.listAudit()).map((row) => [row.outcome, row.detail])).toEqual([
      ['file_restored', 'a.txt'],
    ]);
    // A chosen version: back to two.
    await vault.restore(ID, 'a.txt', { version: 2 });
    expect(await live(b, 'a.txt')).toBe('version two');
  });

  it('keeps nothing of a file that was never verified', async () => {
    const b = backend();
    const vault = vaultOf(b, { now });
    await upload(b, vault, 'a.txt', Buffer.from('unconfirmed'), { verify: false });
    await upload(b, vault, 'a.txt', Buffer.from('second'));
    expect(await kept(b, 'a.txt')).toEqual([]);
    expect(await codeOf(vault.restore(ID, 'a.txt'))).toBe('NOT_FOUND');
  });

  it('keeps at most keepVersions, dropping the oldest with their bytes', async () => {
    const b = backend();
    const vault = vaultOf(b, { keepVersions: 2, now });
    for (const n of [1, 2, 3, 4]) await upload(b, vault, 'a.txt', Buffer.from(`v${n}`));
    expect(await kept(b, 'a.txt')).toEqual([
      [2, 'v2'],
      [3, 'v3'],
    ]);
    expect(await b.bytes.read(versionKey(HEX, 'a.txt', 1))).toBeUndefined();
    expect(await codeOf(vault.restore(ID, 'a.txt', { version: 1 }))).toBe('NOT_FOUND');
  });

  it('with keepVersions 0 a replacement keeps nothing', async () => {
    const b = backend();
    const vault = vaultOf(b, { keepVersions: 0, now });
    await upload(b, vault, 'a.txt', Buffer.from('one'));
    await upload(b, vault, 'a.txt', Buffer.from('two'));
    expect(await kept(b, 'a.txt')).toEqual([]);
    expect(await live(b, 'a.txt')).toBe('two');
  });

  it('a replacement that fails before its commit leaves the verified file and row as they were', async () => {
    const b = backend();
    const vault = vaultOf(b, { now });
    await upload(b, vault, 'a.txt', Buffer.from('precious'));
    const before = await b.catalog.findFile(ID, 'a.txt');
    // Bad padding or a size mismatch: the upload is aborted before its commit.
    const sink = await vault.beginUpload(HEX, 'a.txt');
    await sink.write(Buffer.from('half of something else'));
    await sink.abort();
    expect(await live(b, 'a.txt')).toBe('precious');
    expect(await b.catalog.findFile(ID, 'a.txt')).toEqual(before);
    expect(await kept(b, 'a.txt')).toEqual([]);
    expect(await b.bytes.sweepIncomplete()).toBe(0);
  });

  it('a replacement given up with 1031 leaves the previous verified content restorable', async () => {
    const b = backend();
    const vault = vaultOf(b, { now });
    await upload(b, vault, 'a.txt', Buffer.from('precious'));
    await upload(b, vault, 'a.txt', Buffer.from('corrupted'), { verify: false });
    // 1031: the row is marked failed and the live bytes are removed (§5.5).
    await b.catalog.setFileStatus(ID, 'a.txt', 'failed', T0 + 5);
    await vault.remove(HEX, 'a.txt');
    expect(await live(b, 'a.txt')).toBeUndefined();
    const result = await vault.restore(ID, 'a.txt');
    // Nothing of the failed upload is kept: its bytes are gone.
    expect(result.archived).toBeUndefined();
    expect(await live(b, 'a.txt')).toBe('precious');
    expect(await b.catalog.findFile(ID, 'a.txt')).toMatchObject({ status: 'verified', size: 8 });
  });

  it('a replacement whose row could not be written leaves the previous content restorable', async () => {
    const b = backend();
    const vault = vaultOf(b, { now });
    await upload(b, vault, 'a.txt', Buffer.from('precious'));
    const sink = await vault.beginUpload(HEX, 'a.txt');
    await sink.write(Buffer.from('new'));
    await sink.commit();
    // The row write failed (no putFile): the session removes what the commit made visible.
    await vault.remove(HEX, 'a.txt');
    await vault.restore(ID, 'a.txt');
    expect(await live(b, 'a.txt')).toBe('precious');
  });

  it('unpublish after a failed row write puts the replaced verified file back; its version stays', async () => {
    const b = backend();
    const vault = vaultOf(b, { now });
    await upload(b, vault, 'a.txt', Buffer.from('precious'));
    const before = await b.catalog.findFile(ID, 'a.txt');
    const sink = await vault.beginUpload(HEX, 'a.txt');
    await sink.write(Buffer.from('a new content'));
    const published = await sink.commit();
    // No putFile: the row write failed, the old row is the live one.
    await published.unpublish();
    expect(await live(b, 'a.txt')).toBe('precious');
    expect(await b.catalog.findFile(ID, 'a.txt')).toEqual(before);
    expect(before).toMatchObject({ size: 8, cksum: cksum(Buffer.from('precious')) });
    expect(await kept(b, 'a.txt')).toEqual([[1, 'precious']]);
    // The next upload replaces it as usual.
    await upload(b, vault, 'a.txt', Buffer.from('later'));
    expect(await live(b, 'a.txt')).toBe('later');
  });

  it('unpublish removes the published bytes when they replaced nothing kept', async () => {
    const b = backend();
    const vault = vaultOf(b, { now });
    await upload(b, vault, 'kept.txt', Buffer.from('kept'));
    await upload(b, vault, 'unverified.txt', Buffer.from('unchecked'), { verify: false });
    for (const name of ['new.txt', 'unverified.txt']) {
      const sink = await vault.beginUpload(HEX, name);
      await sink.write(Buffer.from('published'));
      await (await sink.commit()).unpublish();
      expect(await live(b, name)).toBeUndefined();
      expect(await kept(b, name)).toEqual([]);
    }
    // An earlier replacement of another name is not what these take back.
    expect(await live(b, 'kept.txt')).toBe('kept');
  });

  it('with keepVersions 0, unpublish removes the published bytes', async () => {
    const b = backend();
    const vault = vaultOf(b, { keepVersions: 0, now });
    await upload(b, vault, 'a.txt', Buffer.from('one'));
    const sink = await vault.beginUpload(HEX, 'a.txt');
    await sink.write(Buffer.from('two'));
    await (await sink.commit()).unpublish();
    expect(await live(b, 'a.txt')).toBeUndefined();
  });

  it('removing a client removes its live files and versions, and nobody else’s', async () => {
    const b = backend();
    const vault = vaultOf(b, { now });
    await upload(b, vault, 'a.txt', Buffer.from('one'));
    await upload(b, vault, 'a.txt', Buffer.from('two'));
    await vault.removeClient(HEX);
    expect(await live(b, 'a.txt')).toBeUndefined();
    expect(await b.bytes.read(versionKey(HEX, 'a.txt', 1))).toBeUndefined();
  });
});
