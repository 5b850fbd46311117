/**
 * Per-file serialization across instances: the section of a file name (publish + row change,
 * or a status change) runs under a PostgreSQL advisory lock of that name, held on a connection
 * of a small pool of its own (so a section that needs the catalog's pool can never starve it).
 * Within one instance a KeyedLock queues sections first, so each instance waits on at most
 * one connection per file name. An instance that dies loses its connection, and PostgreSQL
 * releases its locks with it.
 */
import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import { KeyedLock } from '../keyed-lock';
import { checkout, run } from './database';

/** The advisory lock key of a file name: 64 bits of its SHA-256 (a collision only serializes). */
export function lockKeyOf(key: string): bigint {
  return createHash('sha256').update(`sft-file:${key}`).digest().readBigInt64BE(0);
}

export class AdvisoryFileLocks {
  private readonly local = new KeyedLock();

  constructor(private readonly pool: Pool) {}

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    return this.local.run(key, async () => {
      const taken = await checkout(this.pool, 'cannot connect to PostgreSQL for a file lock');
      const lock = lockKeyOf(key).toString();
      try {
        await run(
          taken.client,
          'cannot take the file lock',
          'SELECT pg_advisory_lock($1::bigint)',
          [lock],
        );
      } catch (err) {
        taken.release(err as Error);
        throw err;
      }
      let broken: Error | undefined;
      try {
        return await work();
      } finally {
        await run(
          taken.client,
          'cannot release the file lock',
          'SELECT pg_advisory_unlock($1::bigint)',
          [lock],
        ).catch((err: Error) => {
          // A connection that cannot unlock is dropped: PostgreSQL then releases the lock.
          broken = err;
        });
        taken.release(broken);
      }
    });
  }

  /** Closes the lock pool (after the sections running now end). */
  end(): Promise<void> {
    return this.pool.end();
  }
}
