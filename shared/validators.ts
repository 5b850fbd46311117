/**
 * Checks of text that client and server both apply: TCP ports, base64, control characters and
 * the plain-base-name rule for file names (docs/protocol.md §2, §9). Pure functions: each
 * returns a verdict (or a problem text) and leaves the error type to the caller.
 */

export const MAX_PORT = 65535;

/**
 * Control characters: C0 (U+0000–U+001F), DEL and C1 (U+0080–U+009F). None may appear in a
 * protocol string (§2), nor reach a terminal or a file system unescaped.
 */
// eslint-disable-next-line no-control-regex
export const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS_ALL = /[\u0000-\u001f\u007f-\u009f]/g;

export function hasControlCharacters(text: string): boolean {
  return CONTROL_CHARACTERS.test(text);
}

/** `text` with every control character written as `\xNN`, safe to print on a terminal. */
export function escapeControlCharacters(text: string): string {
  return text.replace(
    CONTROL_CHARACTERS_ALL,
    (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

/**
 * Parses a TCP port written as 1–5 decimal digits and nothing else: 1–65535, or 0 too with
 * `allowZero` (a listener's "any free port"). Undefined when it is not one.
 */
export function parsePort(text: string, options: { allowZero?: boolean } = {}): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  if (port > MAX_PORT || (port === 0 && !options.allowZero)) return undefined;
  return port;
}

const BASE64_TEXT = /^[A-Za-z0-9+/]*={0,2}$/;

/** True when `text`, blanks removed, uses only the base64 alphabet with padding at its end. */
export function isBase64Text(text: string): boolean {
  return BASE64_TEXT.test(text.replace(/\s+/g, ''));
}

/**
 * Decodes base64 (blanks and line breaks ignored). Undefined when it is empty or not base64:
 * characters outside the alphabet, padding in the middle, or a length no encoder produces.
 * Missing `=` padding is accepted unless `requirePadding` is set (other clients omit it).
 */
export function decodeBase64(
  text: string,
  options: { requirePadding?: boolean } = {},
): Buffer | undefined {
  const compact = text.replace(/\s+/g, '');
  if (compact === '' || !BASE64_TEXT.test(compact)) return undefined;
  const remainder = compact.length % 4;
  if (remainder === 1 || (options.requirePadding === true && remainder !== 0)) return undefined;
  const bytes = Buffer.from(compact, 'base64');
  return bytes.length === 0 ? undefined : bytes;
}

/**
 * Why `name` is not a plain base name (§9: no `/`, `\`, NUL or other control characters, not
 * empty, `.` or `..`), or undefined when it is one. Byte limits differ per use (a string255
 * field, a file-system name) and are checked where they apply.
 */
export function fileNameProblem(name: string): string | undefined {
  if (name === '') return 'file name is empty';
  if (name === '.' || name === '..') return 'file name is a dot directory';
  if (name.includes('/') || name.includes('\\')) return 'file name has a path separator';
  if (hasControlCharacters(name)) return 'file name has control characters';
  return undefined;
}

/** Folders a version-4 file name may have above its base name. */
export const MAX_NAME_FOLDERS = 32;

/**
 * Why `name` is not a version-4 file name (docs/protocol-v4.md §3.2), or undefined: a relative
 * path of plain base names joined by `/`, so no part can be empty, `.` or `..`, hold `\` or a
 * control character, and the whole never starts or ends with `/`; at most MAX_NAME_FOLDERS
 * folders deep.
 */
export function filePathProblem(name: string): string | undefined {
  const parts = name.split('/');
  if (parts.length > MAX_NAME_FOLDERS + 1)
    return `file name is more than ${MAX_NAME_FOLDERS} folders deep`;
  for (const part of parts) {
    const problem = fileNameProblem(part);
    if (problem !== undefined)
      return parts.length === 1 ? problem : `a part of the path: ${problem}`;
  }
  return undefined;
}
