/**
 * The statement a v3 client signs to move to version 4 (docs/protocol-v4.md §5.3). Both sides
 * build it the same way from values each knows; only the signature travels.
 */
import { MIGRATION_CONTEXT } from './constants';

/**
 * Context string, the TLS exporter value (so the signature is good on this connection only),
 * the server's challenge, the client id, the name (u8 length + UTF-8) and the fingerprint of
 * the certificate taking over (ASCII).
 */
export function migrationStatement(
  exporter: Buffer,
  challenge: Buffer,
  clientId: Buffer,
  name: string,
  fingerprint: string,
): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  return Buffer.concat([
    Buffer.from(MIGRATION_CONTEXT, 'latin1'),
    exporter,
    challenge,
    clientId,
    Buffer.from([nameBytes.length]),
    nameBytes,
    Buffer.from(fingerprint, 'latin1'),
  ]);
}
