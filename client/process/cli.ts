/**
 * The client's command line, on node:util's parseArgs: the flags are defined once in
 * cli-options.ts, and `--help` is generated from them and the shared exit-code table. Parsing
 * never prints or exits; it returns what to do, or throws a USAGE ClientError.
 *
 * Commands: `send [files..]`, also the default (`sft-client FILE…`), and `list`, `get NAME`,
 * `delete NAME`. A command is the first argument that is not an option; a file named like a
 * command is sent with `send NAME` (or after `--`).
 */
import { parseArgs } from 'node:util';
import { assertNever } from '../../protocol/errors';
import { parseFingerprint } from '../../shared/fingerprint';
import { ClientErrorCode, clientError } from '../errors';
import {
  DEFAULT_CONNECT_TIMEOUT_S,
  DEFAULT_PARALLEL,
  DEFAULT_RESPONSE_TIMEOUT_S,
  GET_OPTIONS,
  MAX_PARALLEL,
  OPTIONS,
  PROGRAM,
  formatHelp,
  type OptionName,
  type OptionSpec,
} from './cli-options';

export {
  DEFAULT_CONNECT_TIMEOUT_S,
  DEFAULT_PARALLEL,
  DEFAULT_RESPONSE_TIMEOUT_S,
  MAX_PARALLEL,
} from './cli-options';

/** setTimeout's limit (2^31 - 1 ms), in seconds. */
const MAX_TIMEOUT_S = 2_147_483;
const MS_PER_S = 1000;
const COMMANDS = ['send', 'list', 'get', 'delete'] as const;
type Command = (typeof COMMANDS)[number];

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

const ALL_OPTIONS: Readonly<Record<OptionName, OptionSpec>> = { ...OPTIONS, ...GET_OPTIONS };

function isOptionName(name: string): name is OptionName {
  return Object.prototype.hasOwnProperty.call(ALL_OPTIONS, name);
}

function isCommand(word: string): word is Command {
  return (COMMANDS as readonly string[]).includes(word);
}

/** What the tokens say, before the values are checked. */
interface Scanned {
  readonly command: Command;
  /** Positional arguments after the command (all of them for the default send). */
  readonly operands: readonly string[];
  /** The last value of each flag given (a flag given twice takes the last: scripts append). */
  readonly values: Partial<Record<OptionName, string | boolean>>;
  /** Flags nobody defined, as typed. */
  readonly unknown: readonly string[];
  /** How each flag given was typed (`-o` or `--output`), for messages. */
  readonly typed: Partial<Record<OptionName, string>>;
}

/** Splits `argv` into command, operands and flag values; refuses malformed flags. */
function scan(argv: readonly string[]): Scanned {
  const { tokens } = parseArgs({
    args: [...argv],
    options: ALL_OPTIONS,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const values: Partial<Record<OptionName, string | boolean>> = {};
  const unknown: string[] = [];
  const typed: Partial<Record<OptionName, string>> = {};
  const positionals: string[] = [];
  let command: Command | undefined;
  let terminated = false;
  for (const token of tokens) {
    if (token.kind === 'option-terminator') {
      terminated = true;
    } else if (token.kind === 'positional') {
      // The first word that is not an option, before any `--`, may name the command.
      if (command === undefined && positionals.length === 0 && !terminated) {
        if (isCommand(token.value)) {
          command = token.value;
          continue;
        }
        command = 'send';
      }
      positionals.push(token.value);
    } else if (!isOptionName(token.name)) {
      unknown.push(token.rawName);
    } else {
      typed[token.name] = token.rawName;
      values[token.name] = optionValue(token.name, token.rawName, token.value, token.inlineValue);
    }
  }
  return { command: command ?? 'send', operands: positionals, values, unknown, typed };
}

function optionValue(
  name: OptionName,
  rawName: string,
  value: string | undefined,
  inline: boolean | undefined,
): string | boolean {
  const spec = ALL_OPTIONS[name];
  if (spec.type === 'boolean') {
    if (value !== undefined) usageError(`${rawName} takes no value, got "${value}"`);
    return true;
  }
  // A value that looks like a flag was most likely a forgotten one; `--name=-x` says it is not.
  if (value === undefined || (inline !== true && value.length > 1 && value.startsWith('-'))) {
    usageError(
      `--${name} needs a value${value === undefined ? '' : ` (to give "${value}", write --${name}=${value})`}`,
    );
  }
  if (spec.choices !== undefined && !spec.choices.includes(value)) {
    usageError(`--${name} must be one of ${spec.choices.join(', ')}, got "${value}"`);
  }
  return value;
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

function sendFlags(values: Scanned['values'], files: readonly string[]): SendFlags {
  const text = (key: keyof typeof OPTIONS): string | undefined => {
    const value = values[key];
    return typeof value === 'string' ? value : undefined;
  };
  const flag = (key: keyof typeof OPTIONS): boolean => values[key] === true;
  return {
    configDir: text('config-dir') ?? OPTIONS['config-dir'].default,
    server: text('server'),
    name: text('name'),
    files,
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
    protocol: (text('protocol') ?? OPTIONS.protocol.default) as SendFlags['protocol'],
    ...serverFingerprintFlag(text('server-fingerprint')),
    compress: flag('compress'),
    e2e: flag('e2e'),
  };
}

/** The one file name `get` and `delete` take. */
function oneName(command: 'get' | 'delete', operands: readonly string[]): string {
  if (operands.length === 0) usageError(`${command} needs the name of a file`);
  if (operands.length > 1) {
    usageError(`${command} takes one file name, got ${operands.length}: ${operands.join(', ')}`);
  }
  return operands[0];
}

/**
 * Parses `argv` (without node and the script); throws a USAGE ClientError when it is wrong.
 * `version` is what --version prints after the program name.
 */
export async function parseCommandLine(
  argv: readonly string[],
  version: string,
): Promise<CommandLine> {
  return Promise.resolve().then(() => parseNow(argv, version));
}

function parseNow(argv: readonly string[], version: string): CommandLine {
  const { command, operands, values, unknown, typed } = scan(argv);
  if (values.help === true) return { command: 'print', text: formatHelp() };
  if (values.version === true) return { command: 'print', text: `${PROGRAM} ${version}\n` };
  const misplaced =
    command === 'get'
      ? []
      : (Object.keys(GET_OPTIONS) as (keyof typeof GET_OPTIONS)[]).flatMap(
          (name) => typed[name] ?? [],
        );
  const refused = [...unknown, ...misplaced];
  if (refused.length > 0) {
    usageError(`Unknown option${refused.length > 1 ? 's' : ''}: ${refused.join(', ')}`);
  }
  switch (command) {
    case 'send':
      return { command, flags: sendFlags(values, operands) };
    case 'list':
      if (operands.length > 0) usageError(`list takes no file names, got ${operands.join(', ')}`);
      return { command, flags: sendFlags(values, []) };
    case 'get': {
      const fileName = oneName(command, operands);
      const output = values.output;
      return {
        command,
        flags: sendFlags(values, []),
        fileName,
        ...(typeof output === 'string' ? { output } : {}),
        force: values.force === true,
      };
    }
    case 'delete':
      return { command, flags: sendFlags(values, []), fileName: oneName(command, operands) };
    default:
      return assertNever(command);
  }
}
