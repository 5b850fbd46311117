/**
 * Annotated hex fixtures (tests/fixtures/*.hex), in the spirit of mqtt-packet's annotated byte
 * arrays: the expected bytes of one message, written by hand from docs/protocol.md (or copied from a
 * real capture), never produced by our encoder.
 *
 * Format, one field per line:
 *   - `#` starts a comment that runs to the end of the line; blank lines are ignored.
 *   - Bytes as hex, two digits each, upper or lower case; spaces between them are allowed:
 *     `0104` and `01 04` are the same two bytes.
 *   - `<hex>*<count>` repeats the bytes `<hex>` `<count>` times (count in decimal): `00*239` is
 *     239 NUL bytes, `abcd*2` is `abcdabcd`.
 *   - A long field may continue over several lines; only the first needs the comment.
 * Anything else (odd digit count, stray characters, a zero count) is an error naming the file
 * and the line, so a typo cannot silently change a fixture.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

export const FIXTURE_DIR = path.resolve(__dirname, '..', 'fixtures');

const HEX_BYTES = /^(?:[0-9a-fA-F]{2})+$/;
const RUN = /^((?:[0-9a-fA-F]{2})+)\*([0-9]+)$/;

function tokenBytes(token: string, where: string): Buffer {
  const run = RUN.exec(token);
  if (run) {
    const count = Number(run[2]);
    if (!Number.isSafeInteger(count) || count < 1) {
      throw new Error(`${where}: repeat count must be a positive integer in "${token}"`);
    }
    return Buffer.from(run[1].repeat(count), 'hex');
  }
  if (HEX_BYTES.test(token)) return Buffer.from(token, 'hex');
  throw new Error(`${where}: "${token}" is neither hex bytes nor <hex>*<count>`);
}

/** Parses the text of an annotated hex fixture into its bytes. */
export function parseHexFixture(text: string, source = 'hex fixture'): Buffer {
  const parts: Buffer[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const hash = line.indexOf('#');
    const body = (hash < 0 ? line : line.slice(0, hash)).trim();
    if (body === '') return;
    for (const token of body.split(/\s+/)) {
      parts.push(tokenBytes(token, `${source}:${i + 1}`));
    }
  });
  return Buffer.concat(parts);
}

/** Loads `tests/fixtures/<name>.hex` (name without the extension). */
export function loadHexFixture(name: string): Buffer {
  const file = path.join(FIXTURE_DIR, `${name}.hex`);
  return parseHexFixture(readFileSync(file, 'utf8'), path.relative(process.cwd(), file));
}
