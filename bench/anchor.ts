/** The anchor users would pick instead: `scp` to a private sshd on loopback, timed in the same run. */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startSshd, timeScp, type Sshd } from './sshd';
import { timed } from './timed';

export interface Anchor {
  readonly singleMs: number[];
  readonly manyMs: number[];
}

export async function measureScp(
  work: string,
  bigFile: string,
  manyFiles: readonly string[],
  runs: { readonly single: number; readonly many: number },
): Promise<Anchor | string> {
  const started = await startSshd(join(work, 'sshd'));
  if (!started.ok) return started.why;
  const sshd: Sshd = started.sshd;
  try {
    const dest = (name: string): string => {
      const dir = join(work, 'scp-dest', name);
      mkdirSync(dir, { recursive: true });
      return dir;
    };
    // One unmeasured run: the first login pays for things a user's second would not.
    await timeScp(sshd, [bigFile], dest('warm-up'));
    const singleMs = await timed(runs.single, (i) => timeScp(sshd, [bigFile], dest(`single-${i}`)));
    const manyMs = await timed(runs.many, (i) => timeScp(sshd, manyFiles, dest(`many-${i}`)));
    return { singleMs, manyMs };
  } finally {
    // scp's copies stay until the bench removes its work folder at the end: deleting hundreds
    // of files here would make every file our runs create next pay for them (ext4 without a
    // journal skips the inodes freed in the last minutes, one by one), a cost scp never paid.
    await sshd.stop();
  }
}
