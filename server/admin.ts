/**
 * `sft-server admin clients|files|audit`: read `defensive.db` and print what a person
 * needs to see without the sqlite3 shell. Opens the store read-only (no schema change, no
 * write, no key re-sealing) so it is safe next to a running server (WAL readers never block).
 * Key material is never read out: clients show only whether they have keys.
 */
import * as path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { ExitCode } from '../shared/exit-codes';
import { escapeControlCharacters } from '../shared/validators';
import { DATABASE_FILE_NAME, openSqliteStore, type SqliteStore } from './storage/sqlite-store';
import type { AuditEntry, FileRecord } from './storage/types';
import { StorageError } from './storage/types';

export const ADMIN_SUBJECTS = ['clients', 'files', 'audit'] as const;
export type AdminSubject = (typeof ADMIN_SUBJECTS)[number];

export interface AdminOptions {
  readonly what: AdminSubject;
  /** The server's data directory (holds defensive.db). */
  readonly dataDir: string;
  /** ISO time, or relative to now: `30s`, `15m`, `1h`, `2d`, `1w`. */
  readonly since?: string;
  /** Audit only: the newest N entries (after `since`). */
  readonly limit?: number;
  readonly json?: boolean;
}

export interface AdminIo {
  readonly out: NodeJS.WritableStream;
  readonly err: NodeJS.WritableStream;
  /** The clock for relative `--since` (injected in tests). */
  readonly now: () => number;
  /** Receives the exit code of a command run through yargs; default sets process.exitCode. */
  readonly setExitCode: (code: number) => void;
}

/** The shared table's codes under the names admin's callers use. */
export const EXIT_OK = ExitCode.OK;
export const EXIT_FAILURE = ExitCode.FAILURE;
export const EXIT_USAGE = ExitCode.USAGE;

const UNIT_MS: Readonly<Record<string, number>> = {
  s: 1000,
  m: 60 * 1000,
  h: 60 * 60 * 1000,
  d: 24 * 60 * 60 * 1000,
  w: 7 * 24 * 60 * 60 * 1000,
};
const RELATIVE = /^(\d+)\s*([smhdw])$/;

export class AdminUsageError extends Error {
  override readonly name = 'AdminUsageError';
}

/** `--since` as milliseconds since the epoch. */
export function parseSince(text: string, now: number): number {
  const trimmed = text.trim();
  const relative = RELATIVE.exec(trimmed);
  if (relative) {
    const [, amount, unit] = relative;
    return now - Number(amount) * (UNIT_MS[unit as string] as number);
  }
  // Date.parse also takes loose formats; insist on something that starts like ISO 8601.
  const time = /^\d{4}-\d{2}-\d{2}/.test(trimmed) ? Date.parse(trimmed) : Number.NaN;
  if (Number.isNaN(time)) {
    throw new AdminUsageError(
      `--since ${JSON.stringify(text)}: give an ISO time (2024-05-01T12:00:00Z) or an age ` +
        'like 30s, 15m, 1h, 2d, 1w',
    );
  }
  return time;
}

/**
 * Makes text safe for a terminal: names and details come from the network, and a control
 * character (an ANSI escape) must not reach the admin's terminal as such.
 */
export function printable(text: string): string {
  return escapeControlCharacters(text);
}

function iso(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? String(ms) : date.toISOString();
}

function hexOrDash(id: Buffer | null): string {
  return id ? id.toString('hex') : '-';
}

/** Left-aligned columns separated by two spaces; numbers right-aligned. */
export function formatTable(
  headers: readonly string[],
  rows: ReadonlyArray<ReadonlyArray<string | number>>,
): string {
  const cells = rows.map((row) =>
    row.map((cell) => (typeof cell === 'number' ? String(cell) : printable(cell))),
  );
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...cells.map((row) => (row[column] ?? '').length)),
  );
  const numeric = headers.map((_, column) => rows.every((row) => typeof row[column] === 'number'));
  const line = (row: readonly string[]): string =>
    row
      .map((cell, column) => {
        const width = widths[column] ?? 0;
        const last = column === row.length - 1;
        if (numeric[column] && rows.length > 0) return cell.padStart(width);
        return last ? cell : cell.padEnd(width);
      })
      .join('  ')
      .trimEnd();
  return [line([...headers]), ...cells.map(line)].join('\n') + '\n';
}

