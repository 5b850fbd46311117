/**
 * The client's files (docs/protocol.md §8): `transfer.info` (server, name, file to send), `me.info`
 * (name, client id, private key) and `priv.key` (the key again). Every problem names the file
 * and line; me.info and priv.key are written atomically with mode 0600.
 */
import type { KeyObject } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { isAbsolute, join, resolve } from 'node:path';
import { string255Bytes } from '../protocol';
import { writeFileAtomic } from '../shared/atomic-file';
import { clientIdFromHex, clientIdToHex } from '../shared/client-id';
import { loadPrivateKey } from '../shared/crypto';
import { errnoCode, errnoText } from '../shared/errno';
import { MAX_CLIENT_NAME_LENGTH } from '../shared/limits';
import { MAX_PORT, decodeBase64, isBase64Text, parsePort } from '../shared/validators';
import { ClientErrorCode, clientError, configError, type ConfigLocation } from './errors';

export const TRANSFER_INFO = 'transfer.info';
export const ME_INFO = 'me.info';
export const PRIV_KEY = 'priv.key';
/** me.info and priv.key hold a private key: owner read/write only (§8). */
export const SECRET_FILE_MODE = 0o600;

const TransferLine = { SERVER: 1, NAME: 2, FILE: 3 } as const;
const MeInfoLine = { NAME: 1, ID: 2, KEY: 3 } as const;
const MAX_HOSTNAME_LENGTH = 253;
const HOSTNAME_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;
const UTF8_BOM = '\ufeff';

// ---------------------------------------------------------------- server address

export interface ServerAddress {
  /** Host name or IP address, without brackets. */
  readonly host: string;
  readonly port: number;
  /** As people write it: `host:port`, `[v6]:port`. */
  readonly display: string;
}

