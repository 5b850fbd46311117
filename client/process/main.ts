#!/usr/bin/env node
/**
 * `sft-client`: uploads files to an sft-server (docs/protocol.md §5, §8). Start-up is kept lean:
 * arguments are parsed with node:util, and pino and cli-progress load only when needed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { clientIdToHex } from '../../shared/client-id';
import { saveIdentity } from '../config/identity';
import { resolveConfig } from '../config/transfer-info';
import { connectTransport } from '../transport/connection';
import { ClientErrorCode, ExitCode, clientError, toClientError, type ClientError } from '../errors';
import { chooseMode, createOutput, type OutputStreams, type RunSummary } from './output';
import { Session, silentLog, type ClientLog, type UploadResult } from '../session/session';
import { prepareUploads } from '../session/upload-plan';

export const DEFAULT_CONNECT_TIMEOUT_S = 10;
export const DEFAULT_RESPONSE_TIMEOUT_S = 60;
/** setTimeout's limit (2^31 - 1 ms), in seconds. */
const MAX_TIMEOUT_S = 2_147_483;
const MS_PER_S = 1000;
/** Shell convention: 128 + signal number. */
const SIGNAL_EXIT_CODES: readonly (readonly [NodeJS.Signals, number])[] = [
  ['SIGINT', 130],
  ['SIGTERM', 143],
];

export const HELP = `Usage: sft-client [options] [file ...]

Uploads files to an sft-server over its encrypted protocol (version 3). Settings come
from transfer.info in the config directory, and flags override them:
  transfer.info   line 1: server as host:port (IPv4, hostname or [IPv6]:port)
                  line 2: your client name (1-100 characters)
                  line 3: file to send (relative to the config directory)
  me.info         written after registering (name, client id, private key); when it
                  exists the client reconnects instead of registering
  priv.key        the same private key (both written with mode 0600)

Files given as arguments are sent in turn over one connection, instead of line 3.

Options:
  -c, --config-dir DIR       directory of transfer.info, me.info, priv.key (default: .)
  -s, --server HOST:PORT     server address (overrides line 1)
  -n, --name NAME            client name to register under (overrides line 2)
      --connect-timeout S    seconds to wait for the connection (default: ${DEFAULT_CONNECT_TIMEOUT_S})
      --response-timeout S   seconds to wait for each answer (default: ${DEFAULT_RESPONSE_TIMEOUT_S})
  -q, --quiet                print nothing but errors
  -v, --verbose              debug log on stderr
      --json                 print one JSON summary on stdout
  -h, --help                 show this help
      --version              show the version

Exit codes:
  0  every file sent and verified
  1  internal error (a bug; run with --verbose and report it)
  2  usage or config error: bad flag, missing or malformed transfer.info / me.info,
     a file that cannot be read or sent
  3  connection failure: refused, timed out, reset or closed; no answer in time
  4  rejected by the server: registration or key refused (1601), or errors (1607)
     after 3 attempts
  5  checksum failure: the server's cksum never matched, the upload was abandoned (1031)
`;

interface Flags {
  readonly configDir: string;
  readonly server?: string;
  readonly name?: string;
  readonly files: readonly string[];
  readonly quiet: boolean;
  readonly verbose: boolean;
  readonly json: boolean;
  readonly connectTimeoutMs: number;
  readonly responseTimeoutMs: number;
  readonly help: boolean;
  readonly version: boolean;
}

function parseSeconds(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback * MS_PER_S;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value <= 0 || value > MAX_TIMEOUT_S) {
    throw clientError(
      ClientErrorCode.USAGE,
      `--${flag} must be a number of seconds above 0, got "${text}"`,
    );
  }
  return value * MS_PER_S;
}

export function parseFlags(argv: readonly string[]): Flags {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        'config-dir': { type: 'string', short: 'c' },
        server: { type: 'string', short: 's' },
        name: { type: 'string', short: 'n' },
        'connect-timeout': { type: 'string' },
        'response-timeout': { type: 'string' },
        quiet: { type: 'boolean', short: 'q' },
        verbose: { type: 'boolean', short: 'v' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
  } catch (err) {
    throw clientError(ClientErrorCode.USAGE, err instanceof Error ? err.message : String(err), {
      hint: 'run sft-client --help for the options',
    });
  }
  const v = parsed.values;
  return {
    configDir: v['config-dir'] ?? '.',
    server: v.server,
    name: v.name,
    files: parsed.positionals,
    quiet: v.quiet ?? false,
    verbose: v.verbose ?? false,
    json: v.json ?? false,
    connectTimeoutMs: parseSeconds(
      'connect-timeout',
      v['connect-timeout'],
      DEFAULT_CONNECT_TIMEOUT_S,
    ),
    responseTimeoutMs: parseSeconds(
      'response-timeout',
      v['response-timeout'],
      DEFAULT_RESPONSE_TIMEOUT_S,
    ),
    help: v.help ?? false,
    version: v.version ?? false,
  };
}

