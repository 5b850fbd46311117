/**
 * The keys of the ByteStore, one grammar for every backend. Sessions and catalogs treat keys as
 * opaque strings; backends check them here before touching anything, so no key can name a
 * place outside the storage root.
 *
 * - A live file: `<client-id-hex>/<file name>` (the §7 `PathName`, docs/protocol.md §7).
 * - A kept version: `.versions/<client-id-hex>/<file name>/<n>`. The first segment is never a
 *   client id (32 hex digits), so no version key can equal or contain a live key, whatever
 *   names clients choose (§9 allows `.versions` as a file name).
 * Client ids are lowercase hex. A file name is a plain base name (§9), or over version 4 a
 * relative path of them (docs/protocol-v4.md §3.2); in a key its `/` are written `\`, which no
 * part of a name may hold, so every name is one key segment (one file of the client's folder,
 * whatever folders the name has) and no two names share one. At most 255 bytes: the longest
 * name most file systems take for one path component.
 */
import { filePathProblem } from '../../shared/validators';
import { StorageError, StorageErrorCode } from './types';

export const VERSIONS_SEGMENT = '.versions';
/** Longest name most file systems allow for one path component (bytes). */
export const NAME_MAX_BYTES = 255;
const CLIENT_ID_HEX = /^[0-9a-f]{32}$/;
const VERSION_NUMBER = /^[1-9][0-9]{0,14}$/;

export type ParsedKey =
  | { readonly kind: 'live'; readonly clientIdHex: string; readonly fileName: string }
  | {
      readonly kind: 'version';
      readonly clientIdHex: string;
      readonly fileName: string;
      readonly version: number;
    };

function escapeError(message: string): StorageError {
  return new StorageError(StorageErrorCode.PATH_ESCAPE, message);
}

/** The canonical (lowercase) form of a client id in hex, or PATH_ESCAPE. */
export function checkClientIdHex(clientIdHex: string): string {
  const hex = clientIdHex.toLowerCase();
  if (!CLIENT_ID_HEX.test(hex)) {
    throw escapeError(`client id ${JSON.stringify(clientIdHex)} is not 32 hex characters`);
  }
  return hex;
}

/** The key segment of a file name (its `/` written `\`), or PATH_ESCAPE. */
export function objectName(fileName: string): string {
  if (filePathProblem(fileName) !== undefined || Buffer.byteLength(fileName) > NAME_MAX_BYTES) {
    throw escapeError(`file name ${JSON.stringify(fileName)} is not a file name`);
  }
  return fileName.replaceAll('/', '\\');
}

/** The file name a key segment stands for, or PATH_ESCAPE. */
function fileNameOf(segment: string): string {
  const fileName = segment.replaceAll('\\', '/');
  objectName(fileName);
  return fileName;
}

export function liveKey(clientIdHex: string, fileName: string): string {
  return `${checkClientIdHex(clientIdHex)}/${objectName(fileName)}`;
}

export function versionKey(clientIdHex: string, fileName: string, version: number): string {
  if (!Number.isSafeInteger(version) || version < 1) {
    throw escapeError(`version ${version} is not a positive whole number`);
  }
  const hex = checkClientIdHex(clientIdHex);
  return `${VERSIONS_SEGMENT}/${hex}/${objectName(fileName)}/${version}`;
}

/** The prefixes under which all objects of a client lie (live files, then versions). */
export function clientPrefixes(clientIdHex: string): readonly string[] {
  const hex = checkClientIdHex(clientIdHex);
  return [`${hex}/`, `${VERSIONS_SEGMENT}/${hex}/`];
}

/** Checks a key against the grammar above (canonical form only), or PATH_ESCAPE. */
export function parseKey(key: string): ParsedKey {
  const parts = key.split('/');
  const [first, second, third, fourth] = parts;
  if (parts.length === 2 && first !== undefined && second !== undefined) {
    if (CLIENT_ID_HEX.test(first)) {
      return { kind: 'live', clientIdHex: first, fileName: fileNameOf(second) };
    }
  }
  if (
    parts.length === 4 &&
    first === VERSIONS_SEGMENT &&
    second !== undefined &&
    CLIENT_ID_HEX.test(second) &&
    third !== undefined &&
    fourth !== undefined &&
    VERSION_NUMBER.test(fourth)
  ) {
    return {
      kind: 'version',
      clientIdHex: second,
      fileName: fileNameOf(third),
      version: Number(fourth),
    };
  }
  throw escapeError(`key ${JSON.stringify(key)} is not a storage key`);
}

/**
 * Checks a prefix for `removePrefix`: whole segments of a key, ending in `/`, at least down to
 * a client (`<hex>/` or `.versions/<hex>/`), optionally one file name further for versions.
 * Returns its segments.
 */
export function parsePrefix(prefix: string): readonly string[] {
  const parts = prefix.split('/');
  const last = parts.pop();
  const [first, second, third] = parts;
  const ok =
    last === '' &&
    ((parts.length === 1 && first !== undefined && CLIENT_ID_HEX.test(first)) ||
      (parts.length >= 2 &&
        parts.length <= 3 &&
        first === VERSIONS_SEGMENT &&
        second !== undefined &&
        CLIENT_ID_HEX.test(second) &&
        (third === undefined || objectName(fileNameOf(third)) === third)));
  if (!ok) throw escapeError(`prefix ${JSON.stringify(prefix)} is not a storage key prefix`);
  return parts;
}
