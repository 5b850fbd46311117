/**
 * The run's settings (docs/protocol.md §8): flags first, then `transfer.info` (line 1 server,
 * line 2 client name, line 3 file to send), and the identity from me.info when there is one.
 */
import { isAbsolute, join, resolve } from 'node:path';
import { string255Bytes } from '../../protocol/v3/fields';
import { MAX_CLIENT_NAME_LENGTH } from '../../shared/limits';
import { ClientErrorCode, clientError, configError, type ConfigLocation } from '../errors';
import { TRANSFER_INFO, readOptionalText, splitConfigLines } from './config-files';
import { loadIdentity, type Identity } from './identity';
import { parseServerAddress, type ServerAddress } from './server-address';

const TransferLine = { SERVER: 1, NAME: 2, FILE: 3 } as const;

/** Why `name` cannot be a client name (§8: up to 100 characters; §2: a string255), or undefined. */
export function clientNameProblem(name: string): string | undefined {
  if (name === '') return 'the client name is empty';
  const chars = [...name].length;
  if (chars > MAX_CLIENT_NAME_LENGTH) {
    return `the client name has ${chars} characters; at most ${MAX_CLIENT_NAME_LENGTH} are allowed`;
  }
  try {
    string255Bytes(name);
  } catch {
    return 'the client name has control characters or is too long in UTF-8';
  }
  return undefined;
}

export interface FileArgument {
  /** Absolute path of the file to send. */
  readonly path: string;
  /** Where the path came from, when it came from transfer.info. */
  readonly location?: ConfigLocation;
  /**
   * Its path below the directory argument it was found under, that directory's name first
   * (`-r photos` → `photos/2024/a.jpg`): its name over version 4, which keeps folders.
   */
  readonly name?: string;
}

export interface ConfigOverrides {
  /** Directory holding transfer.info, me.info and priv.key. */
  readonly configDir: string;
  readonly server?: string;
  readonly name?: string;
  /** File paths from the command line, relative to the working directory. */
  readonly files?: readonly string[];
  /** A v4 identity exists: the server knows the client by its certificate, no name needed. */
  readonly nameOptional?: boolean;
  /** A command that sends nothing (list, get, delete): line 3 is not read. */
  readonly noFiles?: boolean;
}

export interface ResolvedConfig {
  readonly configDir: string;
  readonly server: ServerAddress;
  /** Name to register under; undefined only when me.info exists and nothing else names one. */
  readonly registerName: string | undefined;
  readonly files: readonly FileArgument[];
  /** From me.info when it exists: the client reconnects (§5.3). */
  readonly identity: Identity | undefined;
}

/**
 * Resolves the run's settings: flags first, then `transfer.info` (§8). A transfer.info line is
 * read and checked only when no flag replaces it, so the file is optional when flags give
 * everything.
 */
export async function resolveConfig(overrides: ConfigOverrides): Promise<ResolvedConfig> {
  const configDir = resolve(overrides.configDir);
  const transferPath = join(configDir, TRANSFER_INFO);
  const identity = await loadIdentity(configDir);
  const needFiles = !overrides.noFiles && (!overrides.files || overrides.files.length === 0);
  const needName =
    overrides.name === undefined && identity === undefined && !overrides.nameOptional;
  const needServer = overrides.server === undefined;
  const text =
    needFiles || needServer || needName || overrides.name === undefined
      ? await readOptionalText(transferPath)
      : undefined;
  if (text === undefined && (needFiles || needServer || needName)) {
    const missing = [needServer && '--server', needName && '--name', needFiles && 'file paths']
      .filter(Boolean)
      .join(', ');
    throw configError(
      ClientErrorCode.CONFIG_MISSING,
      { file: transferPath },
      'no such file',
      `create it with the server as host:port on line 1, your name on line 2 and the file to ` +
        `send on line 3, or pass ${missing}`,
    );
  }
  const lines = text === undefined ? [] : splitConfigLines(text);
  const at = (line: number): ConfigLocation => ({ file: transferPath, line });

  let server: ServerAddress;
  if (overrides.server !== undefined) {
    const parsed = parseServerAddress(overrides.server);
    if (typeof parsed === 'string') {
      throw clientError(ClientErrorCode.BAD_SERVER_ADDRESS, `--server: ${parsed}`);
    }
    server = parsed;
  } else {
    const parsed = parseServerAddress(lines[TransferLine.SERVER - 1] ?? '');
    if (typeof parsed === 'string') {
      throw configError(ClientErrorCode.BAD_SERVER_ADDRESS, at(TransferLine.SERVER), parsed);
    }
    server = parsed;
  }

  let registerName: string | undefined;
  if (overrides.name !== undefined) {
    const problem = clientNameProblem(overrides.name.trim());
    if (problem) throw clientError(ClientErrorCode.BAD_CLIENT_NAME, `--name: ${problem}`);
    registerName = overrides.name.trim();
  } else if (text !== undefined && (needName || lines.length >= TransferLine.NAME)) {
    const name = lines[TransferLine.NAME - 1] ?? '';
    const problem = clientNameProblem(name);
    if (problem) {
      throw configError(
        ClientErrorCode.BAD_CLIENT_NAME,
        at(TransferLine.NAME),
        problem,
        `put your client name (1–${MAX_CLIENT_NAME_LENGTH} characters) on line 2`,
      );
    }
    registerName = name;
  } else {
    registerName = identity?.name;
  }

  let files: FileArgument[];
  if (!needFiles) {
    files = (overrides.files ?? []).map((p) => ({ path: resolve(p) }));
  } else {
    const pathText = lines[TransferLine.FILE - 1] ?? '';
    if (pathText === '') {
      throw configError(
        ClientErrorCode.MISSING_FILE_PATH,
        at(TransferLine.FILE),
        lines.length < TransferLine.FILE ? 'no line 3 (the file to send)' : 'line 3 is empty',
        'put the path of the file to send on line 3, or give file paths as arguments',
      );
    }
    files = [
      {
        path: isAbsolute(pathText) ? pathText : resolve(configDir, pathText),
        location: at(TransferLine.FILE),
      },
    ];
  }
  return { configDir, server, registerName, files, identity };
}
