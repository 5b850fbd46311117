#!/usr/bin/env -S node --expose-gc
/**
 * `sft-server`: the file-transfer daemon (docs/protocol.md). Flags are documented in `--help` and
 * the README. Exit codes: 0 after a clean shutdown, 1 on a fatal error, 2 on a usage error.
 *
 * The shebang starts node with `--expose-gc` so that `--gc-nudge auto` (the default) finds its
 * collector: a process-edge choice, nothing flips a V8 flag at run time.
 */
import { resolve } from 'node:path';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import type { Logger } from 'pino';
import { DEFAULT_MAX_CHUNK } from '../../protocol/v3/constants';
import { ExitCode } from '../../shared/exit-codes';
import { createLogger, LOG_LEVELS } from '../../shared/logger';
import {
  UsageError,
  memoryNudgeFor,
  parseByteSize,
  parseGcNudgeMode,
  nonNegativeInteger,
  positiveInteger,
  positiveNumber,
  resolvePort,
} from './cli-options';
import { adminCommand } from './admin';
import { identityCommand, parseDurationMs, v4Options } from '../transport/tls-cli';
import { startDaemon, type Daemon } from './daemon';
import { issueIdentityApart } from './first-identity';
import type { MemoryNudge } from '../transport/gc-nudge';
import { DEFAULT_LIMITS, type ServerLimits } from '../transport/limits';
import { loadMasterKey, MASTER_KEY_ENV } from '../storage/master-key';
import { DEFAULT_KEEP_VERSIONS } from '../storage/file-vault';
import { parsePort } from '../../shared/validators';

/** Room for thousands of deletions' database writes, and little beside any real disk. */
const DEFAULT_DISK_RESERVE = '8M';

const MS_PER_S = 1000;

interface ServeArgs {
  port?: string;
  host?: string;
  'data-dir': string;
  'log-level': string;
  'max-connections': number;
  'max-connections-per-ip': number;
  'idle-timeout': number;
  'max-chunk': number;
  'max-file-size'?: string;
  quota?: string;
  'register-rate': number;
  'register-burst': number;
  'min-request-rate': number;
  'shutdown-grace': number;
  'master-key-file'?: string;
  'max-buffered-bytes': string;
  'lockout-failures': number;
  'lockout-window': number;
  'lockout-duration': number;
  v3: string;
  'partial-ttl': string;
  database: string;
  storage: string;
  'keep-versions': number;
  'disk-reserve': string;
  /** auto | on | off; '' (bare flag) and booleans are the flag's older boolean form. */
  'gc-nudge'?: string | boolean;
  's3-endpoint'?: string;
  'metrics-port'?: string;
  'metrics-host'?: string;
}

