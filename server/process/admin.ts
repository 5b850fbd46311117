/**
 * `sft-server admin clients|files|audit|versions|restore`: read the catalog and print what a
 * person needs to see without the sqlite3 shell, and bring back kept versions of files.
 *
 * Listings open the backends read-only (no schema change, no write, no key re-sealing), so they
 * are safe next to a running server (WAL readers never block). `restore` writes: it brings a
 * kept version back as the live file (docs/protocol.md §9, an upload never destroys a verified
 * file), the current one becoming a version, with an audit row `file_restored`. Key material
 * is never read out: clients show only whether they have keys. `migrate` copies the data
 * directory's backends into PostgreSQL + S3 (admin-migrate.ts).
 */
import { createDiskFileMetaStore } from '../storage/disk/v4-file-meta';
import type { Argv, CommandModule } from 'yargs';
import { assertNever } from '../../protocol/errors';
import { ExitCode } from '../../shared/exit-codes';
import { AdminUsageError, formatTable, parseSince, write } from './admin-format';
import {
  listAudit,
  listClients,
  listFiles,
  listVersions,
  restore,
  type Listing,
} from './admin-listings';
import { readV4Fingerprints } from '../transport/tls-setup';
import { DEFAULT_KEEP_VERSIONS } from '../storage/file-vault';
import { loadMasterKey, MASTER_KEY_ENV } from '../storage/master-key';
import { runMigration } from './admin-migrate';
import { openBackends, type Backends } from '../storage/open-backends';
import { StorageError } from '../storage/types';

export { AdminUsageError, formatTable, parseSince, printable } from './admin-format';

export const ADMIN_SUBJECTS = [
  'clients',
  'files',
  'audit',
  'versions',
  'restore',
  'migrate',
] as const;
export type AdminSubject = (typeof ADMIN_SUBJECTS)[number];

export { ADMIN_REMOTE_ADDRESS, ADMIN_REQUEST_CODE } from './admin-listings';

export interface AdminOptions {
  readonly what: AdminSubject;
  /** The server's data directory (holds defensive.db). */
  readonly dataDir: string;
  /** ISO time, or relative to now: `30s`, `15m`, `1h`, `2d`, `1w`. */
  readonly since?: string;
  /** Audit only: the newest N entries (after `since`). */
  readonly limit?: number;
  readonly json?: boolean;
  /** versions/restore: a client id (32 hex digits) or name. */
  readonly client?: string;
  /** versions/restore: a file name of that client. */
  readonly name?: string;
  /** restore: the version to bring back (default the newest). */
  readonly version?: number;
  /** restore: versions kept per file name (as the server's `--keep-versions`). */
  readonly keepVersions?: number;
  /** The server's `--database`, `--storage` and `--s3-endpoint` (default: the data directory). */
  readonly backends?: { database?: string; storage?: string; s3Endpoint?: string };
  /** migrate: the target database (`--to`) and the master key file of both ends. */
  readonly migrateTo?: string;
  readonly masterKeyFile?: string;
}

export interface AdminIo {
  readonly out: NodeJS.WritableStream;
  readonly err: NodeJS.WritableStream;
  /** The clock for relative `--since` and restore times (injected in tests). */
  readonly now: () => number;
  /** Receives the exit code of a command run through yargs; default sets process.exitCode. */
  readonly setExitCode: (code: number) => void;
}

/** The shared table's codes under the names admin's callers use. */
export const EXIT_OK = ExitCode.OK;
export const EXIT_FAILURE = ExitCode.FAILURE;
export const EXIT_USAGE = ExitCode.USAGE;

function checkOptions(options: AdminOptions): void {
  if (options.limit !== undefined && !(Number.isInteger(options.limit) && options.limit >= 0)) {
    throw new AdminUsageError('--limit must be a whole number of entries');
  }
  if (
    options.version !== undefined &&
    !(Number.isSafeInteger(options.version) && options.version >= 1)
  ) {
    throw new AdminUsageError('--version must be a version number (1 or more)');
  }
  const keep = options.keepVersions;
  if (keep !== undefined && !(Number.isSafeInteger(keep) && keep >= 0)) {
    throw new AdminUsageError('--keep-versions must be a whole number');
  }
  if (options.what !== 'versions' && options.what !== 'restore') {
    if (options.client !== undefined || options.name !== undefined) {
      throw new AdminUsageError(`${options.what} takes no client or file name`);
    }
  }
}

/** The source of a migration: the data directory's own backends, with the master key. */
function migrateSource(options: AdminOptions): { masterKey?: Buffer } {
  const masterKey = loadMasterKey({
    file: options.masterKeyFile,
    env: process.env[MASTER_KEY_ENV],
  });
  return masterKey === undefined ? {} : { masterKey };
}

async function run(
  backends: Backends,
  options: AdminOptions,
  since: number | undefined,
  now: number,
): Promise<Listing> {
  const store = backends.catalog;
  switch (options.what) {
    case 'clients':
      return listClients(
        store,
        since,
        await readV4Fingerprints(options.dataDir, options.backends?.database),
      );
    case 'files':
      return listFiles(store, since, createDiskFileMetaStore(options.dataDir));
    case 'audit':
      return listAudit(store, since, options.limit);
    case 'versions':
      return listVersions(store, options, since);
    case 'restore':
      return restore(backends, options, now);
    case 'migrate':
      return runMigration(backends, {
        dataDir: options.dataDir,
        keepVersions: options.keepVersions ?? DEFAULT_KEEP_VERSIONS,
        now: () => now,
        masterKeyEnv: process.env[MASTER_KEY_ENV],
        ...(options.migrateTo === undefined ? {} : { to: options.migrateTo }),
        ...(options.masterKeyFile === undefined ? {} : { masterKeyFile: options.masterKeyFile }),
        ...options.backends,
        ...(options.backends?.database === undefined
          ? {}
          : { sourceDatabase: options.backends.database }),
      });
    default:
      return assertNever(options.what, 'admin subject');
  }
}

