/**
 * Group commit, for any database with transactions and savepoints: all writes (and audit rows)
 * queued while other jobs hold the connection go into the next transaction, so many sessions
 * at once share one durable commit instead of queueing one each. Every write still resolves
 * only after its commit.
 *
 * - A write alone runs without savepoints (a single statement commits by itself).
 * - In a group, a write of several statements (`atomic`) gets a savepoint, so its failure
 *   undoes it alone; a failure the driver says concerns one write alone fails that write only;
 *   anything else fails the whole group.
 * - The audit row of a write commits in the same transaction as the write, and only if the
 *   write succeeded and its result says the change happened: both, or neither.
 * - Audit rows on their own are inserted together with one statement per batch.
 */
import type { AuditEntry } from './types';

export type Outcome =
  { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: unknown };

/** What the engine needs from a database connection. */
export interface GroupCommitDriver {
  /** Runs `job` alone on the connection, after every job scheduled before it. */
  schedule(job: () => Promise<void>): void;
  /** Runs `body` in one transaction: commit if it resolves, roll back if it rejects. */
  transaction<T>(body: () => Promise<T>): Promise<T>;
  /**
   * Inside a transaction: runs `body` so that its failure undoes its own statements only.
   * Resolves with the body's outcome; rejects only when the undo itself failed.
   */
  savepoint(body: () => Promise<unknown>): Promise<Outcome>;
  /** Inserts audit rows (possibly none is never asked); one statement or a few. */
  insertAudits(entries: readonly AuditEntry[]): Promise<void>;
  /**
   * True when `err` undid the failing statement only (a constraint, a check of the write's own
   * code) and the transaction can go on; false when the whole transaction is in doubt.
   */
  isOwnFailure(err: unknown): boolean;
}

export interface WriteOptions<T> {
  /** True when the body runs several statements that must commit together. */
  readonly atomic?: boolean;
  /** Runs once the write is committed, before anything else uses the connection. */
  readonly committed?: (value: T) => void;
  /** The write's audit rows, written with it, in this order, when `when(result)` holds. */
  readonly audit?: {
    readonly entries: readonly AuditEntry[];
    readonly when: (value: T) => boolean;
  };
}

/** The write option that commits `audit` (if any) with a write whose result passes `when`. */
export function audited<T>(
  audit: AuditEntry | undefined,
  when: (value: T) => boolean,
): Pick<WriteOptions<T>, 'audit'> {
  return audit === undefined ? {} : { audit: { entries: [audit], when } };
}

interface PendingWrite {
  /** The write's statements; audit rows on their own have none (see `auditRow`). */
  readonly body: (() => Promise<unknown>) | undefined;
  readonly auditRow: AuditEntry | undefined;
  readonly options: WriteOptions<unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
}

export class GroupCommit {
  private pending: PendingWrite[] = [];
  private scheduled = false;

  constructor(private readonly driver: GroupCommitDriver) {}

  /** Queues a write for the next group commit; resolves with its result once committed. */
  write<T>(body: () => Promise<T>, options: WriteOptions<T> = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({
        body,
        auditRow: undefined,
        options: options as WriteOptions<unknown>,
        resolve: resolve as (value: unknown) => void,
        reject,
      });
      this.schedule();
    });
  }

  /** Queues an audit row on its own; resolves once committed. */
  audit(entry: AuditEntry): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({
        body: undefined,
        auditRow: entry,
        options: {},
        resolve: () => resolve(),
        reject,
      });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // The job takes every write queued until it starts.
    this.driver.schedule(() => this.commit());
  }

  private async commit(): Promise<void> {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = [];
    const writes = batch.filter((pending) => pending.body !== undefined);
    const audits = batch.filter((pending) => pending.body === undefined);
    const [only] = writes;
    if (only !== undefined && writes.length === 1 && audits.length === 0) {
      await this.commitAlone(only);
      return;
    }
    const results = new Map<PendingWrite, Outcome>();
    const group = async (): Promise<void> => {
      // Audit rows of writes that succeeded join the group's audit insert (same transaction).
      const rows: AuditEntry[] = [];
      for (const pending of writes) {
        const result = await this.runInGroup(pending);
        results.set(pending, result);
        const audit = pending.options.audit;
        if (result.ok && audit !== undefined && audit.when(result.value)) {
          rows.push(...audit.entries);
        }
      }
      for (const pending of audits) rows.push(pending.auditRow as AuditEntry);
      const audited = await this.insertAudits(rows);
      // The rows of writes cannot fail alone: their writes must not commit without them.
      if (!audited.ok && writes.some((pending) => pending.options.audit !== undefined)) {
        throw audited.error;
      }
      for (const pending of audits) results.set(pending, audited);
    };
    try {
      // Audit rows alone are one insert: atomic without a transaction of its own.
      if (writes.length === 0) await group();
      else await this.driver.transaction(group);
    } catch (err) {
      for (const pending of batch) pending.reject(err);
      return;
    }
    for (const pending of batch) {
      const result = results.get(pending) as Outcome;
      if (!result.ok) {
        pending.reject(result.error);
        continue;
      }
      pending.options.committed?.(result.value);
      pending.resolve(result.value);
    }
  }

  /** A write alone: no savepoints; a transaction only when it has several statements. */
  private async commitAlone(only: PendingWrite): Promise<void> {
    const run = only.body as () => Promise<unknown>;
    const audit = only.options.audit;
    const body =
      audit === undefined
        ? run
        : async (): Promise<unknown> => {
            const result = await run();
            if (audit.when(result)) await this.driver.insertAudits(audit.entries);
            return result;
          };
    let value: unknown;
    try {
      value = await (only.options.atomic === true || audit !== undefined
        ? this.driver.transaction(body)
        : body());
    } catch (err) {
      only.reject(err);
      return;
    }
    only.options.committed?.(value);
    only.resolve(value);
  }

  private async insertAudits(rows: readonly AuditEntry[]): Promise<Outcome> {
    if (rows.length === 0) return { ok: true, value: undefined };
    try {
      await this.driver.insertAudits(rows);
      return { ok: true, value: undefined };
    } catch (error) {
      if (this.driver.isOwnFailure(error)) return { ok: false, error };
      throw error;
    }
  }

  /** One write of a group; throws (failing the group) unless only its own work was undone. */
  private async runInGroup(pending: PendingWrite): Promise<Outcome> {
    const body = pending.body as () => Promise<unknown>;
    if (pending.options.atomic !== true) {
      try {
        return { ok: true, value: await body() };
      } catch (error) {
        if (this.driver.isOwnFailure(error)) return { ok: false, error };
        throw error;
      }
    }
    return this.driver.savepoint(body);
  }
}
