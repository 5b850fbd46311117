/**
 * `--quota` across instances: reservations of uploads in flight on one instance count on the
 * others (after one refresh), are given back when the upload ends, and expire with an
 * instance that died without giving them back.
 */
import { Client } from 'pg';
import { openPostgres, type PostgresBackend } from '../../server/storage/postgres';
import { usePostgres } from '../helpers/postgres';

const pg = usePostgres();
const opened: PostgresBackend[] = [];
const CLIENT = 'cd'.repeat(16);
let clock = 1_000_000;

async function open(): Promise<PostgresBackend> {
  const backend = await openPostgres({ url: pg.url, now: () => clock });
  opened.push(backend);
  return backend;
}

afterAll(async () => {
  for (const backend of opened) await backend.close();
});

test('an upload in flight on one instance counts on the other; release and expiry', async () => {
  const [a, b] = [await open(), await open()];
  const release = a.quotaLedger.reserve(CLIENT, 600);
  expect(a.quotaLedger.reservedBy(CLIENT)).toBe(600);
  // Written asynchronously: B sees it after its next refresh.
  await new Promise((resolve) => setTimeout(resolve, 100));
  await b.quotaLedger.refresh();
  expect(b.quotaLedger.reservedBy(CLIENT)).toBe(600);
  const second = b.quotaLedger.reserve(CLIENT, 100);
  expect(b.quotaLedger.reservedBy(CLIENT)).toBe(700);

  release();
  await new Promise((resolve) => setTimeout(resolve, 100));
  await b.quotaLedger.refresh();
  expect(b.quotaLedger.reservedBy(CLIENT)).toBe(100);
  await a.quotaLedger.refresh();
  expect(a.quotaLedger.reservedBy(CLIENT)).toBe(100);
  second();

  // An instance that died: its rows stop counting once they expire.
  const db = new Client({ connectionString: pg.url });
  await db.connect();
  try {
    await db.query(
      'INSERT INTO quota_reservations (instance, id, client_id, bytes, expires_at) VALUES ($1, 1, $2, 5000, $3)',
      [Buffer.alloc(16, 9), Buffer.from(CLIENT, 'hex'), clock + 1000],
    );
  } finally {
    await db.end();
  }
  await a.quotaLedger.refresh();
  expect(a.quotaLedger.reservedBy(CLIENT)).toBe(5000);
  clock += 2000;
  await a.quotaLedger.refresh();
  expect(a.quotaLedger.reservedBy(CLIENT)).toBe(0);
});
