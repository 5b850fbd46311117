/**
 * Transactions of the SQLite catalog, as group-commit.ts drives them: BEGIN IMMEDIATE (the
 * write lock up front, so a transaction never fails half way for a lock), savepoints for writes
 * of several statements, and audit rows inserted with as few statements as possible.
 */
import type { Outcome } from '../group-commit';
import type { AuditEntry } from '../types';
import type { AsyncDatabase, AsyncStatement } from './async';
import {
  AUDIT_INSERT_COLUMNS,
  AUDIT_ROWS_PER_INSERT,
  auditParams,
  type StatementName,
} from './rows';

export type StatementOf = (name: StatementName) => AsyncStatement;

export class SqliteTransactions {
  constructor(
    private readonly db: AsyncDatabase,
    private readonly statement: StatementOf,
  ) {}

  // Control statements go through exec: one trip to the thread pool each, where run would
  // prepare a statement, step it and finalize it.

  async transaction<T>(body: () => Promise<T>): Promise<T> {
    await this.db.exec('BEGIN IMMEDIATE', 'cannot begin transaction');
    try {
      const result = await body();
      await this.db.exec('COMMIT', 'cannot commit transaction');
      return result;
    } catch (err) {
      await this.db.exec('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  async savepoint(body: () => Promise<unknown>): Promise<Outcome> {
    await this.db.exec('SAVEPOINT write', 'cannot begin savepoint');
    try {
      const value = await body();
      await this.db.exec('RELEASE write', 'cannot release savepoint');
      return { ok: true, value };
    } catch (error) {
      await this.db.exec('ROLLBACK TO write; RELEASE write');
      return { ok: false, error };
    }
  }

  /** Inserts audit rows with as few statements as possible. */
  async insertAudits(entries: readonly AuditEntry[]): Promise<void> {
    if (entries.length === 1) {
      await this.statement('auditOne').run(auditParams(entries[0] as AuditEntry));
      return;
    }
    for (let from = 0; from < entries.length; from += AUDIT_ROWS_PER_INSERT) {
      const rows = entries.slice(from, from + AUDIT_ROWS_PER_INSERT);
      const placeholders = rows.map(() => '(?, ?, ?, ?, ?, ?, ?)').join(', ');
      await this.db.run(
        `INSERT INTO auth_log (${AUDIT_INSERT_COLUMNS}) VALUES ${placeholders}`,
        rows.flatMap(auditParams),
        'cannot write the audit trail',
      );
    }
  }
}
