/** Page-cache hygiene between benchmark phases. */
import { spawnSync } from 'node:child_process';

/**
 * Flushes what earlier phases (and the input files just written) left in the page cache, so a
 * phase does not pay for another's writeback in its own fsyncs. Best effort: skipped where
 * `sync` is missing.
 */
export function settleDisk(): void {
  spawnSync('sync', { stdio: 'ignore' });
}
