#!/usr/bin/env node
/**
 * `sft-client`: uploads files to an sft-server (docs/protocol.md §5, §8). The command line is
 * in cli.ts; pino and cli-progress load only when needed, to keep start-up short.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { IDENTITY_KEY_FILE, ME_INFO, PRIV_KEY } from '../config/config-files';
import { E2E_KEY_FILE } from '../config/e2e-key';
import { clientIdToHex } from '../../shared/client-id';
import type { Identity } from '../config/identity';
import { resolveConfig, type ResolvedConfig } from '../config/transfer-info';
import { ClientErrorCode, ExitCode, clientError, toClientError, type ClientError } from '../errors';
import { parseCommandLine, type CommandLine, type SendFlags } from './cli';
import {
  chooseMode,
  createOutput,
  type Output,
  type OutputStreams,
  type RunSummary,
} from './output';
import { expandDirectories } from '../session/file-list';
import { degradedNote } from '../session/worker-pool';
import { silentLog, type ClientLog, type UploadResult } from '../session/types';
import type { UploadPlan } from '../session/upload-plan';
import { prepareUploadPlans } from '../v4/plan';
import { choosesV3, hasV4Identity } from '../v4/protocol-choice';
import type { V4ClientSession, V4Open } from '../v4/session';

/** Shell convention: 128 + signal number. */
const SIGNAL_EXIT_CODES: readonly (readonly [NodeJS.Signals, number])[] = [
  ['SIGINT', 130],
  ['SIGTERM', 143],
];

