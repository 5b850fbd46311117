/**
 * `sft-client list`, `get NAME` and `delete NAME`: a client's own files over protocol v4
 * (docs/protocol-v4.md §5.6, §5.7). Version 3 has no such requests, so these never fall back:
 * against a server that speaks only v3 they stop with a clear error.
 */
import { basename, resolve } from 'node:path';
import { clientIdToHex } from '../../shared/client-id';
import { resolveConfig } from '../config/transfer-info';
import { ClientErrorCode, ExitCode, clientError, toClientError } from '../errors';
import { silentLog } from '../session/types';
import { downloadFile, refuseExisting, type DownloadResult } from '../v4/download';
import { checkRemoteName, deleteFile, listFiles, type ListedFile } from '../v4/files';
import { decryptorFor } from '../v4/e2e-files';
import { hasV4Identity, V4ClientSession } from '../v4/session';
import type { FileCommandLine } from './cli';
import { chooseMode, formatBytes, type OutputStreams } from './output';

const PROGRAM = 'sft-client';

type Outcome =
  | { readonly command: 'list'; readonly files: readonly ListedFile[] }
  | { readonly command: 'get'; readonly file: DownloadResult }
  | { readonly command: 'delete'; readonly name: string; readonly bytes: number };

interface Context {
  server?: string;
  clientId?: string;
  name?: string;
}

function listLines(files: readonly ListedFile[]): string[] {
  if (files.length === 0) return ['no files'];
  return files.map((f) => {
    const marks = [
      f.verified ? 'verified' : 'unverified',
      f.e2e ? 'e2e' : '',
      f.compressed ? 'deflated' : '',
    ]
      .filter((m) => m !== '')
      .join(',');
    return `${f.storedAt}  ${String(f.size).padStart(12)}  ${f.sha256 ?? '-'.padEnd(64)}  ${marks}  ${f.name}`;
  });
}

function textLines(outcome: Outcome): string[] {
  switch (outcome.command) {
    case 'list':
      return listLines(outcome.files);
    case 'get': {
      const f = outcome.file;
      const resumed = f.resumedFrom > 0 ? `, resumed from ${formatBytes(f.resumedFrom)}` : '';
      return [
        `${f.fileName} -> ${f.path}: ${formatBytes(f.bytes)}, sha256 ${f.sha256} verified` +
          `${f.e2e ? ', decrypted' : ''}${resumed}`,
      ];
    }
    case 'delete':
      return [`deleted ${outcome.name} (${formatBytes(outcome.bytes)})`];
    default:
      return outcome satisfies never;
  }
}

function jsonFields(outcome: Outcome): Record<string, unknown> {
  switch (outcome.command) {
    case 'list':
      return { files: outcome.files };
    case 'get':
      return { file: outcome.file };
    case 'delete':
      return { deleted: { name: outcome.name, bytes: outcome.bytes } };
    default:
      return outcome satisfies never;
  }
}