/** Runs one admin command; returns the exit code. Errors go to `io.err`, never a stack. */
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
    checkOptions(options);
  } catch (error) {
    await write(err, `sft-server admin: ${(error as Error).message}\n`);
    return EXIT_USAGE;
  }
  let backends: Backends | undefined;
  try {
    backends = await openBackends({
      dataDir: options.dataDir,
      readOnly: options.what !== 'restore',
      keepVersions: options.keepVersions ?? DEFAULT_KEEP_VERSIONS,
      now,
      // migrate reads the data directory; its --storage names the target (admin-migrate.ts).
      ...(options.what === 'migrate' ? migrateSource(options) : options.backends),
    });
    const listing = await run(backends, options, since, now());
    if (options.json) {
      await write(out, JSON.stringify(listing.json, null, 2) + '\n');
    } else {
      await write(out, formatTable(listing.headers, listing.rows));
      if (listing.noun !== undefined) {
        const [one, many] = listing.noun;
        await write(out, `${listing.rows.length} ${listing.rows.length === 1 ? one : many}\n`);
      }
    }
    return EXIT_OK;
  } catch (error) {
    if (error instanceof StorageError || error instanceof AdminUsageError) {
      await write(err, `sft-server admin: ${error.message}\n`);
      return error instanceof AdminUsageError ? EXIT_USAGE : EXIT_FAILURE;
    }
    throw error;
  } finally {
    await backends?.close().catch(() => undefined);
  }
}

interface AdminArgs {
  readonly what: AdminSubject;
  readonly client?: string;
  readonly name?: string;
  readonly 'data-dir': string;
  readonly since?: string;
  readonly limit?: number;
  readonly version?: number;
  readonly 'keep-versions': number;
  readonly json: boolean;
  readonly database?: string;
  readonly storage?: string;
  readonly 's3-endpoint'?: string;
  readonly to?: string;
  readonly 'master-key-file'?: string;
}

/** The yargs command; `io` lets tests capture output without spawning a process. */
export function createAdminCommand(io: Partial<AdminIo> = {}): CommandModule<object, AdminArgs> {
  return {
    command: 'admin <what> [client] [name]',
    describe: 'List clients, files, versions or the audit trail; restore a kept version',
    builder: (yargs: Argv<object>): Argv<AdminArgs> =>
      yargs
        .positional('what', {
          choices: ADMIN_SUBJECTS,
          describe: 'what to list, or restore',
          demandOption: true,
        })
        .positional('client', {
          type: 'string',
          describe: 'versions/restore: client id (hex) or name',
        })
        .positional('name', {
          type: 'string',
          describe: 'versions/restore: file name',
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
        .version(false)
        .option('version', {
          type: 'number',
          describe: 'restore: the version to bring back (default the newest)',
        })
        .option('keep-versions', {
          type: 'number',
          default: DEFAULT_KEEP_VERSIONS,
          describe: 'restore: versions kept per file name (as the server runs with)',
        })
        .option('json', {
          type: 'boolean',
          default: false,
          describe: 'print JSON instead of a table',
        })
        .option('database', {
          type: 'string',
          describe: "the server's --database (default sqlite)",
        })
        .option('storage', { type: 'string', describe: "restore: the server's --storage" })
        .option('s3-endpoint', { type: 'string', describe: "restore: the server's --s3-endpoint" })
        .option('to', {
          type: 'string',
          describe: 'migrate: the target database (postgres://…); --storage names its bytes',
        })
        .option('master-key-file', {
          type: 'string',
          describe: `migrate: the master key of both ends (or ${MASTER_KEY_ENV})`,
        })
        .example('$0 admin clients', 'who registered, and whether they have keys')
        .example('$0 admin audit --since 1h', 'the last hour of the audit trail')
        .example('$0 admin versions alice notes.txt', 'kept versions of one file')
        .example('$0 admin restore alice notes.txt --version 2', 'bring version 2 back')
        .example(
          '$0 admin files --json --data-dir /var/lib/sft',
          'received files as JSON',
        ) as unknown as Argv<AdminArgs>,
    handler: async (args): Promise<void> => {
      const options: AdminOptions = {
        what: args.what,
        dataDir: args['data-dir'],
        json: args.json,
        keepVersions: args['keep-versions'],
        ...(args.client === undefined ? {} : { client: args.client }),
        ...(args.name === undefined ? {} : { name: args.name }),
        ...(args.since === undefined ? {} : { since: args.since }),
        ...(args.limit === undefined ? {} : { limit: args.limit }),
        ...(args.version === undefined ? {} : { version: args.version }),
        ...(args.to === undefined ? {} : { migrateTo: args.to }),
        ...(args['master-key-file'] === undefined
          ? {}
          : { masterKeyFile: args['master-key-file'] }),
        backends: {
          ...(args.database === undefined ? {} : { database: args.database }),
          ...(args.storage === undefined ? {} : { storage: args.storage }),
          ...(args['s3-endpoint'] === undefined ? {} : { s3Endpoint: args['s3-endpoint'] }),
        },
      };
      const code = await runAdmin(options, io.out ?? process.stdout, io);
      (io.setExitCode ?? ((exit: number) => (process.exitCode = exit)))(code);
    },
  };
}

/** `sft-server admin …` for server/process/main.ts: `yargs.command(adminCommand)`. */
export const adminCommand: CommandModule<object, AdminArgs> = createAdminCommand();
