/**
 * The v4 fingerprint bindings (docs/protocol-v4.md §2, §5.2, §5.3) in PostgreSQL, for
 * instances sharing a database: a client registered over v4 on one instance is known by its
 * certificate on every other. The table's two unique keys make a fingerprint and a client bind
 * once across all instances, as the disk store's exclusive files do on one machine.
 */
import type { Pool } from 'pg';
import type { Logger } from '../../../shared/logger';
import type { V4Identity, V4Store } from '../../session/v4/context';
import { createPool, run } from './database';
import { migrate } from './schema';

interface IdentityRow {
  fingerprint: string;
  client_id: Buffer;
  bound_at: number;
  via: string;
}

const COLUMNS = 'fingerprint, client_id, bound_at, via';
/** Bindings are read once per v4 connection: a few connections suffice. */
const POOL_SIZE = 4;
const CONNECT_TIMEOUT_MS = 5_000;
const STATEMENT_TIMEOUT_MS = 30_000;

function toIdentity(row: IdentityRow): V4Identity {
  return {
    clientId: row.client_id,
    fingerprint: row.fingerprint,
    boundAt: row.bound_at,
    via: row.via === 'migrate' ? 'migrate' : 'register',
  };
}

class PostgresV4Store implements V4Store {
  constructor(private readonly pool: Pool) {}

  private async one(what: string, sql: string, params: unknown[]) {
    const { rows } = await run<IdentityRow & Record<string, unknown>>(this.pool, what, sql, params);
    return rows[0] === undefined ? undefined : toIdentity(rows[0]);
  }

  findByFingerprint(fingerprint: string): Promise<V4Identity | undefined> {
    return this.one(
      'cannot find a v4 binding',
      `SELECT ${COLUMNS} FROM v4_identities WHERE fingerprint = $1`,
      [fingerprint],
    );
  }

  findByClientId(clientId: Buffer): Promise<V4Identity | undefined> {
    return this.one(
      'cannot find a v4 binding',
      `SELECT ${COLUMNS} FROM v4_identities WHERE client_id = $1`,
      [Buffer.from(clientId)],
    );
  }

  async bind(identity: V4Identity): Promise<boolean> {
    const result = await run(
      this.pool,
      'cannot store a v4 binding',
      `INSERT INTO v4_identities (${COLUMNS}) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
      [identity.fingerprint, Buffer.from(identity.clientId), identity.boundAt, identity.via],
    );
    return result.rowCount === 1;
  }

  async unbind(fingerprint: string): Promise<void> {
    await run(
      this.pool,
      'cannot remove a v4 binding',
      'DELETE FROM v4_identities WHERE fingerprint = $1',
      [fingerprint],
    );
  }

  async listIdentities(): Promise<V4Identity[]> {
    const { rows } = await run<IdentityRow & Record<string, unknown>>(
      this.pool,
      'cannot list v4 bindings',
      `SELECT ${COLUMNS} FROM v4_identities ORDER BY bound_at, fingerprint`,
    );
    return rows.map(toIdentity);
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

/** Opens the bindings in the database of `url` (migrating it first, like the catalog). */
export async function openPostgresV4Store(options: {
  readonly url: string;
  readonly now: () => number;
  readonly logger?: Logger;
}): Promise<V4Store> {
  const pool = createPool({
    url: options.url,
    max: POOL_SIZE,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
    statementTimeoutMs: STATEMENT_TIMEOUT_MS,
    onIdleError: (err) =>
      options.logger?.warn({ err }, 'a PostgreSQL connection failed while idle'),
  });
  try {
    await migrate(pool, options.now());
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }
  return new PostgresV4Store(pool);
}
