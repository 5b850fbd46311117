/**
 * What the client tells people: a progress bar on a terminal, plain lines otherwise, nothing
 * with --quiet, one JSON document with --json. Errors always go to stderr, and so does the §8
 * line `server responded with an error`, so stdout stays clean for scripts.
 */
import type { Writable } from 'node:stream';
import type { SingleBar } from 'cli-progress';
import { clientIdToHex } from '../../shared/client-id';
import type { Identity } from '../config/identity';
import type { ClientError } from '../errors';
import type { SessionEvents, UploadResult } from '../session/types';
import type { UploadPlan } from '../session/upload-plan';
import type { V4UploadResult } from '../v4/upload';

/** The exact line docs/protocol.md §8 asks for. */
export const SERVER_ERROR_LINE = 'server responded with an error';
const PROGRAM = 'sft-client';

export type OutputMode = 'progress' | 'plain' | 'json' | 'quiet';

export interface OutputStreams {
  readonly stdout: Writable & { readonly isTTY?: boolean };
  readonly stderr: Writable;
}

/** Everything a run produced, for the JSON document and the exit code. */
export interface RunSummary {
  readonly server?: string;
  readonly clientId?: string;
  readonly name?: string;
  /** True when this run registered, false when it reconnected. */
  readonly registered?: boolean;
  readonly files: readonly UploadResult[];
  readonly exitCode: number;
  readonly error?: ClientError;
}

export interface Output {
  readonly events: Partial<SessionEvents>;
  /**
   * The files of the run, before the first is sent. On a terminal, several files share one
   * progress bar (they may go over several connections at once), and their result lines
   * follow it at the end.
   */
  begin(plans: readonly Pick<UploadPlan, 'size'>[]): void;
  warn(message: string): void;
  /** One file's result; called in argument order. */
  fileDone(result: UploadResult): void;
  /** Prints a fatal error to stderr (message, then what to do). */
  fatal(err: ClientError): void;
  /** End of the run: the JSON document in json mode; stops any progress bar. */
  finish(summary: RunSummary): void;
  /** The run was stopped by a signal: restore the terminal and say so. */
  interrupted(signal: string): void;
}

export function chooseMode(
  flags: { readonly quiet?: boolean; readonly json?: boolean; readonly verbose?: boolean },
  stdoutIsTty: boolean,
): OutputMode {
  if (flags.json) return 'json';
  if (flags.quiet) return 'quiet';
  // Debug log lines and a redrawn bar would garble each other.
  return stdoutIsTty && !flags.verbose ? 'progress' : 'plain';
}

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB'] as const;
const KILO = 1000;