function serveOptions(y: Argv): Argv<ServeArgs> {
  return v4Options(y)
    .option('port', {
      // A string, so a bad value is reported as typed rather than as NaN.
      type: 'string',
      describe:
        'TCP port (0 = any free port); default: port.info in the working directory, else 1256',
    })
    .option('host', {
      type: 'string',
      describe: "address to listen on; default: all interfaces ('::', or 0.0.0.0 without IPv6)",
    })
    .option('data-dir', {
      type: 'string',
      default: '.',
      describe: 'folder of defensive.db and the received files (created if missing)',
    })
    .option('log-level', {
      type: 'string',
      choices: LOG_LEVELS as string[],
      default: 'info',
      describe: 'log detail; JSON lines on stdout, readable when stdout is a terminal',
    })
    .option('max-connections', {
      type: 'number',
      default: DEFAULT_LIMITS.maxConnections,
      describe: 'open connections in total; when full, the longest-idle one is closed',
    })
    .option('max-connections-per-ip', {
      type: 'number',
      default: DEFAULT_LIMITS.maxConnectionsPerIp,
      describe: 'open connections per remote address',
    })
    .option('idle-timeout', {
      type: 'number',
      default: DEFAULT_LIMITS.idleTimeoutMs / MS_PER_S,
      describe: 'seconds a connection may go without sending a complete request',
    })
    .option('max-chunk', {
      type: 'number',
      default: DEFAULT_MAX_CHUNK,
      describe: 'largest file content bytes in one 1028 packet',
    })
    .option('max-file-size', {
      type: 'string',
      describe: 'largest file accepted, e.g. 512M (default: no limit)',
    })
    .option('quota', {
      type: 'string',
      describe: 'bytes one client may have stored, e.g. 10G (default: no limit)',
    })
    .option('register-rate', {
      type: 'number',
      default: DEFAULT_LIMITS.registerRate.perSecond,
      describe: 'registrations per second per remote address (token bucket)',
    })
    .option('register-burst', {
      type: 'number',
      default: DEFAULT_LIMITS.registerRate.burst,
      describe: 'registrations allowed at once per remote address',
    })
    .option('min-request-rate', {
      type: 'number',
      default: DEFAULT_LIMITS.minRequestRate,
      describe: `bytes per second below which a request still arriving after ${
        DEFAULT_LIMITS.slowRequestGraceMs / MS_PER_S
      } s is cut off`,
    })
    .option('shutdown-grace', {
      type: 'number',
      default: DEFAULT_LIMITS.shutdownGraceMs / MS_PER_S,
      describe: 'seconds uploads in flight may take to finish on SIGINT/SIGTERM',
    })
    .option('max-buffered-bytes', {
      type: 'string',
      default: String(DEFAULT_LIMITS.maxBufferedBytes),
      describe:
        'upload bytes all connections together may hold in memory; above it reads pause, e.g. 256M',
    })
    .option('lockout-failures', {
      type: 'number',
      default: DEFAULT_LIMITS.lockout.maxFailures,
      describe:
        'uploads that fail to decrypt (one client id, one address) before 1027/1028 are refused; 0 = never',
    })
    .option('lockout-window', {
      type: 'number',
      default: DEFAULT_LIMITS.lockout.windowMs / MS_PER_S,
      describe: 'seconds within which --lockout-failures count',
    })
    .option('lockout-duration', {
      type: 'number',
      default: DEFAULT_LIMITS.lockout.lockMs / MS_PER_S,
      describe: 'seconds 1027/1028 stay refused after a lockout',
    })
    .option('database', {
      type: 'string',
      default: 'sqlite',
      describe:
        'sqlite (<data-dir>/defensive.db), or postgres://user@host:port/db shared by instances',
    })
    .option('storage', {
      type: 'string',
      default: 'disk',
      describe: 'disk (<data-dir>), or s3://bucket/prefix shared by instances (AWS_* credentials)',
    })
    .option('gc-nudge', {
      // No yargs default: it would also stand in for the bare flag, which means `on`.
      type: 'string',
      defaultDescription: 'auto',
      describe:
        'collect young garbage every 4 MiB of transfer data (lower peak memory): auto (on when node has --expose-gc, as the sft-server bin starts it), on (refused without it), off',
    })
    .option('keep-versions', {
      type: 'number',
      default: DEFAULT_KEEP_VERSIONS,
      describe: 'verified versions of a file kept when an upload replaces it (0: none)',
    })
    .option('disk-reserve', {
      type: 'string',
      default: DEFAULT_DISK_RESERVE,
      describe:
        'space kept free in the data folder: on a full disk it is given up so deletions still commit, and uploads wait until it fits again (0: none)',
    })
    .option('s3-endpoint', {
      type: 'string',
      describe: 'URL of an S3-compatible store (MinIO, Ceph, R2) for s3:// storage; default AWS',
    })
    .option('metrics-port', {
      type: 'string',
      describe: 'serve /metrics (Prometheus), /healthz and /readyz on this port; default off',
    })
    .option('metrics-host', {
      type: 'string',
      default: '127.0.0.1',
      describe: 'address of the metrics endpoint',
    })
    .option('master-key-file', {
      type: 'string',
      describe: `file with a base64 32-byte key that encrypts stored AES keys (or ${MASTER_KEY_ENV})`,
    }) as unknown as Argv<ServeArgs>;
}

function partialTtlFrom(text: string): number {
  const ms = parseDurationMs(text);
  if (ms === undefined) throw new UsageError(`--partial-ttl: "${text}" is not a duration like 24h`);
  return ms;
}

function metricsFrom(args: ServeArgs): { metrics?: { port: number; host: string } } {
  const text = args['metrics-port'];
  if (text === undefined) return {};
  const port = parsePort(text, { allowZero: true });
  if (port === undefined) throw new UsageError(`--metrics-port: "${text}" is not a port number`);
  return { metrics: { port, host: args['metrics-host'] ?? '127.0.0.1' } };
}

function limitsFrom(args: ServeArgs): Partial<ServerLimits> {
  const maxFileSize = args['max-file-size'];
  const quota = args.quota;
  return {
    maxConnections: positiveInteger(args['max-connections'], '--max-connections'),
    maxConnectionsPerIp: positiveInteger(
      args['max-connections-per-ip'],
      '--max-connections-per-ip',
    ),
    idleTimeoutMs: positiveNumber(args['idle-timeout'], '--idle-timeout') * MS_PER_S,
    maxChunk: positiveInteger(args['max-chunk'], '--max-chunk'),
    maxFileSize:
      (maxFileSize === undefined ? undefined : parseByteSize(maxFileSize, '--max-file-size')) ??
      DEFAULT_LIMITS.maxFileSize,
    quota:
      (quota === undefined ? undefined : parseByteSize(quota, '--quota')) ?? DEFAULT_LIMITS.quota,
    registerRate: {
      perSecond: positiveNumber(args['register-rate'], '--register-rate'),
      burst: positiveInteger(args['register-burst'], '--register-burst'),
    },
    minRequestRate: positiveNumber(args['min-request-rate'], '--min-request-rate'),
    shutdownGraceMs: Math.max(0, Number(args['shutdown-grace'])) * MS_PER_S,
    maxBufferedBytes:
      parseByteSize(args['max-buffered-bytes'], '--max-buffered-bytes') ??
      DEFAULT_LIMITS.maxBufferedBytes,
    lockout: {
      maxFailures: nonNegativeInteger(args['lockout-failures'], '--lockout-failures'),
      windowMs: positiveNumber(args['lockout-window'], '--lockout-window') * MS_PER_S,
      lockMs: positiveNumber(args['lockout-duration'], '--lockout-duration') * MS_PER_S,
      maxEntries: DEFAULT_LIMITS.lockout.maxEntries,
    },
  };
}