/** Parses `host:port`, `a.b.c.d:port` or `[IPv6]:port`; returns a problem text when invalid. */
export function parseServerAddress(text: string): ServerAddress | string {
  const value = text.trim();
  if (value === '') return 'the server address is empty; expected host:port';
  let host: string;
  let portText: string;
  const bracketed = /^\[([^\]]*)\]:(.*)$/.exec(value);
  if (bracketed) {
    host = bracketed[1];
    portText = bracketed[2];
    if (!isIPv6(host)) return `"${host}" in brackets is not an IPv6 address`;
  } else {
    const colon = value.lastIndexOf(':');
    if (colon < 0) return `"${value}" has no port; expected host:port, e.g. 127.0.0.1:1256`;
    host = value.slice(0, colon);
    portText = value.slice(colon + 1);
    if (host.includes(':') || value.startsWith('[')) {
      return `"${value}": write an IPv6 address in brackets, e.g. [::1]:1256`;
    }
    const problem = hostProblem(host);
    if (problem) return problem;
  }
  const port = parsePort(portText);
  if (port === undefined) return `port "${portText}" is not a number from 1 to ${MAX_PORT}`;
  return { host, port, display: isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}` };
}

function hostProblem(host: string): string | undefined {
  if (host === '') return 'the host is empty; expected host:port';
  if (/^[\d.]+$/.test(host)) {
    return isIPv4(host) ? undefined : `"${host}" is not a valid IPv4 address`;
  }
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  if (name.length > MAX_HOSTNAME_LENGTH || !name.split('.').every((l) => HOSTNAME_LABEL.test(l))) {
    return `"${host}" is not a valid host name or IPv4 address`;
  }
  return undefined;
}

// ---------------------------------------------------------------- names

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

// ---------------------------------------------------------------- reading files

/** Lines of a text file: BOM and CR dropped, each trimmed, trailing blank lines removed. */
export function splitConfigLines(text: string): string[] {
  const body = text.startsWith(UTF8_BOM) ? text.slice(UTF8_BOM.length) : text;
  const lines = body.split(/\r?\n/).map((l) => l.trim());
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Reads a config file; undefined when it does not exist, CONFIG_UNREADABLE otherwise. */
async function readOptionalText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const sys = errnoCode(err);
    if (sys === 'ENOENT') return undefined;
    throw configError(
      ClientErrorCode.CONFIG_UNREADABLE,
      { file: path },
      `cannot read the file (${sys ?? String(err)})`,
      sys === 'EACCES' ? 'check the file permissions' : undefined,
    );
  }
}

// ---------------------------------------------------------------- transfer.info

export interface FileArgument {
  /** Absolute path of the file to send. */
  readonly path: string;
  /** Where the path came from, when it came from transfer.info. */
  readonly location?: ConfigLocation;
}

export interface ConfigOverrides {
  /** Directory holding transfer.info, me.info and priv.key. */
  readonly configDir: string;
  readonly server?: string;
  readonly name?: string;
  /** File paths from the command line, relative to the working directory. */
  readonly files?: readonly string[];
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
  const needFiles = !overrides.files || overrides.files.length === 0;
  const needName = overrides.name === undefined && identity === undefined;
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

// ---------------------------------------------------------------- me.info / priv.key

export interface Identity {
  readonly name: string;
  readonly clientId: Buffer;
  readonly privateKey: KeyObject;
  /** PKCS#8 DER, as stored base64 in me.info and priv.key. */
  readonly privateKeyDer: Buffer;
}

/**
 * Decodes base64 spread over `lines` (other clients wrap it, §8). `firstLine` is the 1-based
 * line number of lines[0], so errors point at the right line.
 */
function decodeKeyLines(lines: readonly string[], file: string, firstLine: number): Buffer {
  lines.forEach((line, i) => {
    if (!isBase64Text(line)) {
      throw configError(
        ClientErrorCode.BAD_PRIVATE_KEY,
        { file, line: firstLine + i },
        'the private key is not valid base64',
      );
    }
  });
  const der = decodeBase64(lines.join(''));
  if (der === undefined) {
    throw configError(
      ClientErrorCode.BAD_PRIVATE_KEY,
      { file, line: firstLine },
      'the private key is not valid base64',
    );
  }
  return der;
}

function keyFromDer(der: Buffer, location: ConfigLocation): KeyObject {
  try {
    return loadPrivateKey(der);
  } catch {
    throw configError(
      ClientErrorCode.BAD_PRIVATE_KEY,
      location,
      'the private key is not an RSA key in PKCS#8 DER form',
    );
  }
}

const identityHint = (path: string): string =>
  `fix ${path} or delete it (and priv.key) to register anew`;

/** Parses me.info text (§8). `privKeyText` is used when me.info carries no key lines. */
export function parseMeInfo(
  text: string,
  path: string,
  privKey?: { readonly text: string; readonly path: string },
): Identity {
  const lines = splitConfigLines(text);
  const name = lines[MeInfoLine.NAME - 1] ?? '';
  if (name === '') {
    throw configError(
      ClientErrorCode.BAD_CLIENT_NAME,
      { file: path, line: MeInfoLine.NAME },
      'the client name is empty',
      identityHint(path),
    );
  }
  try {
    string255Bytes(name);
  } catch {
    throw configError(
      ClientErrorCode.BAD_CLIENT_NAME,
      { file: path, line: MeInfoLine.NAME },
      'the client name cannot be sent (control characters or over 254 bytes)',
      identityHint(path),
    );
  }
  const idText = lines[MeInfoLine.ID - 1] ?? '';
  const clientId = clientIdFromHex(idText);
  if (!clientId) {
    throw configError(
      ClientErrorCode.BAD_CLIENT_ID,
      { file: path, line: MeInfoLine.ID },
      idText === ''
        ? 'the client id is missing'
        : `"${idText}" is not a client id (32 hexadecimal characters)`,
      identityHint(path),
    );
  }
  const keyLines = lines.slice(MeInfoLine.KEY - 1);
  let der: Buffer;
  let location: ConfigLocation;
  if (keyLines.some((l) => l !== '')) {
    der = decodeKeyLines(keyLines, path, MeInfoLine.KEY);
    location = { file: path, line: MeInfoLine.KEY };
  } else if (privKey) {
    const privLines = splitConfigLines(privKey.text);
    der = decodeKeyLines(privLines, privKey.path, 1);
    location = { file: privKey.path, line: 1 };
  } else {
    throw configError(
      ClientErrorCode.BAD_PRIVATE_KEY,
      { file: path, line: MeInfoLine.KEY },
      `no private key on line ${MeInfoLine.KEY} and no ${PRIV_KEY} next to it`,
      identityHint(path),
    );
  }
  return { name, clientId, privateKey: keyFromDer(der, location), privateKeyDer: der };
}

/** Reads me.info (and priv.key if me.info has no key) from `configDir`; undefined if absent. */
export async function loadIdentity(configDir: string): Promise<Identity | undefined> {
  const mePath = join(configDir, ME_INFO);
  const text = await readOptionalText(mePath);
  if (text === undefined) return undefined;
  const privPath = join(configDir, PRIV_KEY);
  const hasKeyLines = splitConfigLines(text).length >= MeInfoLine.KEY;
  const privText = hasKeyLines ? undefined : await readOptionalText(privPath);
  return parseMeInfo(
    text,
    mePath,
    privText === undefined ? undefined : { text: privText, path: privPath },
  );
}

/** me.info text as we write it: one base64 line, so readers that take line 3 alone work too. */
export function formatMeInfo(identity: Pick<Identity, 'name' | 'clientId' | 'privateKeyDer'>) {
  return (
    `${identity.name}\n${clientIdToHex(identity.clientId)}\n` +
    `${identity.privateKeyDer.toString('base64')}\n`
  );
}

/**
 * Writes a file that holds the private key: atomically (a crash leaves the old file or the new
 * one) and with mode 0600 (§8).
 */
export async function writeSecretFile(path: string, data: string | Buffer): Promise<void> {
  try {
    await writeFileAtomic(path, data, { mode: SECRET_FILE_MODE });
  } catch (err) {
    throw configError(
      ClientErrorCode.CONFIG_WRITE_FAILED,
      { file: path },
      `cannot write the file (${errnoText(err)})`,
      'check that the config directory exists and is writable',
    );
  }
}

/**
 * Saves a new identity: priv.key first, then me.info, because me.info is what makes the next
 * run reconnect; a crash between the two leaves a run that registers anew.
 */
/** Mode of a config directory the client creates (it holds the private key). */
const PRIVATE_DIR_MODE = 0o700;

export async function saveIdentity(
  configDir: string,
  identity: Pick<Identity, 'name' | 'clientId' | 'privateKeyDer'>,
): Promise<void> {
  const keyText = `${identity.privateKeyDer.toString('base64')}\n`;
  // A --config-dir that does not exist yet is made, owner-only like the key it will hold.
  await mkdir(configDir, { recursive: true, mode: PRIVATE_DIR_MODE }).catch(() => undefined);
  await writeSecretFile(join(configDir, PRIV_KEY), keyText);
  await writeSecretFile(join(configDir, ME_INFO), formatMeInfo(identity));
}
