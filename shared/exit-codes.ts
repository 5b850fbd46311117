/**
 * Process exit codes of `sft-client`, `sft-server` and `sft-server admin`: one table, so a code
 * means the same in every program and `--help` is generated from it.
 */

export const ExitCode = {
  OK: 0,
  /**
   * sft-client: an error it did not expect (a bug). sft-server: a fatal error (cannot start,
   * or failed while stopping). admin: the command failed.
   */
  FAILURE: 1,
  /** Bad flags, a malformed or missing config file, a file that cannot be sent. */
  USAGE: 2,
  /** Connection refused, timed out, reset or closed; a server that stopped answering. */
  CONNECTION: 3,
  /** The server refused (1601) or kept answering with errors (1607) after all attempts. */
  REJECTED: 4,
  /** The server's checksum never matched: 1031 was sent (docs/protocol.md §5). */
  CHECKSUM: 5,
  /**
   * Reserved for protocol version 4: the server's identity differs from the one pinned for it,
   * or it offered only an older protocol version and the client refused to downgrade.
   */
  IDENTITY_MISMATCH: 6,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** One line per code, for `--help` texts and docs; codes a program never uses say so. */
export const EXIT_CODE_MEANINGS: { readonly [C in ExitCode]: string } = {
  [ExitCode.OK]: 'success (sft-client: every file sent and verified)',
  [ExitCode.FAILURE]:
    'internal error in sft-client (a bug; run with --verbose and report it); fatal error in ' +
    'sft-server',
  [ExitCode.USAGE]:
    'usage or config error: bad flag, missing or malformed transfer.info / me.info, a file ' +
    'that cannot be read or sent',
  [ExitCode.CONNECTION]:
    'connection failure: refused, timed out, reset or closed; no answer in time',
  [ExitCode.REJECTED]:
    'rejected by the server: registration or key refused (1601), or errors (1607) after 3 ' +
    'attempts',
  [ExitCode.CHECKSUM]:
    "checksum failure: the server's cksum never matched, the upload was abandoned (1031)",
  [ExitCode.IDENTITY_MISMATCH]:
    'reserved for protocol version 4: server identity mismatch, or downgrade refused',
};

/** The meanings as an indented two-column block (`  2  usage or ...`). */
export function formatExitCodes(codes: readonly ExitCode[] = Object.values(ExitCode)): string {
  return codes.map((code) => `  ${code}  ${EXIT_CODE_MEANINGS[code]}`).join('\n');
}
