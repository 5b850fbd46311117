/**
 * `known_servers` in the client's config dir (docs/protocol-v4.md §2.3), like ssh's known_hosts:
 * one line per server, `host:port protocol fingerprint`, e.g.
 *
 *     127.0.0.1:1256 v4 SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU
 *     old.example:1256 v3 -
 *
 * A v4 line pins the server's key (trust on first use); a v3 line records that the server
 * offered only v3 when first met, so a later run knows nothing was pinned. Written atomically,
 * mode 0600; lines starting with `#` are comments.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../shared/atomic-file';
import { parseFingerprint } from '../../shared/fingerprint';
import { ClientErrorCode, configError } from '../errors';

export const KNOWN_SERVERS_FILE = 'known_servers';
const FILE_MODE = 0o600;
const HEADER = '# sft-client known servers: host:port protocol fingerprint\n';

export type KnownServer =
  | { readonly address: string; readonly protocol: 'v4'; readonly fingerprint: string }
  | { readonly address: string; readonly protocol: 'v3' };

export function knownServersPath(configDir: string): string {
  return join(configDir, KNOWN_SERVERS_FILE);
}

export function parseKnownServers(text: string, file: string): KnownServer[] {
  const entries: KnownServer[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const [address, protocol, fingerprint, extra] = line.split(/\s+/);
    const where = { file, line: index + 1 };
    const bad = (why: string): never => {
      throw configError(
        ClientErrorCode.CONFIG_UNREADABLE,
        where,
        `${why}; expected "host:port v4 SHA256:…" or "host:port v3 -"`,
        `fix or delete that line of ${file}`,
      );
    };
    if (address === undefined || extra !== undefined) bad('malformed line');
    if (protocol === 'v3' && fingerprint === '-') {
      entries.push({ address: address as string, protocol: 'v3' });
      return;
    }
    const parsed = protocol === 'v4' ? parseFingerprint(fingerprint ?? '') : undefined;
    if (parsed === undefined) return bad('malformed line');
    entries.push({ address: address as string, protocol: 'v4', fingerprint: parsed });
  });
  return entries;
}

export function formatKnownServers(entries: readonly KnownServer[]): string {
  const lines = entries.map((e) =>
    e.protocol === 'v4' ? `${e.address} v4 ${e.fingerprint}` : `${e.address} v3 -`,
  );
  return HEADER + lines.map((line) => `${line}\n`).join('');
}

export async function loadKnownServers(configDir: string): Promise<KnownServer[]> {
  const path = knownServersPath(configDir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw configError(ClientErrorCode.CONFIG_UNREADABLE, { file: path }, 'cannot be read');
  }
  return parseKnownServers(text, path);
}

export function findKnownServer(
  entries: readonly KnownServer[],
  address: string,
): KnownServer | undefined {
  return entries.find((e) => e.address === address);
}

/** Records `entry`, replacing the line of its address; re-reads the file first. */
export async function recordKnownServer(configDir: string, entry: KnownServer): Promise<void> {
  const entries = (await loadKnownServers(configDir)).filter((e) => e.address !== entry.address);
  try {
    await writeFileAtomic(knownServersPath(configDir), formatKnownServers([...entries, entry]), {
      mode: FILE_MODE,
    });
  } catch (err) {
    throw configError(
      ClientErrorCode.CONFIG_WRITE_FAILED,
      { file: knownServersPath(configDir) },
      `cannot be written: ${(err as Error).message}`,
    );
  }
}

/** What to tell someone whose pinned fingerprint no longer matches. */
export function staleEntryHint(configDir: string, address: string): string {
  return (
    `if the server's key was changed on purpose, verify the new fingerprint with its ` +
    `operator (sft-server identity), then ${removeEntryHint(configDir, address)}`
  );
}

/** How to forget the server at `address`, as a command the user can paste. */
export function removeEntryHint(configDir: string, address: string): string {
  const path = knownServersPath(configDir);
  return (
    `remove the line "${address} …" from ${path} ` +
    `(e.g. sed -i '/^${address.replace(/[[\]./]/g, '\\$&')} /d' ${path}) and run again`
  );
}
