/**
 * Parsing of the server's command-line values that are more than a number: the port (flag,
 * else port.info, else the default, docs/protocol.md §7), byte sizes with unit suffixes and
 * the `--gc-nudge` choice.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertNever } from '../../protocol/errors';
import { GcNudge, minorCollectorOf, type MemoryNudge } from '../transport/gc-nudge';
import { isNotFound } from '../../shared/errno';
import { DEFAULT_PORT } from '../../shared/limits';
import { MAX_PORT, parsePort as parsePortText } from '../../shared/validators';

export const PORT_INFO_FILE = 'port.info';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export type PortSource = 'flag' | 'port.info' | 'default';

function parsePort(text: string, where: string, allowZero: boolean): number {
  const trimmed = text.trim();
  const port = parsePortText(trimmed, { allowZero });
  if (port === undefined) {
    throw new UsageError(`${where}: ${JSON.stringify(trimmed)} is not a TCP port (1-${MAX_PORT})`);
  }
  return port;
}

/** --port (0 = any free port), else port.info in `cwd`, else 1256 (§7). */
export function resolvePort(
  flag: number | string | undefined,
  cwd: string,
): { port: number; source: PortSource } {
  if (flag !== undefined) return { port: parsePort(String(flag), '--port', true), source: 'flag' };
  const file = join(cwd, PORT_INFO_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (isNotFound(err)) {
      return { port: DEFAULT_PORT, source: 'default' };
    }
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
  const firstLine = text.split(/\r?\n/)[0] ?? '';
  return { port: parsePort(firstLine, `${file} line 1`, false), source: 'port.info' };
}

const UNITS: Readonly<Record<string, number>> = {
  '': 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
};

/**
 * A byte count: digits with an optional binary unit (`64M` = 64 MiB, `2G`, `512k`, `10MB`).
 * `0`, `none` and `unlimited` mean no limit (returned as undefined).
 */
export function parseByteSize(text: string, flag: string): number | undefined {
  const t = text.trim().toLowerCase();
  if (t === 'none' || t === 'unlimited' || t === '0') return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/.exec(t);
  if (!m) {
    throw new UsageError(
      `${flag}: ${JSON.stringify(text)} is not a size (e.g. 1048576, 512K, 64M, 2G)`,
    );
  }
  const bytes = Math.floor(Number(m[1]) * UNITS[m[2]]);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new UsageError(`${flag}: ${JSON.stringify(text)} is out of range`);
  }
  return bytes;
}

export function positiveNumber(value: unknown, flag: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) {
    throw new UsageError(`${flag}: ${JSON.stringify(value)} must be a positive number`);
  }
  return n;
}

export function positiveInteger(value: unknown, flag: string): number {
  const n = positiveNumber(value, flag);
  if (!Number.isSafeInteger(n)) {
    throw new UsageError(`${flag}: ${JSON.stringify(value)} must be a whole number`);
  }
  return n;
}

export function nonNegativeInteger(value: unknown, flag: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new UsageError(`${flag}: ${JSON.stringify(value)} must be a whole number, 0 or more`);
  }
  return n;
}

export type GcNudgeMode = 'auto' | 'on' | 'off';

/**
 * `--gc-nudge auto|on|off`; absent means `auto`. The flag was a boolean before it took a value,
 * so its boolean forms keep their meaning: bare `--gc-nudge` and `=true` are `on`,
 * `--no-gc-nudge` and `=false` are `off`.
 */
export function parseGcNudgeMode(value: unknown): GcNudgeMode {
  if (value === undefined) return 'auto';
  if (value === '' || value === true || value === 'true') return 'on';
  if (value === false || value === 'false') return 'off';
  if (value === 'auto' || value === 'on' || value === 'off') return value;
  throw new UsageError(`--gc-nudge: ${JSON.stringify(value)} is not auto, on or off`);
}

/**
 * The memory nudge `mode` asks for in a process whose globals are `scope`. The collector is the
 * `gc` function node gives only when started with `--expose-gc` (the `sft-server` bin is):
 * `auto` uses it when present and quietly does without; `on` without it is refused rather than
 * pretending.
 */
export function memoryNudgeFor(
  mode: GcNudgeMode,
  scope: { gc?: unknown },
): MemoryNudge | undefined {
  switch (mode) {
    case 'off':
      return undefined;
    case 'auto': {
      const collect = minorCollectorOf(scope);
      return collect === undefined ? undefined : new GcNudge(collect);
    }
    case 'on': {
      const collect = minorCollectorOf(scope);
      if (collect === undefined) {
        throw new UsageError(
          '--gc-nudge on needs node started with --expose-gc (the sft-server bin does this; ' +
            'under plain node: node --expose-gc …/main.js, or NODE_OPTIONS=--expose-gc)',
        );
      }
      return new GcNudge(collect);
    }
    default:
      return assertNever(mode, '--gc-nudge mode');
  }
}
