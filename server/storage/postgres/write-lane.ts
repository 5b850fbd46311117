/**
 * The writing side of the PostgreSQL catalog, as the group-commit driver (../group-commit.ts)
 * needs it: write jobs run one after the other, each group in one transaction on a connection
 * of its own, each write of a group in a savepoint. PostgreSQL aborts a whole transaction on
 * any error, so the savepoint is what keeps one write's failure its own. Reads do not pass
 * here: they run on the pool beside the writing transaction.
 */
import type { Pool, PoolClient } from 'pg';
import type { GroupCommitDriver, Outcome } from '../group-commit';
import { StorageError, StorageErrorCode, type AuditEntry } from '../types';
import { inTransaction, isConstraintViolation, run } from './database';
import { auditArrays, SQL } from './rows';

/** A failure of the write's own checks or constraints: the savepoint undid it alone. */
function isOwnFailure(err: unknown): boolean {
  if (err instanceof StorageError && err.cause === undefined) return true;
  return isConstraintViolation(err instanceof StorageError ? err.cause : err);
}

export class WriteLane {
  /** The end of the chain of write jobs: one transaction at a time. */
  private tail: Promise<void> = Promise.resolve();
  /** The connection of the transaction running now, for the write bodies in it. */
  private tx: PoolClient | undefined;
  /** Writes (savepoints) in the running transaction, for the batch-size metric. */
  private writesInTx = 0;

  constructor(
    private readonly pool: Pool,
    /** Writes per committed transaction (group-commit batch sizes), for metrics. */
    private readonly onBatch: ((size: number) => void) | undefined,
  ) {}

  get driver(): GroupCommitDriver {
    return {
      schedule: (job) => void this.schedule(job),
      transaction: (body) => this.transaction(body),
      savepoint: (body) => this.savepoint(body),
      insertAudits: (entries) => this.insertAudits(entries),
      isOwnFailure,
    };
  }

  /** Runs `job` after every write job scheduled before it. */
  schedule<T>(job: () => Promise<T>): Promise<T> {
    const result = this.tail.then(job);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  private async transaction<T>(body: () => Promise<T>): Promise<T> {
    this.writesInTx = 0;
    const result = await inTransaction(this.pool, async (client) => {
      this.tx = client;
      try {
        return await body();
      } finally {
        this.tx = undefined;
      }
    });
    // A write alone runs without a savepoint.
    this.onBatch?.(Math.max(1, this.writesInTx));
    return result;
  }

  /** The connection of the running transaction (write bodies run only inside one). */
  client(): PoolClient {
    if (this.tx === undefined) {
      throw new StorageError(StorageErrorCode.DATABASE, 'a write ran outside its transaction');
    }
    return this.tx;
  }

  private async savepoint(body: () => Promise<unknown>): Promise<Outcome> {
    const client = this.client();
    this.writesInTx += 1;
    await run(client, 'cannot begin savepoint', 'SAVEPOINT write');
    try {
      const value = await body();
      await run(client, 'cannot release savepoint', 'RELEASE SAVEPOINT write');
      return { ok: true, value };
    } catch (error) {
      await run(client, 'cannot roll back savepoint', 'ROLLBACK TO SAVEPOINT write');
      await run(client, 'cannot release savepoint', 'RELEASE SAVEPOINT write');
      return { ok: false, error };
    }
  }

  private async insertAudits(entries: readonly AuditEntry[]): Promise<void> {
    await run(
      this.tx ?? this.pool,
      'cannot write the audit trail',
      SQL.insertAudits,
      auditArrays(entries),
    );
  }
}
