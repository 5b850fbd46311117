/**
 * pino setup for both programs: JSON lines, human-readable (pino-pretty) when the output is a
 * terminal. Key material must never reach a log line; the redact list is a safety net for
 * fields that could hold it.
 */
import pino, { type Logger, type LevelWithSilent, type DestinationStream } from 'pino';

export type { Logger };

export const LOG_LEVELS: readonly LevelWithSilent[] = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
];

const REDACT = [
  'aesKey',
  'key',
  'privateKey',
  'wrappedKey',
  '*.aesKey',
  '*.privateKey',
  '*.wrappedKey',
];

export interface LoggerOptions {
  readonly name: string;
  readonly level?: LevelWithSilent;
  /** Force pretty output on or off; default: pretty when stdout is a terminal. */
  readonly pretty?: boolean;
  /** Where lines go (tests pass a stream); default stdout (fd 1). */
  readonly destination?: DestinationStream;
  /** Use stderr instead of stdout, so a program's own output stays clean. */
  readonly toStderr?: boolean;
}

export function createLogger(options: LoggerOptions): Logger {
  const fd = options.toStderr ? 2 : 1;
  const stream = options.toStderr ? process.stderr : process.stdout;
  const base = {
    name: options.name,
    level: options.level ?? 'info',
    redact: { paths: REDACT, censor: '[redacted]' },
  };
  if (options.destination) return pino(base, options.destination);
  const pretty = options.pretty ?? Boolean(stream.isTTY);
  if (pretty) {
    return pino({
      ...base,
      transport: {
        target: 'pino-pretty',
        options: { destination: fd, colorize: true, translateTime: 'SYS:standard' },
      },
    });
  }
  return pino(base, pino.destination({ fd, sync: false }));
}

/** A logger that drops everything (for tests and library use). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
