/**
 * Which protocol a run may speak (docs/protocol-v4.md §2.3, §2.4), decided from known_servers
 * and the flags before anything is sent. Kept apart from the v4 session, so a `--protocol v3`
 * run checks the pin without loading TLS and the v4 codec.
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { IDENTITY_KEY_FILE } from '../config/config-files';
import type { ServerAddress } from '../config/server-address';
import { ClientErrorCode, clientError } from '../errors';
import {
  findKnownServer,
  loadKnownServers,
  removeEntryHint,
  staleEntryHint,
  type KnownServer,
} from './known-servers';

export type ProtocolChoice = 'auto' | 'v4' | 'v3';

export interface ChoiceOptions {
  readonly configDir: string;
  readonly server: ServerAddress;
  readonly protocol: ProtocolChoice;
  /** `--server-fingerprint`: pins explicitly, no trust on first use. */
  readonly serverFingerprint: string | undefined;
}

/** What known_servers and `--server-fingerprint` say of the server. */
export interface Pins {
  /** Its line in known_servers, if any. */
  readonly known: KnownServer | undefined;
  /** The fingerprint it must present, if it is pinned as v4. */
  readonly pinned: string | undefined;
  /** Every fingerprint it may present: a rotation adds the next key beside the current (§2.5). */
  readonly accepted: readonly string[];
}

export async function loadPins(options: ChoiceOptions): Promise<Pins> {
  const address = options.server.display;
  const entries = await loadKnownServers(options.configDir);
  const known = findKnownServer(entries, address);
  const pinned =
    options.serverFingerprint ?? (known?.protocol === 'v4' ? known.fingerprint : undefined);
  const accepted =
    options.serverFingerprint !== undefined
      ? [options.serverFingerprint]
      : entries.flatMap((e) =>
          e.address === address && e.protocol === 'v4' ? [e.fingerprint] : [],
        );
  return { known, pinned, accepted };
}

export function downgrade(options: ChoiceOptions, why: string, reason: string): Error {
  return clientError(
    ClientErrorCode.DOWNGRADE_REFUSED,
    `${options.server.display} ${why}, but answered only as a version-3 server (${reason}); ` +
      'refusing to downgrade: nothing was sent',
    {
      hint:
        options.protocol === 'v4'
          ? 'use --protocol auto or v3 only for servers that never spoke v4'
          : staleEntryHint(options.configDir, options.server.display),
    },
  );
}

/**
 * True when the run speaks v3 without trying v4 (`--protocol v3`). That is a downgrade for a
 * server pinned as v4: refused here, before connecting.
 */
export async function choosesV3(options: ChoiceOptions): Promise<boolean> {
  if (options.protocol !== 'v3') return false;
  const { pinned } = await loadPins(options);
  if (pinned !== undefined) throw forcedDowngrade(options);
  return true;
}

/**
 * `--protocol v3` to a server pinned as v4: refused before connecting, so the message must not
 * say the server answered anything.
 */
function forcedDowngrade(options: ChoiceOptions): Error {
  return clientError(
    ClientErrorCode.DOWNGRADE_REFUSED,
    `${options.server.display} is pinned as a version-4 server; --protocol v3 would talk to it ` +
      'without TLS or its pinned key: refused, nothing was sent',
    {
      hint:
        'leave out --protocol v3 (the default speaks version 4 to it); if that server was ' +
        `really replaced by one that speaks version 3 only, ${removeEntryHint(options.configDir, options.server.display)}`,
    },
  );
}

/** True when the config dir holds a v4 identity key (the client may be known by it). */
export async function hasV4Identity(configDir: string): Promise<boolean> {
  try {
    await access(join(configDir, IDENTITY_KEY_FILE));
    return true;
  } catch {
    return false;
  }
}