function packageVersion(): string {
  // dist/client/process/main.js and client/process/main.ts sit at different depths below package.json.
  for (const up of [
    ['..', '..'],
    ['..', '..', '..'],
  ]) {
    try {
      const pkg = JSON.parse(readFileSync(join(__dirname, ...up, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'secure-file-transfer' && pkg.version) return pkg.version;
    } catch {
      // try the next level
    }
  }
  return 'unknown';
}

async function createLog(verbose: boolean): Promise<ClientLog> {
  if (!verbose) return silentLog;
  const { createLogger } = await import('../../shared/logger');
  return createLogger({ name: 'sft-client', level: 'debug', toStderr: true, pretty: false });
}

/** Runs the client with `argv` (no node/script); returns the exit code. */
export async function run(argv: readonly string[], streams: OutputStreams): Promise<number> {
  let flags: Flags;
  try {
    flags = parseFlags(argv);
  } catch (err) {
    const ce = toClientError(err);
    streams.stderr.write(`sft-client: error: ${ce.message}\n`);
    if (ce.hint) streams.stderr.write(`sft-client: ${ce.hint}\n`);
    return ce.exitCode;
  }
  if (flags.help) {
    streams.stdout.write(HELP);
    return ExitCode.OK;
  }
  if (flags.version) {
    streams.stdout.write(`sft-client ${packageVersion()}\n`);
    return ExitCode.OK;
  }

  const mode = chooseMode(flags, Boolean(streams.stdout.isTTY));
  const output = await createOutput(mode, streams);
  if (mode === 'progress' && streams.stdout === process.stdout) {
    // Restore the cursor the progress bar hides, then end as the signal would have.
    for (const [signal, code] of SIGNAL_EXIT_CODES) {
      process.once(signal, () => {
        output.interrupted(signal);
        process.exit(code);
      });
    }
  }
  const log = await createLog(flags.verbose);
  const files: UploadResult[] = [];
  let session: Session | undefined;
  let summary: Omit<RunSummary, 'exitCode' | 'files'> = {};
  try {
    const config = await resolveConfig({
      configDir: flags.configDir,
      server: flags.server,
      name: flags.name,
      files: flags.files,
    });
    summary = { server: config.server.display };
    if (config.identity && flags.name !== undefined && flags.name.trim() !== config.identity.name) {
      output.warn(
        `me.info is registered as "${config.identity.name}"; --name "${flags.name}" is used ` +
          'only if the server asks this client to register anew (delete me.info to register ' +
          'under the new name)',
      );
    }
    const plans = await prepareUploads(config.files);
    log.debug({ server: config.server.display, files: plans.length }, 'starting');
    const timeouts = {
      connectTimeoutMs: flags.connectTimeoutMs,
      responseTimeoutMs: flags.responseTimeoutMs,
    };
    session = new Session({
      connect: () => connectTransport(config.server, timeouts),
      identity: config.identity,
      registerName: config.registerName,
      saveIdentity: (identity) => saveIdentity(config.configDir, identity),
      events: output.events,
      log,
    });
    const identity = await session.open();
    summary = {
      ...summary,
      clientId: clientIdToHex(identity.clientId),
      name: identity.name,
      registered: session.registered,
    };
    for (const plan of plans) {
      const result = await session.upload(plan);
      files.push(result);
      output.fileDone(result);
    }
    session.close();
    const failed = files.filter((f) => !f.verified);
    if (failed.length > 0) {
      throw clientError(
        ClientErrorCode.CHECKSUM_FAILED,
        `the server's cksum of ${failed.map((f) => f.fileName).join(', ')} never matched ours ` +
          'after 4 uploads; the upload was abandoned (1031)',
        {
          hint:
            'the file may have changed while it was sent, or data is corrupted on the way or ' +
            'on the server; try again',
        },
      );
    }
    output.finish({ ...summary, files, exitCode: ExitCode.OK });
    return ExitCode.OK;
  } catch (err) {
    session?.close();
    const ce: ClientError = toClientError(err);
    if (ce.code === ClientErrorCode.INTERNAL) {
      log.debug({ stack: (err as Error)?.stack }, 'internal error');
    }
    output.fatal(ce);
    output.finish({ ...summary, files, exitCode: ce.exitCode, error: ce });
    return ce.exitCode;
  }
}

if (require.main === module) {
  void run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr }).then(
    (code) => {
      process.exitCode = code;
      // Nothing should be left running; if something is, do not hang a script.
      setTimeout(() => process.exit(code), 2000).unref();
    },
  );
}
