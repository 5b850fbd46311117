/**
 * The client's command line on yargs, like the server's: every flag is defined once below, and
 * `--help` is generated from those definitions and the shared exit-code table. Parsing never
 * prints or exits; it returns what to do, or throws a USAGE ClientError.
 *
 * Commands: `send [files..]`, also the default (`sft-client FILE…`), so later commands fit as
 * further yargs commands.
 */
import yargs, { type Argv, type Options } from 'yargs';
import { ExitCode, formatExitCodes } from '../../shared/exit-codes';
import { parseFingerprint } from '../../shared/fingerprint';
import { ClientErrorCode, clientError, isClientError } from '../errors';

export const DEFAULT_CONNECT_TIMEOUT_S = 10;
export const DEFAULT_RESPONSE_TIMEOUT_S = 60;
export const DEFAULT_PARALLEL = 4;
/** More connections than this only queue at the server's per-address limit. */
export const MAX_PARALLEL = 32;
/** setTimeout's limit (2^31 - 1 ms), in seconds. */
const MAX_TIMEOUT_S = 2_147_483;
const MS_PER_S = 1000;
const PROGRAM = 'sft-client';

/** What a send run needs from the command line. */
export interface SendFlags {
  readonly configDir: string;
  readonly server?: string;
  readonly name?: string;
  readonly files: readonly string[];
  readonly quiet: boolean;
  readonly verbose: boolean;
  readonly json: boolean;
  readonly connectTimeoutMs: number;
  readonly responseTimeoutMs: number;
  /** Connections to send files over at once. */
  readonly parallel: number;
  /** Send the files below directory arguments. */
  readonly recursive: boolean;
  /** `auto` (v4, else v3 for servers never seen speaking v4), `v4` or `v3`. */
  readonly protocol: 'auto' | 'v4' | 'v3';
  /** `--server-fingerprint`: the v4 server key to expect (no trust on first use). */
  readonly serverFingerprint?: string;
  /** Deflate chunks that shrink before they are encrypted (v4 only, docs/protocol-v4.md §5.8). */
  readonly compress: boolean;
  /** Encrypt files with e2e.key before sending (v4 only, docs/protocol-v4.md §5.9). */
  readonly e2e: boolean;
}

/** list, get and delete: a client's own files over protocol v4 (file-commands.ts). */
export type FileCommandLine =
  | { readonly command: 'list'; readonly flags: SendFlags }
  | {
      readonly command: 'get';
      readonly flags: SendFlags;
      readonly fileName: string;
      /** `-o PATH`; default the file's name in the working directory. */
      readonly output?: string;
      readonly force: boolean;
    }
  | { readonly command: 'delete'; readonly flags: SendFlags; readonly fileName: string };

export type CommandLine =
  | { readonly command: 'send'; readonly flags: SendFlags }
  | FileCommandLine
  /** --help or --version: print `text` and stop. */
  | { readonly command: 'print'; readonly text: string };

/** The options every command takes; the help text is generated from these. */
const OPTIONS = {
  'config-dir': {
    alias: 'c',
    requiresArg: true,
    type: 'string',
    default: '.',
    describe: 'directory of transfer.info, me.info and priv.key',
  },
  server: {
    alias: 's',
    requiresArg: true,
    type: 'string',
    describe: 'server as HOST:PORT (IPv4, host name or [IPv6]:port); overrides line 1',
  },
  name: {
    alias: 'n',
    requiresArg: true,
    type: 'string',
    describe: 'client name to register under (1-100 characters); overrides line 2',
  },
  'connect-timeout': {
    // Strings, so a bad value is reported as typed rather than as NaN.
    type: 'string',
    requiresArg: true,
    default: String(DEFAULT_CONNECT_TIMEOUT_S),
    describe: 'seconds to wait for the connection',
  },
  'response-timeout': {
    type: 'string',
    requiresArg: true,
    default: String(DEFAULT_RESPONSE_TIMEOUT_S),
    describe: 'seconds to wait for each answer, or for the server to take more data',
  },
  parallel: {
    type: 'string',
    requiresArg: true,
    default: String(DEFAULT_PARALLEL),
    describe: 'connections to send files over at once (1: one connection, files in turn)',
  },
  recursive: {
    alias: 'r',
    type: 'boolean',
    default: false,
    describe: 'send the files below directories given as arguments',
  },
  quiet: { alias: 'q', type: 'boolean', default: false, describe: 'print nothing but errors' },
  verbose: { alias: 'v', type: 'boolean', default: false, describe: 'debug log on stderr' },
  json: { type: 'boolean', default: false, describe: 'print one JSON summary on stdout' },
  protocol: {
    type: 'string',
    requiresArg: true,
    choices: ['auto', 'v4', 'v3'],
    default: 'auto',
    describe:
      'auto: TLS 1.3 (v4), falling back to v3 only for servers never seen speaking v4; ' +
      'v4: never fall back; v3: the old protocol, for old servers',
  },
  'server-fingerprint': {
    type: 'string',
    requiresArg: true,
    describe:
      'expect this v4 server key (SHA256:…, from sft-server identity) instead of trust on first use',
  },
  compress: {
    type: 'boolean',
    default: false,
    describe:
      'v4: deflate chunks that shrink before encryption (off by default: sizes can leak ' +
      'content when part of it is chosen by someone else)',
  },
  e2e: {
    type: 'boolean',
    default: false,
    describe:
      'v4: encrypt files with e2e.key of the config directory before sending, so the server ' +
      'holds only ciphertext (losing e2e.key loses these files)',
  },
} as const satisfies Record<string, Options>;

