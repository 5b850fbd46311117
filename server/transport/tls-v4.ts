/**
 * The version-4 stack of a server (docs/protocol-v4.md §1, §2): the TLS 1.3 context made from
 * the server's identity, the shared v4 context, and the factory the listener calls for each
 * connection whose first byte is a TLS handshake record.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { MAX_CHUNK_SIZE } from '../../protocol/v4/constants';
import type { Identity } from '../../shared/identity';
import type { SessionContext } from '../session/context';
import type { PartialStore, V4Context, V4Store } from '../session/v4/context';
import type { V4FileMetaStore } from '../session/v4/file-meta';
import type { ByteStore } from '../storage/types';
import type { ServerKeys } from './server-keys';
import { singleKeySet } from './key-set-signing';
import { V4Session } from '../session/v4/session';
import { V4Connection } from './tls-connection';

const DEFAULT_CHECKPOINT_INTERVAL_MS = 1000;
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

export interface V4Options {
  readonly identity: Identity;
  readonly identities: V4Store;
  readonly partials: PartialStore;
  /** With `bytes`: list, download and delete (docs/protocol-v4.md §5.6, §5.7). */
  readonly fileMeta?: V4FileMetaStore;
  /** The live keys (rotation, docs/protocol-v4.md §2.5); absent: `identity` alone, no KEYS. */
  readonly keys?: ServerKeys;
  readonly bytes?: ByteStore;
  /** Largest DATA payload accepted; at most (and by default) 1 MiB. */
  readonly maxChunk?: number;
  readonly checkpointIntervalMs?: number;
  readonly handshakeTimeoutMs?: number;
  readonly random?: (size: number) => Buffer;
}

/** TLS 1.3 only (no renegotiation exists in 1.3), the server's certificate, ALPN sft/4. */
export function createV4SecureContext(identity: Identity): tls.SecureContext {
  return tls.createSecureContext({
    key: identity.keyPem,
    cert: identity.certPem,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
  });
}

export type V4ConnectionFactory = (
  socket: Socket,
  remoteAddress: string,
  log: Logger,
  clock: () => number,
  onClosed: () => void,
) => V4Connection;

export function createV4Stack(base: SessionContext, options: V4Options): V4ConnectionFactory {
  const secureContext = createV4SecureContext(options.identity);
  const keys = options.keys;
  const fixedSet = singleKeySet(options.identity, Date.now());
  const ctx: V4Context = {
    base,
    identities: options.identities,
    partials: options.partials,
    random: options.random ?? randomBytes,
    maxChunk: Math.min(options.maxChunk ?? MAX_CHUNK_SIZE, MAX_CHUNK_SIZE),
    checkpointIntervalMs: options.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS,
    activeUploads: new Set(),
    ...(options.fileMeta && options.bytes
      ? { files: { meta: options.fileMeta, bytes: options.bytes } }
      : {}),
    keySet: keys ? () => keys.keySet() : () => fixedSet,
  };
  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  return (socket, remoteAddress, log, clock, onClosed) =>
    new V4Connection(socket, remoteAddress, {
      secureContext: keys?.secureContext() ?? secureContext,
      log,
      clock,
      handshakeTimeoutMs,
      newSession: (peer, sessionLog) => new V4Session(ctx, peer, remoteAddress, sessionLog),
      onClosed,
    });
}
