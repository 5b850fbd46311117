/**
 * Resumable v4 uploads shared by every instance (docs/protocol-v4.md §5.5): the bytes in
 * segment objects of the bucket (../s3/segments.ts), the record of each upload in the table
 * `v4_partials`. A client whose instance died reconnects through the load balancer, lands on
 * another instance, and continues from the durable offset there.
 *
 * - Data is buffered and written as one segment per `SEGMENT_BYTES` (or per checkpoint), then
 *   recorded: the row lists the segments in order and the durable offset they add up to.
 * - Optimistic ownership: opening a partial raises its generation, and every later change of
 *   the row names the generation it expects. An instance that lost the upload to another (its
 *   client reconnected elsewhere while it was still writing) fails its next write instead of
 *   interleaving bytes; its stray segment is removed, never listed.
 * - Segment names come from the client id, a SHA-256 of the file name and numbers, never from
 *   client text.
 */
import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import type { PartialKey, PartialStore, PartialUpload } from '../../session/v4/context';
import type { SegmentStore } from '../s3/segments';
import { StorageError, StorageErrorCode } from '../types';
import { run } from './database';

/** Bytes buffered before they are written as a segment: S3 requests stay large, memory bounded. */
export const SEGMENT_BYTES = 8 * 1024 * 1024;
const CLIENT_HEX = /^[0-9a-f]{32}$/;

interface PartialRow {
  client_id: Buffer;
  file_name: string;
  size: number;
  check_bytes: Buffer;
  durable: number;
  segments: string[];
  generation: number;
  updated_at: number;
}

function takenOver(fileName: string): StorageError {
  return new StorageError(
    StorageErrorCode.DATABASE,
    `the upload of ${JSON.stringify(fileName)} was resumed elsewhere`,
  );
}

class SharedPartial implements PartialUpload {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private durable: number;
  private segments: string[];
  /** Flushes run one after the other, in order. */
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly pool: Pool,
    private readonly store: SegmentStore,
    private readonly row: PartialRow,
    private readonly folder: string,
    private readonly now: () => number,
  ) {
    this.durable = row.durable;
    this.segments = [...row.segments];
  }

  get offset(): number {
    return this.row.durable;
  }

  async *contents(end: number): AsyncIterable<Buffer> {
    let left = end;
    for (const name of this.segments) {
      if (left <= 0) return;
      for await (const chunk of this.store.get(name)) {
        const part = chunk.length > left ? chunk.subarray(0, left) : chunk;
        left -= part.length;
        yield part;
        if (left <= 0) return;
      }
    }
    for (const chunk of this.buffered) {
      if (left <= 0) return;
      const part = chunk.length > left ? chunk.subarray(0, left) : chunk;
      left -= part.length;
      yield part;
    }
  }

  async write(data: Buffer): Promise<void> {
    this.buffered.push(Buffer.from(data));
    this.bufferedBytes += data.length;
    if (this.bufferedBytes >= SEGMENT_BYTES) await this.flush();
  }

  /** Writes what is buffered as the next segment and records it (in order with other flushes). */
  private flush(): Promise<void> {
    const next = this.flushing.then(() => this.flushNow());
    this.flushing = next.catch(() => undefined);
    return next;
  }

  private async flushNow(): Promise<void> {
    if (this.bufferedBytes === 0) return;
    const data = Buffer.concat(this.buffered);
    this.buffered = [];
    this.bufferedBytes = 0;
    const name = `${this.folder}/${this.row.generation}-${this.segments.length}`;
    await this.store.put(name, data);
    const result = await run(
      this.pool,
      'cannot record an upload segment',
      'UPDATE v4_partials SET segments = array_append(segments, $1), durable = durable + $2, ' +
        'updated_at = $3 WHERE client_id = $4 AND file_name = $5 AND generation = $6',
      [name, data.length, this.now(), this.row.client_id, this.row.file_name, this.row.generation],
    );
    if (result.rowCount !== 1) {
      await this.store.remove([name]).catch(() => undefined);
      throw takenOver(this.row.file_name);
    }
    this.segments.push(name);
    this.durable += data.length;
  }

  async checkpoint(): Promise<number> {
    await this.flush();
    return this.durable;
  }

  async close(): Promise<void> {
    await this.flush();
  }

  async remove(): Promise<void> {
    await this.flushing;
    this.buffered = [];
    this.bufferedBytes = 0;
    const result = await run(
      this.pool,
      'cannot remove an upload record',
      'DELETE FROM v4_partials WHERE client_id = $1 AND file_name = $2 AND generation = $3',
      [this.row.client_id, this.row.file_name, this.row.generation],
    );
    // Taken over: the segments listed are the new owner's now.
    if (result.rowCount === 1) await this.store.remove(this.segments);
  }
}

export function createSharedPartialStore(
  pool: Pool,
  store: SegmentStore,
  now: () => number,
): PartialStore {
  return {
    async open(key: PartialKey): Promise<PartialUpload> {
      if (!CLIENT_HEX.test(key.clientIdHex)) {
        throw new StorageError(StorageErrorCode.PATH_ESCAPE, 'client id is not 32 hex digits');
      }
      const clientId = Buffer.from(key.clientIdHex, 'hex');
      const folder = `${key.clientIdHex}/${createHash('sha256').update(key.fileName).digest('hex')}`;
      const { rows } = await run<PartialRow & Record<string, unknown>>(
        pool,
        'cannot resume an upload',
        'UPDATE v4_partials SET generation = generation + 1, updated_at = $3 ' +
          'WHERE client_id = $1 AND file_name = $2 RETURNING *',
        [clientId, key.fileName, now()],
      );
      const found = rows[0];
      if (
        found !== undefined &&
        key.fresh !== true &&
        found.size === key.size &&
        found.check_bytes.equals(key.check)
      ) {
        return new SharedPartial(pool, store, found, folder, now);
      }
      // Another upload of that name (or none): start over, dropping the old bytes.
      if (found !== undefined) await store.remove(found.segments).catch(() => undefined);
      const fresh = await run<PartialRow & Record<string, unknown>>(
        pool,
        'cannot start an upload record',
        'INSERT INTO v4_partials (client_id, file_name, size, check_bytes, durable, segments, ' +
          'generation, updated_at) VALUES ($1, $2, $3, $4, 0, $5, $6, $7) ' +
          'ON CONFLICT (client_id, file_name) DO UPDATE SET size = excluded.size, ' +
          'check_bytes = excluded.check_bytes, durable = 0, segments = excluded.segments, ' +
          'generation = v4_partials.generation + 1, updated_at = excluded.updated_at RETURNING *',
        [clientId, key.fileName, key.size, Buffer.from(key.check), [], 1, now()],
      );
      return new SharedPartial(pool, store, fresh.rows[0] as PartialRow, folder, now);
    },

    async sweep(olderThan: number): Promise<number> {
      const { rows } = await run<PartialRow & Record<string, unknown>>(
        pool,
        'cannot remove old uploads',
        'DELETE FROM v4_partials WHERE updated_at < $1 RETURNING *',
        [olderThan],
      );
      for (const row of rows) await store.remove(row.segments).catch(() => undefined);
      return rows.length;
    },
  };
}
