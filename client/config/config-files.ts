/**
 * What the client's three files have in common (docs/protocol.md §8): their names, the mode of
 * files holding the key, and how their text is read (lines, optional files).
 */
import { readFile } from 'node:fs/promises';
import { errnoCode } from '../../shared/errno';
import { ClientErrorCode, configError } from '../errors';

export const TRANSFER_INFO = 'transfer.info';
export const ME_INFO = 'me.info';
export const PRIV_KEY = 'priv.key';
/** The v4 identity (docs/protocol-v4.md §2.1): key and its self-signed certificate. */
export const IDENTITY_KEY_FILE = 'identity.key';
export const IDENTITY_CERT_FILE = 'identity.crt';
/** me.info and priv.key hold a private key: owner read/write only (§8). */
export const SECRET_FILE_MODE = 0o600;
/** Mode of a config directory the client creates (it holds the private key). */
export const PRIVATE_DIR_MODE = 0o700;

const UTF8_BOM = '\ufeff';

/** Lines of a text file: BOM and CR dropped, each trimmed, trailing blank lines removed. */
export function splitConfigLines(text: string): string[] {
  const body = text.startsWith(UTF8_BOM) ? text.slice(UTF8_BOM.length) : text;
  const lines = body.split(/\r?\n/).map((l) => l.trim());
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Reads a config file; undefined when it does not exist, CONFIG_UNREADABLE otherwise. */
export async function readOptionalText(path: string): Promise<string | undefined> {
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
