/**
 * The client's flags, defined once: the parser (cli.ts) reads them with node:util's parseArgs
 * and the help text (formatHelp) is generated from them. parseArgs is built into Node: a
 * client starts for every transfer, and a parser library is a dozen modules to load first.
 */
import { ExitCode, formatExitCodes } from '../../shared/exit-codes';

export const PROGRAM = 'sft-client';

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  /** One-letter alias (`-c`). */
  readonly short?: string;
  /** Shown in the help; applied when the flag is absent. */
  readonly default?: string | boolean;
  readonly choices?: readonly string[];
  readonly describe: string;
}

export const DEFAULT_CONNECT_TIMEOUT_S = 10;
export const DEFAULT_RESPONSE_TIMEOUT_S = 60;
export const DEFAULT_PARALLEL = 4;
/** More connections than this only queue at the server's per-address limit. */
export const MAX_PARALLEL = 32;

/** The options every command takes. */
export const OPTIONS = {
  'config-dir': {
    short: 'c',
    type: 'string',
    default: '.',
    describe: 'directory of transfer.info, me.info and priv.key',
  },
  server: {
    short: 's',
    type: 'string',
    describe: 'server as HOST:PORT (IPv4, host name or [IPv6]:port); overrides line 1',
  },
  name: {
    short: 'n',
    type: 'string',
    describe: 'client name to register under (1-100 characters); overrides line 2',
  },
  'connect-timeout': {
    type: 'string',
    default: String(DEFAULT_CONNECT_TIMEOUT_S),
    describe: 'seconds to wait for the connection',
  },
  'response-timeout': {
    type: 'string',
    default: String(DEFAULT_RESPONSE_TIMEOUT_S),
    describe: 'seconds to wait for each answer, or for the server to take more data',
  },
  parallel: {
    type: 'string',
    default: String(DEFAULT_PARALLEL),
    describe: 'connections to send files over at once (1: one connection, files in turn)',
  },
  recursive: {
    short: 'r',
    type: 'boolean',
    default: false,
    describe: 'send the files below directories given as arguments',
  },
  quiet: { short: 'q', type: 'boolean', default: false, describe: 'print nothing but errors' },
  verbose: { short: 'v', type: 'boolean', default: false, describe: 'debug log on stderr' },
  json: { type: 'boolean', default: false, describe: 'print one JSON summary on stdout' },
  protocol: {
    type: 'string',
    choices: ['auto', 'v4', 'v3'],
    default: 'auto',
    describe:
      'auto: TLS 1.3 (v4), falling back to v3 only for servers never seen speaking v4; ' +
      'v4: never fall back; v3: the old protocol, for old servers',
  },
  'server-fingerprint': {
    type: 'string',
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
  version: { type: 'boolean', describe: 'show the version' },
  help: { short: 'h', type: 'boolean', describe: 'show this help' },
} as const satisfies Record<string, OptionSpec>;

/** The options of `get` alone. */
export const GET_OPTIONS = {
  output: {
    short: 'o',
    type: 'string',
    describe: 'where to write it (default: its name in the working directory)',
  },
  force: { type: 'boolean', default: false, describe: 'replace an existing file' },
} as const satisfies Record<string, OptionSpec>;

export type OptionName = keyof typeof OPTIONS | keyof typeof GET_OPTIONS;

const USAGE = `Usage: ${PROGRAM} [options] [file ...]
       ${PROGRAM} send [options] [file ...]
       ${PROGRAM} list | get NAME [-o PATH] [--force] | delete NAME      (protocol v4)

Uploads files to an sft-server over TLS 1.3 (protocol version 4), or over the older version 3
for servers that speak only that. Settings come from transfer.info in the config directory,
and flags override them:
  transfer.info   line 1: server as host:port (IPv4, hostname or [IPv6]:port)
                  line 2: your client name (1-100 characters)
                  line 3: file to send (relative to the config directory)
  me.info         written after registering (name, client id, private key); when it
                  exists the client reconnects instead of registering
  priv.key        the same private key (both written with mode 0600)

Files given as arguments are sent instead of line 3, several at once over --parallel
connections; the summary lists them in the order given. With -r, a directory stands for the
files below it; the server keeps base names only, so files of one name are refused.`;

const COMMANDS: readonly (readonly [string, string])[] = [
  [`${PROGRAM} [file ...]`, 'upload files (the default command)'],
  [`${PROGRAM} send [file ...]`, 'upload files, the same as without a command'],
  [`${PROGRAM} list`, 'list the files this client stored, newest first (protocol v4)'],
  [`${PROGRAM} get <file>`, 'download a file this client stored (protocol v4)'],
  [`${PROGRAM} delete <file>`, 'delete a file this client stored (protocol v4)'],
];

const CLIENT_EXIT_CODES = [
  ExitCode.OK,
  ExitCode.FAILURE,
  ExitCode.USAGE,
  ExitCode.CONNECTION,
  ExitCode.REJECTED,
  ExitCode.CHECKSUM,
  ExitCode.IDENTITY_MISMATCH,
] as const;

/** `-c, --config-dir` or `    --json`, as help and error messages name a flag. */
export function flagLabel(name: string, spec: OptionSpec): string {
  return spec.short === undefined ? `    --${name}` : `-${spec.short}, --${name}`;
}

function optionRows(options: Record<string, OptionSpec>): string[] {
  const entries = Object.entries(options);
  const width = Math.max(...entries.map(([name, spec]) => flagLabel(name, spec).length));
  return entries.map(([name, spec]) => {
    const notes = [`[${spec.type}]`];
    if (spec.choices) notes.push(`[choices: ${spec.choices.map((c) => `"${c}"`).join(', ')}]`);
    if (spec.default !== undefined) notes.push(`[default: ${JSON.stringify(spec.default)}]`);
    return `  ${flagLabel(name, spec).padEnd(width)}  ${spec.describe}  ${notes.join(' ')}`;
  });
}

/** The whole --help text. */
export function formatHelp(): string {
  const commandWidth = Math.max(...COMMANDS.map(([usage]) => usage.length));
  return [
    USAGE,
    '',
    'Commands:',
    ...COMMANDS.map(([usage, what]) => `  ${usage.padEnd(commandWidth)}  ${what}`),
    '',
    'Options:',
    ...optionRows(OPTIONS),
    '',
    'Options of get:',
    ...optionRows(GET_OPTIONS),
    '',
    `Exit codes:\n${formatExitCodes(CLIENT_EXIT_CODES)}`,
    '',
  ].join('\n');
}