interface Listing {
  readonly json: unknown[];
  readonly headers: readonly string[];
  readonly rows: ReadonlyArray<ReadonlyArray<string | number>>;
  /** Singular and plural, for the count line. */
  readonly noun: readonly [string, string];
}

async function listClients(store: SqliteStore, since: number | undefined): Promise<Listing> {
  const clients = (await store.listClientSummaries()).filter(
    (client) => since === undefined || client.lastSeen >= since,
  );
  return {
    noun: ['client', 'clients'],
    json: clients.map((client) => ({
      id: client.id.toString('hex'),
      name: client.name,
      hasPublicKey: client.hasPublicKey,
      hasAesKey: client.hasAesKey,
      aesKeyEncrypted: client.aesKeySealed,
      lastSeen: iso(client.lastSeen),
    })),
    headers: ['CLIENT ID', 'NAME', 'PUBLIC KEY', 'AES KEY', 'LAST SEEN'],
    rows: clients.map((client) => [
      client.id.toString('hex'),
      client.name,
      client.hasPublicKey ? 'yes' : 'no',
      client.hasAesKey ? (client.aesKeySealed ? 'encrypted' : 'plain') : 'no',
      iso(client.lastSeen),
    ]),
  };
}

async function listFiles(store: SqliteStore, since: number | undefined): Promise<Listing> {
  const owners = new Map(
    (await store.listClientSummaries()).map((client) => [client.id.toString('hex'), client.name]),
  );
  const files = (await store.listFiles()).filter(
    (file: FileRecord) => since === undefined || file.updatedAt >= since,
  );
  const ownerName = (file: FileRecord): string => owners.get(file.clientId.toString('hex')) ?? '';
  return {
    noun: ['file', 'files'],
    json: files.map((file) => ({
      clientId: file.clientId.toString('hex'),
      owner: ownerName(file),
      fileName: file.fileName,
      pathName: file.pathName,
      size: file.size,
      cksum: file.cksum,
      status: file.status,
      verified: file.verified,
      updatedAt: iso(file.updatedAt),
    })),
    headers: ['OWNER ID', 'OWNER', 'FILE', 'PATH', 'SIZE', 'CKSUM', 'STATUS', 'UPDATED'],
    rows: files.map((file) => [
      file.clientId.toString('hex'),
      ownerName(file),
      file.fileName,
      file.pathName,
      file.size,
      file.cksum,
      file.status,
      iso(file.updatedAt),
    ]),
  };
}

async function listAudit(
  store: SqliteStore,
  since: number | undefined,
  limit: number | undefined,
): Promise<Listing> {
  const query: { since?: number; limit?: number } = {};
  if (since !== undefined) query.since = since;
  if (limit !== undefined) query.limit = limit;
  const entries = await store.queryAudit(query);
  return {
    noun: ['audit entry', 'audit entries'],
    json: entries.map((entry: AuditEntry & { id: number }) => ({
      id: entry.id,
      time: iso(entry.time),
      remoteAddress: entry.remoteAddress,
      clientId: entry.clientId ? entry.clientId.toString('hex') : null,
      name: entry.name,
      requestCode: entry.requestCode,
      outcome: entry.outcome,
      detail: entry.detail ?? null,
    })),
    headers: ['TIME', 'REMOTE', 'CLIENT ID', 'NAME', 'CODE', 'OUTCOME', 'DETAIL'],
    rows: entries.map((entry) => [
      iso(entry.time),
      entry.remoteAddress,
      hexOrDash(entry.clientId),
      entry.name ?? '-',
      entry.requestCode,
      entry.outcome,
      entry.detail ?? '',
    ]),
  };
}

function write(stream: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise((resolve) => {
    if (stream.write(text)) resolve();
    else stream.once('drain', () => resolve());
  });
}

