/**
 * FileCatalog.deleteFile (docs/protocol-v4.md §5.7), the same for every backend in BACKENDS:
 * the row goes with its audit row in one change, other clients' rows and kept versions stay,
 * and a missing row is false with no audit row.
 */
import type { AuditEntry } from '../../../server/storage/types';
import { idOf } from '../temp-dir';
import { BACKENDS, useBackend } from './backends';

const T0 = 1_700_000_000_000;

function deleted(id: Buffer, name: string): AuditEntry {
  return {
    time: T0 + 5,
    remoteAddress: '127.0.0.1',
    clientId: id,
    name: 'owner',
    requestCode: 0x23,
    outcome: 'file_deleted',
    detail: `${name}: 3 bytes`,
  };
}

describe.each(BACKENDS)('deleteFile contract: $name', (factory) => {
  const backend = useBackend(factory);

  it('removes only that client’s row, audited with it; a missing row is false and unaudited', async () => {
    const { catalog } = backend();
    for (const byte of [1, 2]) {
      await catalog.registerClient(idOf(byte), `c${byte}`, T0);
      await catalog.putFile({
        clientId: idOf(byte),
        fileName: 'same.txt',
        objectKey: `${idOf(byte).toString('hex')}/same.txt`,
        size: 3,
        cksum: 7,
        updatedAt: T0,
      });
    }
    const before = (await catalog.listAudit()).length;
    expect(await catalog.deleteFile(idOf(1), 'same.txt', deleted(idOf(1), 'same.txt'))).toBe(true);
    expect(await catalog.findFile(idOf(1), 'same.txt')).toBeUndefined();
    expect((await catalog.findFile(idOf(2), 'same.txt'))?.size).toBe(3);
    expect(await catalog.storedBytes(idOf(1))).toBe(0);
    const audit = await catalog.listAudit();
    expect(audit.length).toBe(before + 1);
    expect(audit[audit.length - 1]).toMatchObject({ outcome: 'file_deleted', requestCode: 0x23 });

    expect(await catalog.deleteFile(idOf(1), 'same.txt', deleted(idOf(1), 'same.txt'))).toBe(false);
    expect(await catalog.deleteFile(idOf(3), 'none', deleted(idOf(3), 'none'))).toBe(false);
    expect((await catalog.listAudit()).length).toBe(before + 1);
  });
});
