/**
 * The one connection of the SQLite catalog as a queue of jobs: every operation runs alone on
 * it (a multi-statement transaction never interleaves with another session's statements), and
 * writes go through group commit (../group-commit.ts). Closing rejects later calls with CLOSED.
 */
import { GroupCommit, type WriteOptions } from '../group-commit';
import { closedError, StorageError, StorageErrorCode } from '../types';
import { SerialQueue, sqliteCode, type AsyncDatabase, type AsyncStatement } from './async';
import type { StatementName } from './rows';
import { SqliteTransactions, type StatementOf } from './transactions';

/**
 * Failures that concern one write alone: its own checks (no SQLite code), or a constraint
 * SQLite undoes for the failing statement only. Anything else fails the whole group.
 */
function isOwnFailure(err: unknown): boolean {
  const code = sqliteCode(err);
  return code === undefined || code === 'SQLITE_CONSTRAINT';
}

export abstract class SqliteJobs {
  protected readonly queue = new SerialQueue();
  protected readonly tx: SqliteTransactions;
  protected readonly statementOf: StatementOf = (name) => this.statement(name);
  protected closing: Promise<void> | undefined;
  private readonly group: GroupCommit;

  constructor(
    protected readonly db: AsyncDatabase,
    protected readonly statements: ReadonlyMap<StatementName, AsyncStatement>,
  ) {
    this.tx = new SqliteTransactions(db, this.statementOf);
    this.group = new GroupCommit({
      schedule: (job) => void this.queue.run(job),
      transaction: (body) => this.tx.transaction(body),
      savepoint: (body) => this.tx.savepoint(body),
      insertAudits: (entries) => this.tx.insertAudits(entries),
      isOwnFailure,
    });
  }

  protected statement(name: StatementName): AsyncStatement {
    const statement = this.statements.get(name);
    if (!statement) throw new StorageError(StorageErrorCode.DATABASE, `no statement ${name}`);
    return statement;
  }

  /** Runs `job` alone on the connection; rejects with CLOSED once close() began. */
  protected job<T>(job: () => Promise<T>): Promise<T> {
    if (this.closing) return Promise.reject(closedError());
    return this.queue.run(job);
  }

  /** Queues a write for the next group commit; resolves with its result once committed. */
  protected write<T>(body: () => Promise<T>, options: WriteOptions<T> = {}): Promise<T> {
    if (this.closing) return Promise.reject(closedError());
    return this.group.write(body, options);
  }

  /** Queues an audit row on its own for the next group commit. */
  protected writeAudit(entry: Parameters<GroupCommit['audit']>[0]): Promise<void> {
    if (this.closing) return Promise.reject(closedError());
    return this.group.audit(entry);
  }
}
