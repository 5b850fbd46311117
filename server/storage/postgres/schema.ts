/**
 * The PostgreSQL schema of the catalog and its migrations, versioned in `schema_version` (one
 * row per step applied). The tables hold what `defensive.db` holds (docs/protocol.md §7), in
 * PostgreSQL's types and lowercase names. Instances starting at once take an advisory lock, so
 * exactly one of them migrates and the others find the work done. A database newer than this
 * code is refused.
 */
import type { Pool } from 'pg';
import { StorageError, StorageErrorCode } from '../types';
import { inTransaction, run, type Queryable } from './database';

export const SCHEMA_VERSION = 5;
/** Advisory lock key of migrations (any constant unlikely to be used by others). */
const MIGRATION_LOCK = 0x5f7_0001;

const VERSION_1 = [
  `CREATE TABLE clients (
    id bytea PRIMARY KEY CHECK (length(id) = 16),
    name text NOT NULL UNIQUE,
    public_key bytea,
    last_seen bigint NOT NULL,
    aes_key bytea
  )`,
  `CREATE TABLE files (
    client_id bytea NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    file_name text NOT NULL,
    path_name text NOT NULL,
    verified boolean NOT NULL DEFAULT false,
    status text NOT NULL DEFAULT 'received' CHECK (status IN ('received', 'verified', 'failed')),
    size bigint NOT NULL DEFAULT 0,
    cksum bigint NOT NULL DEFAULT 0,
    updated_at bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (client_id, file_name)
  )`,
  `CREATE TABLE file_versions (
    client_id bytea NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    file_name text NOT NULL,
    version integer NOT NULL CHECK (version >= 1),
    object_key text NOT NULL,
    status text NOT NULL CHECK (status IN ('received', 'verified', 'failed')),
    size bigint NOT NULL,
    cksum bigint NOT NULL,
    updated_at bigint NOT NULL,
    archived_at bigint NOT NULL,
    PRIMARY KEY (client_id, file_name, version)
  )`,
  `CREATE TABLE auth_log (
    log_id bigserial PRIMARY KEY,
    time bigint NOT NULL,
    remote_address text NOT NULL,
    client_id bytea,
    name text,
    request_code integer NOT NULL,
    outcome text NOT NULL,
    detail text
  )`,
  'CREATE INDEX auth_log_time ON auth_log (time)',
];

/**
 * Version 2: the bindings of v4 client-certificate fingerprints to client ids
 * (docs/protocol-v4.md §2), shared by every instance like the clients they belong to.
 */
const VERSION_2 = [
  `CREATE TABLE v4_identities (
    fingerprint text PRIMARY KEY,
    client_id bytea NOT NULL UNIQUE CHECK (length(client_id) = 16),
    bound_at bigint NOT NULL,
    via text NOT NULL CHECK (via IN ('register', 'migrate'))
  )`,
];

/**
 * Version 3: resumable v4 uploads shared by instances (v4-partials.ts): the segments in the
 * bucket, in order, and the durable offset they add up to; `generation` names the owner.
 */
const VERSION_3 = [
  `CREATE TABLE v4_partials (
    client_id bytea NOT NULL CHECK (length(client_id) = 16),
    file_name text NOT NULL,
    size bigint NOT NULL,
    check_bytes bytea NOT NULL,
    durable bigint NOT NULL,
    segments text[] NOT NULL,
    generation bigint NOT NULL,
    updated_at bigint NOT NULL,
    PRIMARY KEY (client_id, file_name)
  )`,
];

/**
 * Version 4: `--quota` reservations of uploads in flight, per instance (quota-ledger.ts), so
 * every instance counts the others' uploads; rows of a dead instance expire.
 */
const VERSION_4 = [
  `CREATE TABLE quota_reservations (
    instance bytea NOT NULL,
    id bigint NOT NULL,
    client_id bytea NOT NULL,
    bytes bigint NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (instance, id)
  )`,
  'CREATE INDEX quota_reservations_expiry ON quota_reservations (expires_at)',
];

/**
 * Version 5: what a v4 upload verified (its SHA-256 and flags), committed with its file row
 * (docs/protocol-v4.md §7); NULL for rows written by v3 and for every older row.
 */
const VERSION_5 = [
  'ALTER TABLE files ADD COLUMN sha256 bytea CHECK (sha256 IS NULL OR length(sha256) = 32)',
  'ALTER TABLE files ADD COLUMN flags integer NOT NULL DEFAULT 0',
];

/** Step n brings the schema from version n to n + 1. */
const MIGRATIONS: ReadonlyArray<readonly string[]> = [
  VERSION_1,
  VERSION_2,
  VERSION_3,
  VERSION_4,
  VERSION_5,
];

function schemaError(message: string): StorageError {
  return new StorageError(StorageErrorCode.DATABASE, message);
}

export async function readSchemaVersion(db: Queryable): Promise<number> {
  const { rows } = await run<{ version: number | null }>(
    db,
    'cannot read the schema version',
    'SELECT max(version) AS version FROM schema_version',
  );
  return rows[0]?.version ?? 0;
}

/** Brings the schema to SCHEMA_VERSION (`now` stamps the steps); one transaction, serialized across instances. */
export async function migrate(pool: Pool, now: number): Promise<void> {
  await inTransaction(pool, async (client) => {
    await run(client, 'cannot lock for migration', 'SELECT pg_advisory_xact_lock($1)', [
      MIGRATION_LOCK,
    ]);
    await run(
      client,
      'cannot create schema_version',
      'CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, applied_at bigint NOT NULL)',
    );
    let version = await readSchemaVersion(client);
    if (version > SCHEMA_VERSION) {
      throw schemaError(
        `the database has schema version ${version}, newer than this program understands ` +
          `(${SCHEMA_VERSION}); use a newer sft-server`,
      );
    }
    while (version < SCHEMA_VERSION) {
      const step = MIGRATIONS[version];
      if (step === undefined) throw schemaError(`no migration from schema version ${version}`);
      for (const sql of step) await run(client, `migration to ${version + 1} failed`, sql);
      version += 1;
      await run(
        client,
        'cannot record the schema version',
        'INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)',
        [version, now],
      );
    }
  });
}
