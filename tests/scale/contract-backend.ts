/**
 * The PostgreSQL + S3 entry of the storage contract tests (tests/storage/contract): each test
 * gets an empty catalog (the test file's database, emptied) and a key prefix of its own in the
 * test file's bucket. Unfinished writes count as stale at once, as for a single server's sweep
 * at start.
 */
import { Client } from 'pg';
import { openPostgres } from '../../server/storage/postgres';
import { openS3ByteStore } from '../../server/storage/s3';
import type { ByteStore, Catalog } from '../../server/storage/types';
import { usePostgres } from '../helpers/postgres';
import { S3_TEST_CREDENTIALS, useS3 } from '../helpers/s3';

/** The shape of tests/storage/contract/backends.ts BackendFactory. */
export interface SharedBackendFactory {
  readonly name: string;
  open(): Promise<{ catalog: Catalog; bytes: ByteStore; close(): Promise<void> }>;
}

const TABLES = ['auth_log', 'file_versions', 'files', 'v4_identities', 'clients'];

async function emptyTables(url: string): Promise<void> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string }>(
      "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'",
    );
    const present = TABLES.filter((table) => rows.some((row) => row.name === table));
    if (present.length > 0) await client.query(`TRUNCATE ${present.join(', ')} RESTART IDENTITY`);
  } finally {
    await client.end();
  }
}

/** Registers the hooks that start (or reach) PostgreSQL and the S3 server for this file. */
export function postgresS3Backend(): SharedBackendFactory {
  const pg = usePostgres();
  const s3 = useS3();
  let serial = 0;
  return {
    name: 'postgres + s3',
    async open() {
      await emptyTables(pg.url);
      serial += 1;
      const catalog = await openPostgres({ url: pg.url, now: Date.now, touchFlushMs: 10 });
      const bytes = openS3ByteStore({
        url: `s3://${s3.bucket}/test-${serial}/`,
        endpoint: s3.endpoint,
        credentials: S3_TEST_CREDENTIALS,
        staleAfterMs: -1,
        now: Date.now,
      });
      return { catalog, bytes, close: () => catalog.close() };
    },
  };
}