async function progressBar(
  streams: OutputStreams,
  label: string,
): Promise<{ update(received: number, size: number): void; stop(): void }> {
  const { SingleBar } = await import('cli-progress');
  const bar = new SingleBar({
    stream: streams.stdout as unknown as NodeJS.WritableStream,
    format: `${label} [{bar}] {percentage}% | {got}/{size} | ETA {eta_formatted}`,
    hideCursor: true,
    gracefulExit: false,
    barsize: 30,
  });
  let started = false;
  return {
    update(received, size) {
      if (!started) bar.start(size, 0, { got: formatBytes(0), size: formatBytes(size) });
      started = true;
      bar.update(received, { got: formatBytes(received), size: formatBytes(size) });
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

async function execute(
  cmd: FileCommandLine,
  streams: OutputStreams,
  context: Context,
  progress: boolean,
): Promise<Outcome> {
  const { flags } = cmd;
  if (flags.protocol === 'v3') {
    throw clientError(ClientErrorCode.USAGE, `${cmd.command} needs protocol v4; v3 can only send`);
  }
  const fileName = cmd.command === 'list' ? '' : checkRemoteName(cmd.fileName);
  // A stored name's folders are the server's; the download lands in the working directory.
  const outPath = cmd.command === 'get' ? resolve(cmd.output ?? basename(fileName)) : '';
  // Before connecting: an existing file is refused without touching the network.
  if (cmd.command === 'get') await refuseExisting(outPath, cmd.force);
  const config = await resolveConfig({
    configDir: flags.configDir,
    server: flags.server,
    name: flags.name,
    noFiles: true,
    nameOptional: await hasV4Identity(flags.configDir),
  });
  context.server = config.server.display;
  const opened = await V4ClientSession.open({
    configDir: config.configDir,
    server: config.server,
    protocol: flags.protocol,
    serverFingerprint: flags.serverFingerprint,
    registerName: config.registerName,
    v3Identity: config.identity,
    connectTimeoutMs: flags.connectTimeoutMs,
    responseTimeoutMs: flags.responseTimeoutMs,
    notice: (line) => {
      if (!flags.quiet && !flags.json) streams.stderr.write(`${PROGRAM}: ${line}\n`);
    },
    log: silentLog,
  });
  if (opened.kind !== 'v4') {
    throw clientError(
      ClientErrorCode.REJECTED,
      `${config.server.display} speaks only protocol v3, which cannot ${cmd.command} files`,
    );
  }
  const session = opened.session;
  context.clientId = clientIdToHex(session.clientId);
  context.name = session.name;
  const { link, chunkSize } = session.channel;
  try {
    switch (cmd.command) {
      case 'list':
        return { command: 'list', files: await listFiles(link) };
      case 'delete':
        return { command: 'delete', name: fileName, bytes: await deleteFile(link, fileName) };
      case 'get': {
        const bar = progress ? await progressBar(streams, fileName) : undefined;
        try {
          const file = await downloadFile(link, chunkSize, {
            fileName,
            outPath,
            force: cmd.force,
            decrypt: decryptorFor(config.configDir, fileName),
            ...(bar ? { onProgress: (got: number, size: number) => bar.update(got, size) } : {}),
          });
          return { command: 'get', file };
        } finally {
          bar?.stop();
        }
      }
      default:
        return cmd satisfies never;
    }
  } finally {
    session.close();
  }
}

/** Runs a file command; returns the exit code. */
export async function runFileCommand(
  cmd: FileCommandLine,
  streams: OutputStreams,
): Promise<number> {
  const mode = chooseMode(cmd.flags, Boolean(streams.stdout.isTTY));
  const context: Context = {};
  const base = (): Record<string, unknown> => ({
    command: cmd.command,
    server: context.server ?? null,
    clientId: context.clientId ?? null,
    name: context.name ?? null,
  });
  try {
    const outcome = await execute(cmd, streams, context, mode === 'progress');
    if (mode === 'json') {
      const doc = { ok: true, exitCode: ExitCode.OK, ...base(), ...jsonFields(outcome) };
      streams.stdout.write(`${JSON.stringify(doc)}\n`);
    } else if (mode !== 'quiet' || cmd.command === 'list') {
      for (const line of textLines(outcome)) streams.stdout.write(`${line}\n`);
    }
    return ExitCode.OK;
  } catch (err) {
    const ce = toClientError(err);
    streams.stderr.write(`${PROGRAM}: error: ${ce.message}\n`);
    if (ce.hint) streams.stderr.write(`${PROGRAM}: ${ce.hint}\n`);
    if (mode === 'json') {
      const error = { code: ce.code, message: ce.message, hint: ce.hint ?? null };
      const doc = { ok: false, exitCode: ce.exitCode, ...base(), error };
      streams.stdout.write(`${JSON.stringify(doc)}\n`);
    }
    return ce.exitCode;
  }
}
