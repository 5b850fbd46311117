/**
 * Output and argument helpers of `sft-server admin` (admin.ts): `--since` parsing, terminal-safe
 * text and aligned tables.
 */
import { escapeControlCharacters } from '../../shared/validators';

const UNIT_MS: Readonly<Record<string, number>> = {
  s: 1000,
  m: 60 * 1000,
  h: 60 * 60 * 1000,
  d: 24 * 60 * 60 * 1000,
  w: 7 * 24 * 60 * 60 * 1000,
};
const RELATIVE = /^(\d+)\s*([smhdw])$/;

export class AdminUsageError extends Error {
  override readonly name = 'AdminUsageError';
}

/** `--since` as milliseconds since the epoch. */
export function parseSince(text: string, now: number): number {
  const trimmed = text.trim();
  const relative = RELATIVE.exec(trimmed);
  if (relative) {
    const [, amount, unit] = relative;
    return now - Number(amount) * (UNIT_MS[unit as string] as number);
  }
  // Date.parse also takes loose formats; insist on something that starts like ISO 8601.
  const time = /^\d{4}-\d{2}-\d{2}/.test(trimmed) ? Date.parse(trimmed) : Number.NaN;
  if (Number.isNaN(time)) {
    throw new AdminUsageError(
      `--since ${JSON.stringify(text)}: give an ISO time (2024-05-01T12:00:00Z) or an age ` +
        'like 30s, 15m, 1h, 2d, 1w',
    );
  }
  return time;
}

/**
 * Makes text safe for a terminal: names and details come from the network, and a control
 * character (an ANSI escape) must not reach the admin's terminal as such.
 */
export function printable(text: string): string {
  return escapeControlCharacters(text);
}

export function iso(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? String(ms) : date.toISOString();
}

export function hexOrDash(id: Buffer | null): string {
  return id ? id.toString('hex') : '-';
}

/** Left-aligned columns separated by two spaces; numbers right-aligned. */
export function formatTable(
  headers: readonly string[],
  rows: ReadonlyArray<ReadonlyArray<string | number>>,
): string {
  const cells = rows.map((row) =>
    row.map((cell) => (typeof cell === 'number' ? String(cell) : printable(cell))),
  );
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...cells.map((row) => (row[column] ?? '').length)),
  );
  const numeric = headers.map((_, column) => rows.every((row) => typeof row[column] === 'number'));
  const line = (row: readonly string[]): string =>
    row
      .map((cell, column) => {
        const width = widths[column] ?? 0;
        const last = column === row.length - 1;
        if (numeric[column] && rows.length > 0) return cell.padStart(width);
        return last ? cell : cell.padEnd(width);
      })
      .join('  ')
      .trimEnd();
  return [line([...headers]), ...cells.map(line)].join('\n') + '\n';
}

export function write(stream: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise((resolve) => {
    if (stream.write(text)) resolve();
    else stream.once('drain', () => resolve());
  });
}