const USAGE = `Usage: $0 [options] [file ...]
       $0 send [options] [file ...]
       $0 list | get NAME [-o PATH] [--force] | delete NAME      (protocol v4)

Uploads files to an sft-server over its encrypted protocol (version 3). Settings come from
transfer.info in the config directory, and flags override them:
  transfer.info   line 1: server as host:port (IPv4, hostname or [IPv6]:port)
                  line 2: your client name (1-100 characters)
                  line 3: file to send (relative to the config directory)
  me.info         written after registering (name, client id, private key); when it
                  exists the client reconnects instead of registering
  priv.key        the same private key (both written with mode 0600)

Files given as arguments are sent instead of line 3, several at once over --parallel
connections; the summary lists them in the order given. With -r, a directory stands for the
files below it; the server keeps base names only, so files of one name are refused.`;

const CLIENT_EXIT_CODES = [
  ExitCode.OK,
  ExitCode.FAILURE,
  ExitCode.USAGE,
  ExitCode.CONNECTION,
  ExitCode.REJECTED,
  ExitCode.CHECKSUM,
  ExitCode.IDENTITY_MISMATCH,
] as const;

const EPILOGUE = `Exit codes:\n${formatExitCodes(CLIENT_EXIT_CODES)}`;

type Value = string | boolean | number;
type ParsedArgs = {
  readonly [K in keyof typeof OPTIONS]?: Value | readonly Value[];
} & {
  readonly files?: readonly Value[];
  readonly '--'?: readonly Value[];
  readonly _?: readonly Value[];
  /** The file of get and delete. */
  readonly file?: Value;
  readonly output?: Value | readonly Value[];
  readonly force?: Value | readonly Value[];
};

function usageError(message: string): never {
  throw clientError(ClientErrorCode.USAGE, message, {
    hint: `run ${PROGRAM} --help for the options`,
  });
}

function parseSeconds(flag: string, text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value <= 0 || value > MAX_TIMEOUT_S) {
    throw clientError(
      ClientErrorCode.USAGE,
      `--${flag} must be a number of seconds above 0, got "${text}"`,
    );
  }
  return value * MS_PER_S;
}

function parseConnections(text: string): number {
  const value = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!(value >= 1 && value <= MAX_PARALLEL)) {
    throw clientError(
      ClientErrorCode.USAGE,
      `--parallel must be a whole number from 1 to ${MAX_PARALLEL}, got "${text}"`,
    );
  }
  return value;
}

/** yargs names unknown flags without dashes ("Unknown argument: bogus"); say what was typed. */
function failureMessage(message: string): string {
  const unknown = /^Unknown arguments?: (.*)$/.exec(message);
  if (!unknown) return message;
  const flags = unknown[1].split(', ').map((f) => (f.length === 1 ? `-${f}` : `--${f}`));
  return `Unknown option${flags.length > 1 ? 's' : ''}: ${flags.join(', ')}`;
}