/** Bytes for people, decimal units as transfer rates are usually given. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= KILO && unit < UNITS.length - 1) {
    value /= KILO;
    unit++;
  }
  // Rates can be fractional: whole bytes below a kilobyte.
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

function rate(bytes: number, seconds: number): string {
  return seconds > 0 ? `${formatBytes(bytes / seconds)}/s` : '';
}

type BarFactory = (total: number, label: string) => SingleBar;

async function loadBarFactory(stream: Writable): Promise<BarFactory> {
  // Loaded only for a terminal: scripts should not pay for it at start-up.
  const { SingleBar } = await import('cli-progress');
  return (total, label) => {
    const bar = new SingleBar({
      stream: stream as unknown as NodeJS.WritableStream,
      format: `${label} [{bar}] {percentage}% | {sent}/{size} | {rate} | ETA {eta_formatted}`,
      hideCursor: true,
      // main.ts handles SIGINT/SIGTERM: cli-progress's own handler would keep the process alive.
      gracefulExit: false,
      clearOnComplete: false,
      barsize: 30,
      etaBuffer: 20,
    });
    bar.start(total, 0, { sent: formatBytes(0), size: formatBytes(total), rate: '' });
    return bar;
  };
}

/** Creates the output for `mode`; `now` gives milliseconds (injected for tests). */
export async function createOutput(
  mode: OutputMode,
  streams: OutputStreams,
  now: () => number = () => performance.now(),
): Promise<Output> {
  const makeBar = mode === 'progress' ? await loadBarFactory(streams.stdout) : undefined;
  const say = (line: string): void => {
    if (mode === 'plain' || mode === 'progress') streams.stdout.write(`${line}\n`);
  };
  let bar: { bar: SingleBar; started: number } | undefined;
  const stopBar = (): void => {
    bar?.bar.stop();
    bar = undefined;
  };
  /** Set by begin() for several files on a terminal: one bar over all of their bytes. */
  let combined:
    | {
        readonly total: number;
        readonly label: string;
        readonly started: number;
        /** Bytes sent of each file's current upload. */
        readonly sent: Map<UploadPlan, number>;
        /** Result lines, printed once the bar is done. */
        readonly lines: string[];
      }
    | undefined;
  const showCombined = (): void => {
    if (!combined || !makeBar) return;
    let bytes = 0;
    for (const b of combined.sent.values()) bytes += b;
    // A message on stderr stops the bar (see complain); the next progress draws a new one.
    bar ??= { bar: makeBar(combined.total, combined.label), started: combined.started };
    const seconds = (now() - combined.started) / 1000;
    bar.bar.update(bytes, { sent: formatBytes(bytes), rate: rate(bytes, seconds) });
  };
  const complain = (line: string): void => {
    stopBar();
    streams.stderr.write(`${line}\n`);
  };
  const who = (identity: Identity): string =>
    `"${identity.name}" (client id ${clientIdToHex(identity.clientId)})`;

  const events: Partial<SessionEvents> = {
    serverError(what, reason) {
      complain(SERVER_ERROR_LINE);
      if (mode !== 'quiet' && mode !== 'json') streams.stderr.write(`  ${what}: ${reason}\n`);
    },
    registered(identity) {
      say(`registered as ${who(identity)}; saved me.info and priv.key`);
    },
    reconnected(identity) {
      say(`reconnected as ${who(identity)}`);
    },
    reconnectRefused(name) {
      say(`the server does not know this client; registering anew as "${name}"`);
    },
    uploadStarted(plan: UploadPlan, attempt: number) {
      if (combined) {
        combined.sent.set(plan, 0);
        showCombined();
        return;
      }
      const again = attempt > 1 ? ` (upload ${attempt})` : '';
      if (makeBar) {
        stopBar();
        bar = { bar: makeBar(plan.size, `${plan.fileName}${again}`), started: now() };
      } else {
        say(`sending ${plan.fileName} (${formatBytes(plan.size)})${again}`);
      }
    },
    uploadProgress(plan, bytes) {
      if (combined) {
        combined.sent.set(plan, bytes);
        showCombined();
        return;
      }
      if (!bar) return;
      const seconds = (now() - bar.started) / 1000;
      bar.bar.update(bytes, { sent: formatBytes(bytes), rate: rate(bytes, seconds) });
    },
    checksumMismatch(plan, ours, theirs, resend) {
      stopBar();
      if (mode === 'quiet' || mode === 'json') return;
      streams.stderr.write(
        `${PROGRAM}: cksum of ${plan.fileName} differs (ours ${ours}, server ${theirs}); ` +
          `sending it again (${resend} of 3)\n`,
      );
    },
  };

  return {
    events,
    begin(plans) {
      if (!makeBar || plans.length < 2) return;
      let total = 0;
      for (const plan of plans) total += plan.size;
      combined = {
        total,
        label: `${plans.length} files`,
        started: now(),
        sent: new Map(),
        lines: [],
      };
    },
    warn(message) {
      if (mode === 'quiet') return;
      complain(`${PROGRAM}: warning: ${message}`);
    },
    fileDone(result) {
      const status = result.verified
        ? 'verified'
        : `NOT verified: cksum still differs after ${result.uploads} uploads`;
      const line =
        `${result.verified ? 'sent' : 'failed'} ${result.fileName}: ${formatBytes(result.bytes)} ` +
        `in ${result.seconds.toFixed(2)} s ${rate(result.bytes, result.seconds)}, ` +
        `cksum ${result.cksum}, ${status}`;
      if (combined) {
        combined.lines.push(line);
        return;
      }
      stopBar();
      say(line);
    },
    fatal(err) {
      complain(`${PROGRAM}: error: ${err.message}`);
      if (err.hint) streams.stderr.write(`${PROGRAM}: ${err.hint}\n`);
    },
    interrupted(signal) {
      complain(
        `${PROGRAM}: interrupted (${signal}); run again to send the rest: a version-4 server ` +
          'resumes an unfinished upload, a version-3 server starts it over',
      );
    },
    finish(summary) {
      stopBar();
      for (const line of combined?.lines ?? []) say(line);
      combined = undefined;
      if (mode !== 'json') return;
      const doc = {
        ok: summary.exitCode === 0,
        exitCode: summary.exitCode,
        server: summary.server ?? null,
        clientId: summary.clientId ?? null,
        name: summary.name ?? null,
        registered: summary.registered ?? null,
        files: summary.files.map((f) => ({
          file: f.file,
          name: f.fileName,
          bytes: f.bytes,
          cksum: f.cksum,
          verified: f.verified,
          uploads: f.uploads,
          seconds: Math.round(f.seconds * 1e6) / 1e6,
          ...v4ResultFields(f),
        })),
        ...(summary.error
          ? {
              error: {
                code: summary.error.code,
                message: summary.error.message,
                hint: summary.error.hint ?? null,
              },
            }
          : {}),
      };
      streams.stdout.write(`${JSON.stringify(doc)}\n`);
    },
  };
}

/** The v4 figures of a result, for the JSON summary (nothing for a v3 result). */
function v4ResultFields(result: UploadResult): Record<string, unknown> {
  if (!('sha256' in result)) return {};
  const v4 = result as V4UploadResult;
  return { sha256: v4.sha256, resumedFrom: v4.resumedFrom, bytesSent: v4.bytesSent };
}