function packageVersion(): string {
  // dist/client/process/main.js and client/process/main.ts sit at different depths.
  for (const up of [
    ['..', '..'],
    ['..', '..', '..'],
  ]) {
    try {
      const pkg = JSON.parse(readFileSync(join(__dirname, ...up, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'secure-file-transfer' && pkg.version) return pkg.version;
    } catch {
      // try the next level
    }
  }
  return 'unknown';
}

async function createLog(verbose: boolean): Promise<ClientLog> {
  if (!verbose) return silentLog;
  const { createLogger } = await import('../../shared/logger');
  return createLogger({ name: 'sft-client', level: 'debug', toStderr: true, pretty: false });
}

/** The v4 session, or word to speak v3 (`--protocol v3`, or auto against a v3-only server). */
async function openV4(
  flags: SendFlags,
  config: ResolvedConfig,
  output: Output,
  log: ClientLog,
): Promise<V4Open> {
  const choice = {
    configDir: config.configDir,
    server: config.server,
    protocol: flags.protocol,
    serverFingerprint: flags.serverFingerprint,
  };
  // Decided here too, so a v3 run does not load the v4 session to be told so.
  if (await choosesV3(choice)) return { kind: 'v3' };
  const { V4ClientSession } = await import('../v4/session');
  return V4ClientSession.open({
    ...choice,
    registerName: config.registerName,
    v3Identity: config.identity,
    connectTimeoutMs: flags.connectTimeoutMs,
    responseTimeoutMs: flags.responseTimeoutMs,
    notice: (line) => output.warn(line),
    events: output.events,
    log,
  });
}

interface V3Callbacks {
  readonly onOpen: (identity: Identity, registered: boolean) => void;
  readonly onResult: (result: UploadResult) => void;
}

/** Sends `plans` over protocol v3, on up to --parallel connections (docs/protocol.md §5). */
async function sendV3(
  plans: readonly UploadPlan[],
  flags: SendFlags,
  config: ResolvedConfig,
  output: Output,
  log: ClientLog,
  callbacks: V3Callbacks,
): Promise<void> {
  const [{ sendInParallel }, { connectTransport }, { saveIdentity }] = await Promise.all([
    import('../session/parallel'),
    import('../transport/connection'),
    import('../config/identity'),
  ]);
  const timeouts = {
    connectTimeoutMs: flags.connectTimeoutMs,
    responseTimeoutMs: flags.responseTimeoutMs,
  };
  output.begin(plans);
  await sendInParallel({
    session: {
      connect: () => connectTransport(config.server, timeouts),
      identity: config.identity,
      registerName: config.registerName,
      saveIdentity: (identity) => saveIdentity(config.configDir, identity),
      events: output.events,
      log,
    },
    plans,
    connections: flags.parallel,
    onOpen: callbacks.onOpen,
    onResult: callbacks.onResult,
    onDegraded: (degraded) => output.warn(degradedNote(degraded)),
  });
}

/** Runs the client with `argv` (no node/script); returns the exit code. */
export async function run(argv: readonly string[], streams: OutputStreams): Promise<number> {
  let commandLine: CommandLine;
  try {
    commandLine = await parseCommandLine(argv, packageVersion());
  } catch (err) {
    const ce = toClientError(err);
    streams.stderr.write(`sft-client: error: ${ce.message}\n`);
    if (ce.hint) streams.stderr.write(`sft-client: ${ce.hint}\n`);
    return ce.exitCode;
  }
  if (commandLine.command === 'print') {
    streams.stdout.write(commandLine.text);
    return ExitCode.OK;
  }
  if (commandLine.command !== 'send') {
    // Loaded for list/get/delete only: an upload does not pay for their modules at start-up.
    const { runFileCommand } = await import('./file-commands');
    return runFileCommand(commandLine, streams);
  }
  const { flags } = commandLine;

  const mode = chooseMode(flags, Boolean(streams.stdout.isTTY));
  const output = await createOutput(mode, streams);
  if (mode === 'progress' && streams.stdout === process.stdout) {
    // Restore the cursor the progress bar hides, then end as the signal would have.
    for (const [signal, code] of SIGNAL_EXIT_CODES) {
      process.once(signal, () => {
        output.interrupted(signal);
        process.exit(code);
      });
    }
  }
  const log = await createLog(flags.verbose);
  const files: UploadResult[] = [];
  let v4Session: V4ClientSession | undefined;
  let summary: Omit<RunSummary, 'exitCode' | 'files'> = {};
  try {
    const config = await resolveConfig({
      configDir: flags.configDir,
      server: flags.server,
      name: flags.name,
      files: flags.files,
      nameOptional: flags.protocol !== 'v3' && (await hasV4Identity(flags.configDir)),
    });
    summary = { server: config.server.display };
    if (config.identity && flags.name !== undefined && flags.name.trim() !== config.identity.name) {
      output.warn(
        `me.info is registered as "${config.identity.name}"; --name "${flags.name}" is used ` +
          'only if the server asks this client to register anew (delete me.info to register ' +
          'under the new name)',
      );
    }
    const expanded = await expandDirectories(config.files, {
      recursive: flags.recursive,
      exclude: [ME_INFO, PRIV_KEY, IDENTITY_KEY_FILE, E2E_KEY_FILE].map((name) =>
        join(config.configDir, name),
      ),
    });
    if (expanded.skipped.length > 0) {
      output.warn(`not sending ${expanded.skipped.join(', ')}: a private key of this client`);
    }
    const prepared = prepareUploadPlans(flags.protocol, expanded.files);
    log.debug({ server: config.server.display, files: prepared.v4.length }, 'starting');
    // Version 4 unless the server speaks only v3 (docs/protocol-v4.md §2.4); exit 6 on a
    // fingerprint mismatch or a refused downgrade, before any file byte is sent. The modules
    // of the protocol not spoken are not loaded.
    const v4 = await openV4(flags, config, output, log);
    if (v4.kind === 'v4') {
      v4Session = v4.session;
      summary = {
        ...summary,
        clientId: clientIdToHex(v4Session.clientId),
        name: v4Session.name,
        registered: v4Session.registered,
      };
      const [e2e, { uploadInParallel }] = await Promise.all([
        flags.e2e ? import('../v4/e2e-files') : undefined,
        import('../v4/parallel-upload'),
      ]);
      const options = { compress: flags.compress };
      output.begin(prepared.v4);
      await uploadInParallel({
        first: v4Session,
        plans: prepared.v4,
        connections: flags.parallel,
        extra: {
          server: config.server,
          connectTimeoutMs: flags.connectTimeoutMs,
          responseTimeoutMs: flags.responseTimeoutMs,
        },
        upload: (session, plan) =>
          e2e
            ? e2e.uploadEncrypted(session, plan, config.configDir, options)
            : session.upload(plan, options),
        sizeOnWire: e2e?.sealedSize,
        onResult: (result) => {
          files.push(result);
          output.fileDone(result);
        },
        onDegraded: (degraded) => output.warn(degradedNote(degraded)),
      });
      v4Session.close();
      output.finish({ ...summary, files, exitCode: ExitCode.OK });
      return ExitCode.OK;
    }
    if (flags.e2e) {
      // Sending in the clear what was asked to be encrypted is never a fallback.
      throw clientError(
        ClientErrorCode.DOWNGRADE_REFUSED,
        `${config.server.display} speaks only protocol v3, which cannot store files end-to-end ` +
          'encrypted; nothing was sent',
      );
    }
    if (flags.compress) output.warn('--compress applies to protocol v4 only: sending as v3 does');
    await sendV3(prepared.v3(), flags, config, output, log, {
      onOpen: (identity, registered) => {
        summary = {
          ...summary,
          clientId: clientIdToHex(identity.clientId),
          name: identity.name,
          registered,
        };
      },
      onResult: (result) => {
        files.push(result);
        output.fileDone(result);
      },
    });
    const failed = files.filter((f) => !f.verified);
    if (failed.length > 0) {
      throw clientError(
        ClientErrorCode.CHECKSUM_FAILED,
        `the server's cksum of ${failed.map((f) => f.fileName).join(', ')} never matched ours ` +
          'after 4 uploads; the upload was abandoned (1031)',
        {
          hint:
            'the file may have changed while it was sent, or data is corrupted on the way or ' +
            'on the server; try again',
        },
      );
    }
    output.finish({ ...summary, files, exitCode: ExitCode.OK });
    return ExitCode.OK;
  } catch (err) {
    v4Session?.close();
    const ce: ClientError = toClientError(err);
    if (ce.code === ClientErrorCode.INTERNAL) {
      log.debug({ stack: (err as Error)?.stack }, 'internal error');
    }
    output.fatal(ce);
    output.finish({ ...summary, files, exitCode: ce.exitCode, error: ce });
    return ce.exitCode;
  }
}

if (require.main === module) {
  void run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr }).then(
    (code) => {
      process.exitCode = code;
      // Nothing should be left running; if something is, do not hang a script.
      setTimeout(() => process.exit(code), 2000).unref();
    },
  );
}
