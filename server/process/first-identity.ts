/**
 * A first start's v4 identity, issued apart: the daemon runs `sft-server identity` as a
 * short-lived child when its data directory has no identity yet. Issuing the self-signed
 * certificate loads the certificate library (@peculiar/x509 and its dependencies, about 8 MB
 * that a process never gives back); in the child that memory goes with it, and the daemon only
 * reads the key and certificate, as it does on every later start.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import { identityPaths } from '../transport/tls-setup';

/** The child gets this long; a slower one is left to the daemon's own attempt. */
const CHILD_TIMEOUT_MS = 30_000;

export type FirstIdentity = 'present' | 'issued-apart' | 'left-to-daemon';

/**
 * Runs `<this program> identity --data-dir dataDir` (same node, same node options) when the
 * identity is missing. A child that fails is only logged: the daemon then issues the identity
 * in process, and reports its own errors (a data directory it cannot write, say) as usual.
 */
export async function issueIdentityApart(
  dataDir: string,
  program: { readonly node: string; readonly nodeArgs: readonly string[]; readonly script: string },
  log: Logger,
): Promise<FirstIdentity> {
  const paths = identityPaths(dataDir);
  if (existsSync(paths.key) && existsSync(paths.cert)) return 'present';
  const args = [...program.nodeArgs, program.script, 'identity', '--data-dir', dataDir];
  const failure = await new Promise<Error | undefined>((resolve) => {
    execFile(program.node, args, { timeout: CHILD_TIMEOUT_MS }, (err) => resolve(err ?? undefined));
  });
  if (failure === undefined) {
    log.info({ dataDir }, 'v4 identity issued by a short-lived sft-server identity process');
    return 'issued-apart';
  }
  log.warn({ error: failure.message }, 'sft-server identity failed; issuing the identity here');
  return 'left-to-daemon';
}
