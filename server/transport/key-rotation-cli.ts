/**
 * `sft-server identity rotate [--grace 7d]`, `identity promote` and `identity list [--json]`
 * (docs/protocol-v4.md §2.5). A running server picks the change up within a second.
 */
import { join, resolve } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { ExitCode } from '../../shared/exit-codes';
import { loadKeys, promote, rotate, type KeyPaths, type KeyRecord } from './key-rotation';
import { IDENTITY_DIR, identityPaths } from './tls-setup';

const DEFAULT_GRACE = '7d';

interface Args {
  'data-dir': string;
  json: boolean;
}

function pathsOf(dataDir: string): KeyPaths {
  const dir = resolve(dataDir);
  return { dir: join(dir, IDENTITY_DIR), ...identityPaths(dir) };
}

function time(ms: number): string | null {
  return ms === 0 ? null : new Date(ms).toISOString();
}

function view(key: KeyRecord): Record<string, unknown> {
  return {
    id: key.id,
    algorithm: key.algorithm,
    notBefore: time(key.notBefore),
    notAfter: time(key.notAfter),
    status: key.status,
  };
}

function lines(keys: readonly KeyRecord[]): string {
  return keys
    .map(
      (k) =>
        `${k.status.padEnd(8)} ${k.id}  ${k.algorithm}  from ${time(k.notBefore) ?? '-'}` +
        `  until ${time(k.notAfter) ?? '-'}\n`,
    )
    .join('');
}

function common<T>(y: Argv<T>): Argv<T & Args> {
  return y
    .option('data-dir', {
      type: 'string',
      default: '.',
      describe: 'the data directory of the server',
    })
    .option('json', { type: 'boolean', default: false, describe: 'one JSON document' })
    .strict() as unknown as Argv<T & Args>;
}

async function run(name: string, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (err) {
    process.stderr.write(`sft-server identity ${name}: ${(err as Error).message}\n`);
    process.exitCode = ExitCode.FAILURE;
  }
}

export function makeKeyCommands(
  parseDurationMs: (text: string) => number | undefined,
): CommandModule<object, Args>[] {
  const rotateCommand: CommandModule<object, Args & { grace: string }> = {
    command: 'rotate',
    describe: 'make the next identity key; clients learn it until the grace ends',
    builder: (y) =>
      common(y).option('grace', {
        type: 'string',
        default: DEFAULT_GRACE,
        describe: 'how long the current key is still presented (e.g. 12h, 7d)',
      }) as unknown as Argv<Args & { grace: string }>,
    handler: (args) =>
      run('rotate', async () => {
        const graceMs = parseDurationMs(args.grace);
        if (graceMs === undefined) throw new Error(`--grace: not a duration: ${args.grace}`);
        const loaded = await rotate(pathsOf(args['data-dir']), graceMs, Date.now);
        const next = loaded.keys.find((k) => k.status === 'next');
        if (args.json) {
          process.stdout.write(`${JSON.stringify({ keys: loaded.keys.map(view) })}\n`);
        } else {
          process.stdout.write(
            `next key ${next?.id ?? '?'}: presented from ${new Date(Date.now() + graceMs).toISOString()}` +
              ' or when you run sft-server identity promote\n',
          );
        }
      }),
  };
  const promoteCommand: CommandModule<object, Args> = {
    command: 'promote',
    describe: 'present the next key now; the current one is retired for good',
    builder: (y) => common(y),
    handler: (args) =>
      run('promote', async () => {
        const loaded = await promote(pathsOf(args['data-dir']), Date.now);
        if (args.json) {
          process.stdout.write(`${JSON.stringify({ keys: loaded.keys.map(view) })}\n`);
        } else {
          process.stdout.write(`presenting ${loaded.current.fingerprint}\n`);
        }
      }),
  };
  const listCommand: CommandModule<object, Args> = {
    command: 'list',
    describe: 'the key set: current, next and retired keys',
    builder: (y) => common(y),
    handler: (args) =>
      run('list', async () => {
        const loaded = await loadKeys(pathsOf(args['data-dir']), Date.now);
        process.stdout.write(
          args.json ? `${JSON.stringify({ keys: loaded.keys.map(view) })}\n` : lines(loaded.keys),
        );
      }),
  };
  return [rotateCommand as unknown as CommandModule<object, Args>, promoteCommand, listCommand];
}