function buildParser(version: string): Argv {
  const sendCommand = (y: Argv): Argv =>
    y.positional('files', {
      type: 'string',
      array: true,
      describe: 'files to send (default: line 3 of transfer.info)',
    });
  return yargs()
    .scriptName(PROGRAM)
    .parserConfiguration({
      // Names after `--` (say, of files starting with a dash) are kept apart, then sent.
      'populate--': true,
      // File names are names: "007" stays "007".
      'parse-numbers': false,
      'parse-positional-numbers': false,
    })
    .usage(USAGE)
    .options(OPTIONS)
    .command('$0 [files..]', 'upload files (the default command)', sendCommand)
    .command('send [files..]', 'upload files, the same as without a command', sendCommand)
    .command('list', 'list the files this client stored, newest first (protocol v4)')
    .command('get <file>', 'download a file this client stored (protocol v4)', (y: Argv) =>
      y
        .positional('file', { type: 'string', describe: 'the name the server stores it under' })
        .option('output', {
          alias: 'o',
          type: 'string',
          requiresArg: true,
          describe: 'where to write it (default: its name in the working directory)',
        })
        .option('force', { type: 'boolean', default: false, describe: 'replace an existing file' }),
    )
    .command('delete <file>', 'delete a file this client stored (protocol v4)', (y: Argv) =>
      y.positional('file', { type: 'string', describe: 'the name the server stores it under' }),
    )
    .strict()
    .help('help', 'show this help')
    .alias('h', 'help')
    .version('version', 'show the version', `${PROGRAM} ${version}`)
    .epilogue(EPILOGUE)
    .wrap(null)
    .exitProcess(false)
    .fail((message: string | undefined, err: Error | undefined) => {
      // yargs reports some mistakes (a flag without its value) as an error object.
      if (isClientError(err)) throw err;
      usageError(failureMessage(message ?? err?.message ?? 'bad command line'));
    });
}

function serverFingerprintFlag(text: string | undefined): { serverFingerprint?: string } {
  if (text === undefined) return {};
  const fingerprint = parseFingerprint(text);
  if (fingerprint === undefined) {
    usageError(
      `--server-fingerprint must look like SHA256: and 43 base64 characters, got "${text}"`,
    );
  }
  return { serverFingerprint: fingerprint };
}

function sendFlags(args: ParsedArgs): SendFlags {
  // A flag given twice takes the last value (scripts append overrides).
  const last = (key: keyof typeof OPTIONS): Value | undefined => {
    const value = args[key];
    return Array.isArray(value) ? value[value.length - 1] : (value as Value | undefined);
  };
  const text = (key: keyof typeof OPTIONS): string | undefined => {
    const value = last(key);
    return typeof value === 'string' ? value : undefined;
  };
  const flag = (key: keyof typeof OPTIONS): boolean => last(key) === true;
  return {
    configDir: text('config-dir') ?? '.',
    server: text('server'),
    name: text('name'),
    files: [...(args.files ?? []), ...(args['--'] ?? [])].map(String),
    quiet: flag('quiet'),
    verbose: flag('verbose'),
    json: flag('json'),
    connectTimeoutMs: parseSeconds(
      'connect-timeout',
      text('connect-timeout') ?? String(DEFAULT_CONNECT_TIMEOUT_S),
    ),
    responseTimeoutMs: parseSeconds(
      'response-timeout',
      text('response-timeout') ?? String(DEFAULT_RESPONSE_TIMEOUT_S),
    ),
    parallel: parseConnections(text('parallel') ?? String(DEFAULT_PARALLEL)),
    recursive: flag('recursive'),
    protocol: (text('protocol') ?? 'auto') as SendFlags['protocol'],
    ...serverFingerprintFlag(text('server-fingerprint')),
    compress: flag('compress'),
    e2e: flag('e2e'),
  };
}

/**
 * Parses `argv` (without node and the script); throws a USAGE ClientError when it is wrong.
 * `version` is what --version prints after the program name.
 */
export async function parseCommandLine(
  argv: readonly string[],
  version: string,
): Promise<CommandLine> {
  let printed = '';
  const parser = buildParser(version);
  const args = (await parser.parseAsync([...argv], {}, (_err, _argv, output) => {
    // Called instead of printing: the --help and --version texts arrive here.
    printed = output;
  })) as unknown as ParsedArgs;
  if (printed !== '') {
    return { command: 'print', text: printed.endsWith('\n') ? printed : `${printed}\n` };
  }
  const lastOf = (value: Value | readonly Value[] | undefined): Value | undefined =>
    Array.isArray(value) ? value[value.length - 1] : (value as Value | undefined);
  const fileName = String(args.file ?? '');
  switch (String(args._?.[0] ?? '')) {
    case 'list':
      return { command: 'list', flags: sendFlags(args) };
    case 'get': {
      const output = lastOf(args.output);
      return {
        command: 'get',
        flags: sendFlags(args),
        fileName,
        ...(output === undefined ? {} : { output: String(output) }),
        force: lastOf(args.force) === true,
      };
    }
    case 'delete':
      return { command: 'delete', flags: sendFlags(args), fileName };
    default:
      return { command: 'send', flags: sendFlags(args) };
  }
}
