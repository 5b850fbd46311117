/**
 * The identity keys a running server uses (docs/protocol-v4.md §2.5): the TLS context of the
 * current key for each new connection, and the key set signed by it for KEYS. Checked about
 * once a second, so `sft-server identity rotate` and `promote` take effect without a restart,
 * and the end of a rotation's grace promotes the next key by itself.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type tls from 'node:tls';
import type { Logger } from 'pino';
import type { KeySet } from '../../protocol/v4';
import {
  KEY_SET_FILE,
  loadKeys,
  promoteIfGraceOver,
  type KeyPaths,
  type LoadedKeys,
} from './key-rotation';
import { signKeySet } from './key-set-signing';
import { createV4SecureContext } from './tls-v4';

interface Served {
  readonly loaded: LoadedKeys;
  readonly context: tls.SecureContext;
  readonly keySet: KeySet;
  /** mtimes of the files whose change means a reload. */
  readonly stamp: string;
}

export class ServerKeys {
  private checking: Promise<void> | undefined;

  private constructor(
    private readonly paths: KeyPaths,
    private readonly now: () => number,
    private readonly log: Logger,
    private served: Served,
  ) {}

  static async open(paths: KeyPaths, now: () => number, log: Logger): Promise<ServerKeys> {
    await promoteIfGraceOver(paths, now);
    return new ServerKeys(paths, now, log, await ServerKeys.load(paths, now));
  }

  private static async stamp(paths: KeyPaths): Promise<string> {
    const times = await Promise.all(
      [paths.key, join(paths.dir, KEY_SET_FILE), join(paths.dir, 'next.key')].map((p) =>
        stat(p).then(
          (s) => `${s.mtimeMs}:${s.ino}`,
          () => '-',
        ),
      ),
    );
    return times.join('|');
  }

  private static async load(paths: KeyPaths, now: () => number): Promise<Served> {
    const stamp = await ServerKeys.stamp(paths);
    const loaded = await loadKeys(paths, now);
    return {
      loaded,
      context: createV4SecureContext(loaded.current),
      keySet: signKeySet(loaded, now()),
      stamp,
    };
  }

  get fingerprint(): string {
    return this.served.loaded.current.fingerprint;
  }

  secureContext(): tls.SecureContext {
    return this.served.context;
  }

  keySet(): KeySet {
    return this.served.keySet;
  }

  /** From what is loaded, without touching the disk: a rotation whose grace has passed. */
  private graceOver(): boolean {
    const { loaded } = this.served;
    const current = loaded.keys.find((k) => k.status === 'current');
    return (
      loaded.next !== undefined &&
      current !== undefined &&
      current.notAfter !== 0 &&
      this.now() >= current.notAfter
    );
  }

  /** Reloads when the files changed, and promotes at the end of a grace. Never throws. */
  check(): Promise<void> {
    this.checking ??= (async () => {
      try {
        if (this.graceOver() && (await promoteIfGraceOver(this.paths, this.now))) {
          this.log.info('the grace of the key rotation ended: the next key is now presented');
        }
        if ((await ServerKeys.stamp(this.paths)) === this.served.stamp) return;
        const before = this.served.loaded;
        this.served = await ServerKeys.load(this.paths, this.now);
        const after = this.served.loaded;
        // A file touched without a change in the keys (the set written on first start) is quiet.
        if (JSON.stringify(before.keys) === JSON.stringify(after.keys)) return;
        this.log.info(
          { fingerprint: after.current.fingerprint, next: after.next?.fingerprint ?? null },
          before.current.fingerprint === after.current.fingerprint
            ? 'v4 key set reloaded'
            : 'v4 identity key changed',
        );
      } catch (err) {
        this.log.error({ err }, 'could not reload the v4 keys; keeping the ones in use');
      } finally {
        this.checking = undefined;
      }
    })();
    return this.checking;
  }
}
