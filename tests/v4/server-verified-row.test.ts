/**
 * A v4 upload's row is written verified, in one durable write with both of its audit rows
 * (docs/protocol-v4.md §7): the SHA-256 was checked before the row was written, so there is no
 * moment, and no crash, that finds the row `received` after STORED. A failure of that write is
 * STORAGE and leaves neither a row nor the published bytes.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { RequestCode, ResponseCode, WireErrorCode, type Response } from '../../protocol/v4';
import { meterCatalog } from '../../server/metrics/metered';
import { ServerMetrics } from '../../server/metrics/metrics';
import { DATABASE_FILE_NAME, openSqliteStore } from '../../server/storage/sqlite';
import {
  StorageError,
  StorageErrorCode,
  type Catalog,
  type FileRecord,
} from '../../server/storage/types';
import { sha256, storedUploadFixture, uploadWhole } from './stored-upload';
import type { RawV4 } from './raw-v4';

/** The value of one sample line of a metrics exposition, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('v4: the row of an upload is written verified in one durable write', () => {
  const fx = storedUploadFixture('verified-row', { database: 'sqlite', storage: 'disk' });
  const start = (store?: Catalog): Promise<RawV4> => fx.start({ store });

  const upload = (peer: RawV4, fileName: string, data: Buffer): Promise<Response> =>
    uploadWhole(peer, fileName, data);

  async function rowOf(fileName: string): Promise<FileRecord | undefined> {
    return (await fx.backends.catalog.listFiles()).find((file) => file.fileName === fileName);
  }

  it('every committed state of the row is verified, and a reopened database finds it so after STORED', async () => {
    const catalog = fx.backends.catalog;
    // What a crash right after each catalog write would leave of the row.
    const committed: string[] = [];
    const putFile = catalog.putFile.bind(catalog);
    catalog.putFile = async (file, audit, options) => {
      await putFile(file, audit, options);
      const row = await catalog.findFile(file.clientId, file.fileName);
      committed.push(`putFile ${file.fileName} ${row?.status ?? 'none'}`);
    };
    const setFileStatus = catalog.setFileStatus.bind(catalog);
    catalog.setFileStatus = async (...args) => {
      const changed = await setFileStatus(...args);
      committed.push(`setFileStatus ${args[1]} ${args[2]}`);
      return changed;
    };
    const peer = await start();
    const data = randomBytes(20_000);
    const answer = await upload(peer, 'a.bin', data);
    expect(answer.code).toBe(ResponseCode.STORED);
    expect(committed).toEqual(['putFile a.bin verified']);
    expect(await rowOf('a.bin')).toMatchObject({ status: 'verified', verified: true });

    // Another connection to the file, as a restarted server would open it: the row is there,
    // verified, with no write of the server's still to come.
    const reopened = await openSqliteStore({
      path: join(fx.dir, DATABASE_FILE_NAME),
      readOnly: true,
    });
    try {
      const rows = await reopened.listFiles();
      expect(rows.map((row) => [row.fileName, row.status, row.size])).toEqual([
        ['a.bin', 'verified', data.length],
      ]);
    } finally {
      await reopened.close();
    }
  });

  it('writes both audit rows of the upload, file_stored then checksum_ok, and counts both', async () => {
    const metrics = new ServerMetrics();
    const peer = await start(meterCatalog(fx.backends.catalog, metrics));
    const data = randomBytes(3000);
    expect((await upload(peer, 'b.bin', data)).code).toBe(ResponseCode.STORED);
    const trail = (await fx.backends.catalog.listAudit()).filter(
      (row) => row.requestCode === RequestCode.UPLOAD_END,
    );
    expect(trail.map((row) => row.outcome)).toEqual(['file_stored', 'checksum_ok']);
    expect(trail[0]?.detail).toContain(`b.bin: ${data.length} bytes`);
    expect(trail[1]?.detail).toContain(`b.bin: sha256 ${sha256(data).toString('hex')}`);
    const [stored, checked] = trail;
    expect(stored?.id).toBeLessThan(checked?.id ?? 0);
    const text = await metrics.render();
    const code = RequestCode.UPLOAD_END;
    expect(sample(text, `sft_requests_total{code="${code}",result="file_stored"}`)).toBe(1);
    expect(sample(text, `sft_requests_total{code="${code}",result="checksum_ok"}`)).toBe(1);
  });

  it('answers STORAGE when the row of a replacement cannot be written: the replaced file is live again', async () => {
    const catalog = fx.backends.catalog;
    const peer = await start();
    const old = randomBytes(3000);
    expect((await upload(peer, 'r.bin', old)).code).toBe(ResponseCode.STORED);
    const before = await rowOf('r.bin');
    const putFile = catalog.putFile.bind(catalog);
    catalog.putFile = () =>
      Promise.reject(new StorageError(StorageErrorCode.DATABASE, 'injected: database is full'));
    const answer = await upload(peer, 'r.bin', randomBytes(5000));
    expect(answer.code === ResponseCode.ERROR ? answer.error : answer.code).toBe(
      WireErrorCode.STORAGE,
    );
    catalog.putFile = putFile;
    expect(await rowOf('r.bin')).toEqual(before);
    expect(before).toMatchObject({ status: 'verified', size: 3000 });
    const hex = before?.clientId.toString('hex') ?? '';
    const live = await fx.backends.bytes.read(`${hex}/r.bin`);
    expect(live === undefined ? undefined : await buffer(live)).toEqual(old);
    const versions = await catalog.listVersions({ fileName: 'r.bin' });
    expect(versions).toMatchObject([{ version: 1, size: 3000 }]);
  });

  it('answers STORAGE when the row cannot be written: no row, no audit row, no bytes', async () => {
    const catalog = fx.backends.catalog;
    catalog.putFile = () =>
      Promise.reject(new StorageError(StorageErrorCode.DATABASE, 'injected: database is full'));
    const peer = await start();
    const answer = await upload(peer, 'c.bin', randomBytes(4000));
    expect(answer.code).toBe(ResponseCode.ERROR);
    expect(answer.code === ResponseCode.ERROR ? answer.error : undefined).toBe(
      WireErrorCode.STORAGE,
    );
    expect(await rowOf('c.bin')).toBeUndefined();
    const outcomes = (await catalog.listAudit()).map((row) => row.outcome);
    expect(outcomes).not.toContain('file_stored');
    expect(outcomes).not.toContain('checksum_ok');
    const [client] = await catalog.listClients();
    const hex = client?.id.toString('hex') ?? '';
    expect(await fx.backends.bytes.read(`${hex}/c.bin`)).toBeUndefined();
  });
});
