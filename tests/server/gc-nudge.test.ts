/**
 * `--gc-nudge` (off by default): a minor collection every few MiB of upload data, only in a
 * process started with `--expose-gc`; otherwise the flag is refused, never silently ignored.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GC_NUDGE_EVERY_BYTES, GcNudge, minorCollectorOf } from '../../server/transport/gc-nudge';
import { ExitCode } from '../../shared/exit-codes';
import { SERVER_MAIN } from '../helpers/server-process';

it('collects once per GC_NUDGE_EVERY_BYTES of data, not before', () => {
  let collections = 0;
  const nudge = new GcNudge(() => collections++);
  nudge.note(GC_NUDGE_EVERY_BYTES - 1);
  expect(collections).toBe(0);
  nudge.note(1);
  expect(collections).toBe(1);
  for (let i = 0; i < 8; i++) nudge.note(GC_NUDGE_EVERY_BYTES / 2);
  expect(collections).toBe(5);
});

it('asks for a minor collection from the gc of the process, and none without one', () => {
  const calls: unknown[] = [];
  const collect = minorCollectorOf({ gc: (options: unknown) => calls.push(options) });
  collect?.();
  expect(calls).toEqual([{ type: 'minor' }]);
  expect(minorCollectorOf({})).toBeUndefined();
});

it('sft-server --gc-nudge without --expose-gc: a usage error, the server does not start', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sft-gc-nudge-'));
  try {
    const run = spawnSync(
      process.execPath,
      [SERVER_MAIN, '--port', '0', '--data-dir', dir, '--gc-nudge'],
      { encoding: 'utf8', timeout: 20000, env: { ...process.env, NODE_OPTIONS: '' } },
    );
    expect(run.status).toBe(ExitCode.USAGE);
    expect(run.stderr).toContain('--expose-gc');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