/** Runs one admin listing; returns the exit code. Errors go to `io.err`, never a stack. */
export async function runAdmin(
  options: AdminOptions,
  out: NodeJS.WritableStream,
  io: Partial<Omit<AdminIo, 'out'>> = {},
): Promise<number> {
  const err = io.err ?? process.stderr;
  const now = io.now ?? Date.now;
  let since: number | undefined;
  try {
    since = options.since === undefined ? undefined : parseSince(options.since, now());
    if (options.limit !== undefined && !(Number.isInteger(options.limit) && options.limit >= 0)) {
      throw new AdminUsageError('--limit must be a whole number of entries');
    }
  } catch (error) {
    await write(err, `sft-server admin: ${(error as Error).message}\n`);
    return EXIT_USAGE;
  }
  let store: SqliteStore | undefined;
  try {
    store = await openSqliteStore({
      path: path.join(path.resolve(options.dataDir), DATABASE_FILE_NAME),
      readOnly: true,
      quickCheck: false,
    });
    let listing: Listing;
    switch (options.what) {
      case 'clients':
        listing = await listClients(store, since);
        break;
      case 'files':
        listing = await listFiles(store, since);
        break;
      case 'audit':
        listing = await listAudit(store, since, options.limit);
        break;
      default: {
        const never: never = options.what;
        throw new AdminUsageError(`unknown listing ${String(never)}`);
      }
    }
    if (options.json) {
      await write(out, JSON.stringify(listing.json, null, 2) + '\n');
    } else {
      await write(out, formatTable(listing.headers, listing.rows));
      const [one, many] = listing.noun;
      await write(out, `${listing.rows.length} ${listing.rows.length === 1 ? one : many}\n`);
    }
    return EXIT_OK;
  } catch (error) {
    if (error instanceof StorageError || error instanceof AdminUsageError) {
      await write(err, `sft-server admin: ${error.message}\n`);
      return error instanceof AdminUsageError ? EXIT_USAGE : EXIT_FAILURE;
    }
    throw error;
  } finally {
    await store?.close().catch(() => undefined);
  }
}

interface AdminArgs {
  readonly what: AdminSubject;
  readonly 'data-dir': string;
  readonly since?: string;
  readonly limit?: number;
  readonly json: boolean;
}

/** The yargs command; `io` lets tests capture output without spawning a process. */
export function createAdminCommand(io: Partial<AdminIo> = {}): CommandModule<object, AdminArgs> {
  return {
    command: 'admin <what>',
    describe: 'List clients, received files or the audit trail from defensive.db',
    builder: (yargs: Argv<object>): Argv<AdminArgs> =>
      yargs
        .positional('what', {
          choices: ADMIN_SUBJECTS,
          describe: 'what to list',
          demandOption: true,
        })
        .option('data-dir', {
          type: 'string',
          default: process.cwd(),
          defaultDescription: 'current directory',
          describe: 'the server data directory (holds defensive.db)',
        })
        .option('since', {
          type: 'string',
          describe: 'only rows from this time on: ISO time, or an age like 30m, 1h, 2d',
        })
        .option('limit', {
          type: 'number',
          describe: 'audit: only the newest N entries',
        })
        .option('json', {
          type: 'boolean',
          default: false,
          describe: 'print JSON instead of a table',
        })
        .example('$0 admin clients', 'who registered, and whether they have keys')
        .example('$0 admin audit --since 1h', 'the last hour of the audit trail')
        .example(
          '$0 admin files --json --data-dir /var/lib/sft',
          'received files as JSON',
        ) as Argv<AdminArgs>,
    handler: async (args): Promise<void> => {
      const options: AdminOptions = {
        what: args.what,
        dataDir: args['data-dir'],
        json: args.json,
        ...(args.since === undefined ? {} : { since: args.since }),
        ...(args.limit === undefined ? {} : { limit: args.limit }),
      };
      const code = await runAdmin(options, io.out ?? process.stdout, io);
      (io.setExitCode ?? ((exit: number) => (process.exitCode = exit)))(code);
    },
  };
}

/** `sft-server admin …` for server/main.ts: `yargs.command(adminCommand)`. */
export const adminCommand: CommandModule<object, AdminArgs> = createAdminCommand();