function memoryFrom(args: ServeArgs): { memory?: MemoryNudge } {
  const memory = memoryNudgeFor(parseGcNudgeMode(args['gc-nudge']), globalThis);
  return memory === undefined ? {} : { memory };
}

function flushAndExit(logger: Logger | undefined, code: number): void {
  if (!logger) process.exit(code);
  logger.flush(() => process.exit(code));
}

async function serve(args: ServeArgs): Promise<void> {
  let logger: Logger | undefined;
  try {
    logger = createLogger({
      name: 'sft-server',
      level: args['log-level'] as (typeof LOG_LEVELS)[number],
    });
    const log = logger;
    const limits = limitsFrom(args);
    const memory = memoryFrom(args);
    const { port, source } = resolvePort(args.port, process.cwd());
    if (source === 'default') {
      log.warn({ port }, 'no --port and no port.info in the working directory: using the default');
    }
    const masterKey = loadMasterKey({
      file: args['master-key-file'],
      env: process.env[MASTER_KEY_ENV],
    });
    if (masterKey === undefined) {
      log.warn(
        `no master key (--master-key-file or ${MASTER_KEY_ENV}): AES keys are stored in the clear`,
      );
    }
    await issueIdentityApart(
      resolve(args['data-dir']),
      { node: process.execPath, nodeArgs: process.execArgv, script: process.argv[1] },
      log,
    );
    const daemon: Daemon = await startDaemon({
      dataDir: args['data-dir'],
      port,
      host: args.host,
      logger: log,
      limits,
      masterKey,
      v4: { partialTtlMs: partialTtlFrom(args['partial-ttl']), v3: args.v3 !== 'off' },
      database: args.database,
      storage: args.storage,
      keepVersions: nonNegativeInteger(args['keep-versions'], '--keep-versions'),
      diskReserveBytes: parseByteSize(args['disk-reserve'], '--disk-reserve') ?? 0,
      ...memory,
      ...(args['s3-endpoint'] === undefined ? {} : { s3Endpoint: args['s3-endpoint'] }),
      ...metricsFrom(args),
    });
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting now');
        flushAndExit(log, ExitCode.FAILURE);
        return;
      }
      stopping = true;
      log.info({ signal }, 'stopping');
      daemon.close().then(
        () => flushAndExit(log, ExitCode.OK),
        (err: unknown) => {
          log.error({ err }, 'error while stopping');
          flushAndExit(log, ExitCode.FAILURE);
        },
      );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`sft-server: ${err.message}\n`);
      flushAndExit(logger, ExitCode.USAGE);
      return;
    }
    const message = err instanceof Error ? err.message : String(err);
    if (logger) logger.fatal({ err }, `cannot start: ${message}`);
    else process.stderr.write(`sft-server: cannot start: ${message}\n`);
    flushAndExit(logger, ExitCode.FAILURE);
  }
}

export function buildCli(argv: string[]): Argv {
  return (
    yargs(argv)
      .scriptName('sft-server')
      // A flag given twice takes the last value (scripts append overrides), not an array.
      .parserConfiguration({ 'duplicate-arguments-array': false })
      .usage('$0 [options]\n\nSecure file-transfer server (protocol version 3).')
      .command(
        '$0',
        'run the server',
        (y) => serveOptions(y),
        (args) => serve(args as unknown as ServeArgs),
      )
      .command(adminCommand)
      .command(identityCommand)
      .strict()
      .help()
      .alias('h', 'help')
      .version()
      .epilogue('Files: <data-dir>/defensive.db (SQLite), <data-dir>/<client-id>/<file> (uploads).')
      .fail((msg, err) => {
        if (err) throw err;
        process.stderr.write(`sft-server: ${msg}\nTry sft-server --help\n`);
        process.exit(ExitCode.USAGE);
      })
  );
}

if (require.main === module) {
  void buildCli(hideBin(process.argv)).parseAsync();
}
