/**
 * The v4 parts of the server's command line: `sft-server identity` (the fingerprint clients
 * pin, docs/protocol-v4.md §2) and the `--v3` / `--partial-ttl` options of the daemon.
 */
import { resolve } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { ExitCode } from '../../shared/exit-codes';
import { identityPaths, serverIdentity } from './tls-setup';
import { makeKeyCommands } from './key-rotation-cli';

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/;
const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** `90s`, `30m`, `24h`, `7d`, or seconds; undefined when it is none of these or not positive. */
export function parseDurationMs(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (!match) return undefined;
  const ms = Number(match[1]) * (UNIT_MS[match[2] ?? 's'] ?? 1000);
  return ms > 0 && Number.isFinite(ms) ? ms : undefined;
}

/** Defaults of the v4 options; the TTL's is DEFAULT_PARTIAL_TTL_MS written for people. */
const V4_OPTION_DEFAULTS = { v3: 'on', partialTtl: '24h' } as const;

/** Adds `--v3` and `--partial-ttl` to the daemon's options. */
export function v4Options<T>(y: Argv<T>): Argv<T> {
  return y
    .option('v3', {
      choices: ['on', 'off'],
      default: V4_OPTION_DEFAULTS.v3,
      describe: 'accept protocol version 3 clients (off: only v4, TLS 1.3) on the same port',
    })
    .option('partial-ttl', {
      type: 'string',
      default: V4_OPTION_DEFAULTS.partialTtl,
      describe: 'age after which an interrupted v4 upload is deleted (e.g. 90m, 24h, 7d)',
    }) as unknown as Argv<T>;
}

interface IdentityArgs {
  'data-dir': string;
  json: boolean;
}

export const identityCommand: CommandModule<object, IdentityArgs> = {
  command: 'identity',
  describe: "print the server's v4 fingerprint (made on first use) for clients to pin",
  builder: (y) =>
    y
      .option('data-dir', {
        type: 'string',
        default: '.',
        describe: 'the data directory of the server',
      })
      .option('json', { type: 'boolean', default: false, describe: 'one JSON object' })
      .command(makeKeyCommands(parseDurationMs))
      .strict() as unknown as Argv<IdentityArgs>,
  handler: async (args) => {
    const dataDir = resolve(args['data-dir']);
    try {
      const identity = await serverIdentity(dataDir);
      if (args.json) {
        const paths = identityPaths(dataDir);
        process.stdout.write(
          JSON.stringify({
            fingerprint: identity.fingerprint,
            created: identity.created,
            key: paths.key,
            certificate: paths.cert,
          }) + '\n',
        );
      } else {
        process.stdout.write(`${identity.fingerprint}\n`);
      }
    } catch (err) {
      process.stderr.write(`sft-server identity: ${(err as Error).message}\n`);
      process.exitCode = ExitCode.FAILURE;
    }
  },
};
