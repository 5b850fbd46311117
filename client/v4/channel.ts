/**
 * Opening the v4 channel (docs/protocol-v4.md §1): TCP, then a TLS 1.3 handshake with ALPN
 * `sft/4`, presenting the client's certificate. The server's certificate is not checked against
 * any CA: its key's fingerprint is returned for the caller to compare with the pin, and nothing
 * of the application is sent before that comparison.
 *
 * A peer that is not a v4 server is told apart from a failing one: a v3-only server answers
 * the TLS hello with v3 bytes (not a TLS record) or closes, and one that swallows the hello
 * says nothing; both give `not-v4` (the latter after `handshakeTimeoutMs`).
 */
import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { ALPN_V4 } from '../../protocol/v4/constants';
import { firstErrnoCode } from '../../shared/errno';
import { fingerprintOfKey } from '../../shared/fingerprint';
import type { Identity } from '../../shared/identity';
import type { ServerAddress } from '../config/server-address';
import { ClientErrorCode, clientError, type ClientError } from '../errors';

export type ChannelOutcome =
  | { readonly kind: 'tls'; readonly socket: tls.TLSSocket; readonly fingerprint: string }
  | { readonly kind: 'not-v4'; readonly reason: string };

export interface ChannelOptions {
  readonly connectTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  /** Gives the attempt up (the socket destroyed) once a run needs the connection no more. */
  readonly signal?: AbortSignal;
}

/** OpenSSL's verdicts on bytes that are not TLS records at all: the peer is not a TLS server. */
const NOT_TLS_ERRORS: ReadonlySet<string> = new Set([
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_PACKET_LENGTH_TOO_LONG',
  'ERR_SSL_UNKNOWN_PROTOCOL',
  'ERR_SSL_RECORD_LAYER_FAILURE',
]);
/** The peer closed before any TLS answer: what a v3 server does after its 1607. */
const CLOSED_ERRORS: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE']);

function connectFailure(server: ServerAddress, err: unknown): ClientError {
  const code = firstErrnoCode(err);
  const hint = `check that sft-server is running and reachable at ${server.display}`;
  if (code === 'ECONNREFUSED') {
    return clientError(ClientErrorCode.CONNECT_REFUSED, `connection to ${server.display} refused`, {
      hint,
      cause: err,
    });
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return clientError(ClientErrorCode.HOST_NOT_FOUND, `host ${server.host} not found`, {
      hint,
      cause: err,
    });
  }
  return clientError(
    ClientErrorCode.CONNECT_FAILED,
    `TLS connection to ${server.display} failed: ${(err as Error).message}`,
    { hint, cause: err },
  );
}

export function openChannel(
  server: ServerAddress,
  identity: Identity,
  options: ChannelOptions,
): Promise<ChannelOutcome> {
  return new Promise((resolve, reject) => {
    let tcpConnected = false;
    let settled = false;
    // Our own TCP socket, so TCP_NODELAY is set where it matters: with Nagle on, the tail of
    // each chunk waits for the peer's delayed ACK, about 40 ms per chunk.
    const tcp = net.connect({ host: server.host, port: server.port, noDelay: true });
    const socket = tls.connect({
      socket: tcp,
      key: identity.keyPem,
      cert: identity.certPem,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      ALPNProtocols: [ALPN_V4],
      // Trust is the pinned fingerprint (checked by the caller), never a CA or a host name.
      rejectUnauthorized: false,
      checkServerIdentity: () => undefined,
    });
    const settle = (outcome: ChannelOutcome | ClientError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(connectTimer);
      clearTimeout(handshakeTimer);
      options.signal?.removeEventListener('abort', onAbort);
      if (outcome instanceof Error) {
        socket.destroy();
        reject(outcome);
      } else {
        if (outcome.kind === 'not-v4') socket.destroy();
        resolve(outcome);
      }
    };
    let handshakeTimer: NodeJS.Timeout | undefined;
    const onAbort = (): void =>
      settle(
        clientError(ClientErrorCode.CONNECTION_LOST, `connection to ${server.display} given up`),
      );
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const connectTimer = setTimeout(
      () =>
        settle(
          clientError(
            ClientErrorCode.CONNECT_TIMEOUT,
            `no connection to ${server.display} within ${options.connectTimeoutMs / 1000} s`,
          ),
        ),
      options.connectTimeoutMs,
    );
    tcp.once('connect', () => {
      tcpConnected = true;
      clearTimeout(connectTimer);
      handshakeTimer = setTimeout(
        () =>
          settle({
            kind: 'not-v4',
            reason: `no TLS answer within ${options.handshakeTimeoutMs / 1000} s`,
          }),
        options.handshakeTimeoutMs,
      );
    });
    socket.once('secureConnect', () => {
      if (socket.alpnProtocol !== ALPN_V4) {
        settle(
          clientError(
            ClientErrorCode.PROTOCOL_VIOLATION,
            `${server.display} speaks TLS but not ${ALPN_V4}`,
          ),
        );
        return;
      }
      const cert = socket.getPeerCertificate(true);
      let fingerprint: string;
      try {
        fingerprint = fingerprintOfKey(new X509Certificate(cert.raw).publicKey);
      } catch (err) {
        settle(
          clientError(ClientErrorCode.PROTOCOL_VIOLATION, 'the server sent no usable certificate', {
            cause: err,
          }),
        );
        return;
      }
      settle({ kind: 'tls', socket, fingerprint });
    });
    socket.on('error', (err) => {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (!tcpConnected) {
        settle(connectFailure(server, err));
      } else if (NOT_TLS_ERRORS.has(code) || CLOSED_ERRORS.has(code)) {
        settle({ kind: 'not-v4', reason: `the server did not answer in TLS (${code})` });
      } else {
        settle(connectFailure(server, err));
      }
    });
    tcp.on('error', (err) => {
      if (!tcpConnected) settle(connectFailure(server, err));
    });
    socket.once('close', () => {
      if (tcpConnected) settle({ kind: 'not-v4', reason: 'the server closed the connection' });
    });
  });
}
