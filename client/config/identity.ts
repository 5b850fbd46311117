/**
 * The client's identity files (docs/protocol.md §8): `me.info` (name, client id, private key)
 * and `priv.key` (the key again). Every problem names the file and line; both are written
 * atomically with mode 0600.
 */
import type { KeyObject } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { string255Bytes } from '../../protocol/v3/fields';
import { writeFileAtomic } from '../../shared/atomic-file';
import { clientIdFromHex, clientIdToHex } from '../../shared/client-id';
import { loadPrivateKey } from '../../shared/crypto';
import { errnoText } from '../../shared/errno';
import { decodeBase64, isBase64Text } from '../../shared/validators';
import { ClientErrorCode, configError, type ConfigLocation } from '../errors';
import {
  ME_INFO,
  PRIVATE_DIR_MODE,
  PRIV_KEY,
  SECRET_FILE_MODE,
  readOptionalText,
  splitConfigLines,
} from './config-files';

const MeInfoLine = { NAME: 1, ID: 2, KEY: 3 } as const;

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
