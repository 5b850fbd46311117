/**
 * A first start issues the v4 identity in a short-lived `sft-server identity` child, so the
 * daemon never loads the certificate library; a later start only reads it; a child that fails
 * leaves the identity to the daemon, which still starts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { issueIdentityApart } from '../../server/process/first-identity';
import { serverIdentity } from '../../server/transport/tls-setup';
import { SERVER_MAIN, startServerProcess } from '../helpers/server-process';

const ISSUED_APART = 'v4 identity issued by a short-lived sft-server identity process';

describe('the v4 identity of a first start', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sft-first-identity-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is issued by a child on the first start, read on the second, the same both times', async () => {
    const dataDir = join(dir, 'data');
    const first = await startServerProcess(dataDir);
    const loaded = await first.waitForLine((l) => l.msg === 'v4 identity loaded');
    expect(first.lines.some((l) => l.msg === ISSUED_APART)).toBe(true);
    // The daemon read what the child wrote: it did not make one itself.
    expect(loaded.created).toBe(false);
    await first.stop();

    const second = await startServerProcess(dataDir);
    const again = await second.waitForLine((l) => l.msg === 'v4 identity loaded');
    expect(second.lines.some((l) => l.msg === ISSUED_APART)).toBe(false);
    expect(again.fingerprint).toBe(loaded.fingerprint);
    await second.stop();
    expect((await serverIdentity(dataDir)).fingerprint).toBe(loaded.fingerprint);
  });

  it('a child that fails is logged and leaves the identity to the daemon', async () => {
    const lines: Array<{ msg: string }> = [];
    const log = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s)) });
    const outcome = await issueIdentityApart(
      dir,
      { node: process.execPath, nodeArgs: ['-e', 'process.exit(3)'], script: SERVER_MAIN },
      log,
    );
    expect(outcome).toBe('left-to-daemon');
    expect(lines.map((l) => l.msg)).toEqual([
      'sft-server identity failed; issuing the identity here',
    ]);
    const made = await serverIdentity(dir);
    expect(made.created).toBe(true);
    // Present now: no child at all.
    const again = await issueIdentityApart(
      dir,
      { node: process.execPath, nodeArgs: ['-e', 'process.exit(3)'], script: SERVER_MAIN },
      log,
    );
    expect(again).toBe('present');
  });
});
