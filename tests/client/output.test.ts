/** Output modes: which one is chosen, and what each writes where. */
import { Writable } from 'node:stream';
import { ClientErrorCode, clientError } from '../../client/errors';
import {
  SERVER_ERROR_LINE,
  chooseMode,
  createOutput,
  formatBytes,
  type OutputMode,
} from '../../client/process/output';
import type { UploadResult } from '../../client/session/types';
import { planUpload } from '../../client/session/upload-plan';

class Capture extends Writable {
  text = '';
  constructor(readonly isTTY = false) {
    super();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString('utf8');
    done();
  }
}

const plan = planUpload('/data/report.bin', 64_000_000);
const result: UploadResult = {
  file: '/data/report.bin',
  fileName: 'report.bin',
  bytes: 64_000_000,
  cksum: 1234,
  verified: true,
  uploads: 1,
  seconds: 0.5,
};

async function exercise(mode: OutputMode, tty = false) {
  const stdout = new Capture(tty);
  const stderr = new Capture();
  let clock = 0;
  const out = await createOutput(mode, { stdout, stderr }, () => clock);
  out.events.uploadStarted?.(plan, 1);
  clock = 250;
  out.events.uploadProgress?.(plan, 32_000_000);
  out.events.serverError?.('upload of report.bin', 'general error 1607');
  out.events.uploadStarted?.(plan, 2);
  out.events.uploadProgress?.(plan, 64_000_000);
  out.fileDone(result);
  out.finish({
    server: 'h:1',
    clientId: 'ab',
    name: 'n',
    registered: false,
    files: [result],
    exitCode: 0,
  });
  return { stdout: stdout.text, stderr: stderr.text };
}

describe('chooseMode', () => {
  it.each([
    [{}, true, 'progress'],
    [{}, false, 'plain'],
    [{ verbose: true }, true, 'plain'],
    [{ quiet: true }, true, 'quiet'],
    [{ json: true }, true, 'json'],
    [{ json: true, quiet: true }, false, 'json'],
  ] as const)('%j with a TTY: %s → %s', (flags, tty, mode) => {
    expect(chooseMode(flags, tty)).toBe(mode);
  });
});

describe('createOutput', () => {
  it('plain: lines on stdout, the §8 line and its details on stderr', async () => {
    const { stdout, stderr } = await exercise('plain');
    expect(stdout).toBe(
      'sending report.bin (64.0 MB)\n' +
        'sending report.bin (64.0 MB) (upload 2)\n' +
        'sent report.bin: 64.0 MB in 0.50 s 128.0 MB/s, cksum 1234, verified\n',
    );
    expect(stderr).toBe(`${SERVER_ERROR_LINE}\n  upload of report.bin: general error 1607\n`);
  });

  it('progress: a bar with bytes, rate and ETA on the terminal', async () => {
    const { stdout, stderr } = await exercise('progress', true);
    expect(stdout).toContain('report.bin [');
    expect(stdout).toContain('32.0 MB/64.0 MB');
    expect(stdout).toContain('128.0 MB/s');
    expect(stdout).toContain('ETA');
    expect(stdout).toContain('sent report.bin: 64.0 MB');
    expect(stderr.split('\n')).toContain(SERVER_ERROR_LINE);
  });

  it('quiet: nothing on stdout; only the §8 line on stderr', async () => {
    const { stdout, stderr } = await exercise('quiet');
    expect(stdout).toBe('');
    expect(stderr).toBe(`${SERVER_ERROR_LINE}\n`);
  });

  it('json: exactly one JSON document on stdout', async () => {
    const { stdout, stderr } = await exercise('json');
    expect(stdout.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(stdout)).toEqual({
      ok: true,
      exitCode: 0,
      server: 'h:1',
      clientId: 'ab',
      name: 'n',
      registered: false,
      files: [
        {
          file: '/data/report.bin',
          name: 'report.bin',
          bytes: 64_000_000,
          cksum: 1234,
          verified: true,
          uploads: 1,
          seconds: 0.5,
        },
      ],
    });
    expect(stderr).toBe(`${SERVER_ERROR_LINE}\n`);
  });

  it('fatal errors go to stderr with their hint; json adds them to the document', async () => {
    const stdout = new Capture();
    const stderr = new Capture();
    const out = await createOutput('json', { stdout, stderr });
    const err = clientError(ClientErrorCode.CONNECT_REFUSED, 'connection to h:1 refused', {
      hint: 'start the server',
    });
    out.fatal(err);
    out.finish({ files: [], exitCode: err.exitCode, error: err });
    expect(stderr.text).toBe(
      'sft-client: error: connection to h:1 refused\nsft-client: start the server\n',
    );
    expect(JSON.parse(stdout.text)).toMatchObject({
      ok: false,
      exitCode: 3,
      error: { code: 'CONNECT_REFUSED', message: 'connection to h:1 refused' },
    });
  });
});

describe('several files (begin)', () => {
  const small = planUpload('/data/small.bin', 1_000_000);
  const resultOf = (p: typeof plan): UploadResult => ({
    ...result,
    file: p.path,
    fileName: p.fileName,
    bytes: p.size,
  });

  it('progress: one bar over all bytes, the result lines after it in the order given', async () => {
    const stdout = new Capture(true);
    const stderr = new Capture();
    let clock = 0;
    const out = await createOutput('progress', { stdout, stderr }, () => clock);
    out.begin([plan, small]);
    // Two connections at once: both files start before either is done.
    out.events.uploadStarted?.(plan, 1);
    out.events.uploadStarted?.(small, 1);
    clock = 1000;
    out.events.uploadProgress?.(small, 1_000_000);
    out.events.uploadProgress?.(plan, 32_000_000);
    out.fileDone(resultOf(plan));
    out.fileDone(resultOf(small));
    expect(stdout.text).not.toContain('sent ');
    out.finish({ files: [resultOf(plan), resultOf(small)], exitCode: 0 });
    expect(stdout.text).toContain('2 files [');
    expect(stdout.text).toContain('33.0 MB/65.0 MB');
    expect(stdout.text).toContain('33.0 MB/s');
    expect(stdout.text).not.toContain('report.bin [');
    const lines = stdout.text.split('\n').filter((l) => l.startsWith('sent '));
    expect(lines.map((l) => l.split(':')[0])).toEqual(['sent report.bin', 'sent small.bin']);
    expect(stderr.text).toBe('');
  });

  it('plain: a line per file as before', async () => {
    const stdout = new Capture();
    const out = await createOutput('plain', { stdout, stderr: new Capture() });
    out.begin([plan, small]);
    out.events.uploadStarted?.(plan, 1);
    out.events.uploadStarted?.(small, 1);
    out.fileDone(resultOf(plan));
    out.fileDone(resultOf(small));
    out.finish({ files: [], exitCode: 0 });
    expect(stdout.text.split('\n').map((l) => l.split(' (')[0].split(':')[0])).toEqual([
      'sending report.bin',
      'sending small.bin',
      'sent report.bin',
      'sent small.bin',
      '',
    ]);
  });
});

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [999, '999 B'],
    [217.6436290159874, '218 B'],
    [999.6, '1000 B'],
    [1000, '1.0 kB'],
    [64_000_000, '64.0 MB'],
    [4_294_967_295, '4.3 GB'],
  ])('%i → %s', (n, text) => {
    expect(formatBytes(n)).toBe(text);
  });
});
