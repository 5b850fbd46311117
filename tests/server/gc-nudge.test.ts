/**
 * `--gc-nudge auto|on|off` (default auto): a minor collection every few MiB of transfer data in
 * a process started with `--expose-gc`, as the `sft-server` bin starts node. Auto does without
 * quietly when node has no collector; `on` is then refused, never silently ignored.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { memoryNudgeFor, parseGcNudgeMode, UsageError } from '../../server/process/cli-options';
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

describe('--gc-nudge values', () => {
  it('is auto when absent; the older boolean forms keep their meaning', () => {
    expect(parseGcNudgeMode(undefined)).toBe('auto');
    for (const mode of ['auto', 'on', 'off'] as const) expect(parseGcNudgeMode(mode)).toBe(mode);
    // Bare `--gc-nudge` (yargs gives ''), `=true`, `--no-gc-nudge` (false), `=false`.
    expect(parseGcNudgeMode('')).toBe('on');
    expect(parseGcNudgeMode('true')).toBe('on');
    expect(parseGcNudgeMode(false)).toBe('off');
    expect(parseGcNudgeMode('false')).toBe('off');
    expect(() => parseGcNudgeMode('sometimes')).toThrow(UsageError);
  });

  it('auto and on collect through the gc of the process when it has one; off never', () => {
    let collections = 0;
    const scope = { gc: () => collections++ };
    for (const mode of ['auto', 'on'] as const) {
      const nudge = memoryNudgeFor(mode, scope);
      expect(nudge).toBeDefined();
      nudge?.note(GC_NUDGE_EVERY_BYTES);
    }
    expect(collections).toBe(2);
    expect(memoryNudgeFor('off', scope)).toBeUndefined();
  });

  it('without a gc: auto quietly does without, on is refused, off is off', () => {
    expect(memoryNudgeFor('auto', {})).toBeUndefined();
    expect(memoryNudgeFor('off', {})).toBeUndefined();
    expect(() => memoryNudgeFor('on', {})).toThrow(/--expose-gc/);
  });
});

describe('the built sft-server', () => {
  let dir: string;
  // Executable as npm makes a package's bin (`npm run build` does it too): the global setup
  // runs tsc alone, which writes a fresh dist without the mode.
  beforeAll(() => chmodSync(SERVER_MAIN, 0o755));
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sft-gc-nudge-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const serveArgs = (): string[] => ['--port', '0', '--host', '127.0.0.1', '--data-dir', dir];

  /** Starts `command args`, returns its "listening" log line and stops it. */
  async function listeningLine(command: string, args: string[]): Promise<Record<string, unknown>> {
    const child = spawn(command, args, {
      env: { ...process.env, NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      for await (const text of createInterface({ input: child.stdout })) {
        const line = JSON.parse(text) as Record<string, unknown>;
        if (line.msg === 'listening') return line;
      }
      throw new Error(`exited with ${String(await exited)} before listening: ${stderr}`);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  }

  it('runs as its own executable with node --expose-gc, so the nudge is on by default', async () => {
    expect(readFileSync(SERVER_MAIN, 'utf8').split('\n')[0]).toBe(
      '#!/usr/bin/env -S node --expose-gc',
    );
    const line = await listeningLine(SERVER_MAIN, serveArgs());
    expect(line.gcNudge).toBe(true);
  });

  it('under plain node: auto is off, --gc-nudge off is off', async () => {
    expect((await listeningLine(process.execPath, [SERVER_MAIN, ...serveArgs()])).gcNudge).toBe(
      false,
    );
    const off = await listeningLine(SERVER_MAIN, [...serveArgs(), '--gc-nudge', 'off']);
    expect(off.gcNudge).toBe(false);
  });

  it('--gc-nudge (on) under plain node: a usage error, the server does not start', () => {
    for (const flag of [['--gc-nudge'], ['--gc-nudge', 'on']]) {
      const run = spawnSync(process.execPath, [SERVER_MAIN, ...serveArgs(), ...flag], {
        encoding: 'utf8',
        timeout: 20000,
        env: { ...process.env, NODE_OPTIONS: '' },
      });
      expect(run.status).toBe(ExitCode.USAGE);
      expect(run.stderr).toContain('--expose-gc');
    }
  });

  it('a --gc-nudge value other than auto, on or off: a usage error', () => {
    const run = spawnSync(SERVER_MAIN, [...serveArgs(), '--gc-nudge', 'sometimes'], {
      encoding: 'utf8',
      timeout: 20000,
    });
    expect(run.status).toBe(ExitCode.USAGE);
    expect(run.stderr).toContain('auto, on or off');
  });
});
