/**
 * One version-4 connection (docs/protocol-v4.md §1): the accepted TCP socket wrapped in a
 * server-side TLS 1.3 socket, frames read with the shared framer, each handed to the v4
 * session in order. It has the listener's connection shape (quiet, sweep, close), so every
 * v3 limit applies: idle and trickle sweeps, eviction, the per-address and global counts.
 *
 * The TLS layer accepts any client certificate (self-signed is the norm): the session
 * authorises by fingerprint. A handshake without ALPN `sft/4` is closed.
 */
import { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { isProtocolError } from '../../protocol/errors';
import { Framer, type FrameSink } from '../../protocol/framer';
import {
  ALPN_V4,
  decodeRequest,
  encodeResponse,
  framePayload,
  MAX_CHUNK_SIZE,
  MIGRATION_EXPORTER_LABEL,
  MIGRATION_EXPORTER_LENGTH,
  requestFrameLayout,
  ResponseCode,
  WireErrorCode,
  type Request,
  type Response,
} from '../../protocol/v4';
import { fingerprintOfSpki } from '../../shared/fingerprint';
import type { PeerIdentity } from '../session/v4/identity-flows';
import type { V4Session } from '../session/v4/session';
import { isLaterAnswer, type LaterAnswer } from '../session/v4/upload-requests';
import { AnswerOutbox } from './answer-outbox';
import type { CloseReason } from './connection';
import { sweepVerdict } from './limits';

/**
 * Received bytes held while a frame is served before the socket pauses: one largest DATA frame,
 * so the next is there when the disk is done (the kernel's buffer holds more). Holding more
 * only adds memory: bytes held across the memory nudge's minor collections are promoted, and
 * then wait for a major collection however soon they are done with (gc-nudge.ts).
 */
const HOLD_HIGH_WATER = MAX_CHUNK_SIZE;
/**
 * Answer bytes the peer may leave unread before the next request is served (downloads): two
 * largest chunks keep the socket busy (the kernel's buffer holds more); every byte more is
 * plaintext and its TLS records waiting in memory.
 */
const UNREAD_HIGH_WATER = 2 * MAX_CHUNK_SIZE;
/** The exporter's context is empty (docs/protocol-v4.md §5.3). */
const NO_CONTEXT = Buffer.alloc(0);

export interface V4ConnectionOptions {
  readonly secureContext: tls.SecureContext;
  readonly log: Logger;
  /** Monotonic milliseconds. */
  readonly clock: () => number;
  /** A TLS handshake not done after this long is closed as slow. */
  readonly handshakeTimeoutMs: number;
  readonly newSession: (peer: PeerIdentity, log: Logger) => V4Session;
  readonly onClosed: (connection: V4Connection) => void;
}

/** What the server learns of the peer from the finished handshake. */
function peerOf(socket: tls.TLSSocket): PeerIdentity {
  const cert = socket.getPeerCertificate(true);
  let spki: Buffer | undefined;
  if (cert && cert.raw) {
    try {
      spki = new X509Certificate(cert.raw).publicKey.export({ type: 'spki', format: 'der' });
    } catch {
      spki = undefined;
    }
  }
  return {
    fingerprint: spki && fingerprintOfSpki(spki),
    spki,
    exporter: () =>
      socket.exportKeyingMaterial(MIGRATION_EXPORTER_LENGTH, MIGRATION_EXPORTER_LABEL, NO_CONTEXT),
  };
}

export class V4Connection {
  lastRequestAt: number;
  readonly finished: Promise<void>;
  private resolveFinished!: () => void;
  private readonly tls: tls.TLSSocket;
  private readonly openedAt: number;
  private secure = false;
  private session: V4Session | undefined;
  private framer: Framer | undefined;
  private busy = false;
  /** Bytes received while a frame was being served, since the last release. */
  private heldBytes = 0;
  /** No more frames are served: a framing error or a fatal answer ended the stream. */
  private stopped = false;
  private closed = false;
  private closeReason: CloseReason | undefined;
  /** Bytes of the frame now arriving, and since when: for the trickle check. */
  private frameBytes = 0;
  private frameStartedAt: number | undefined;
  /** Answers in request order, pipelined UPLOAD_ENDs' too (docs/protocol-v4.md §5.10). */
  private readonly outbox = new AnswerOutbox(
    (response, fatal) => this.send(response, fatal),
    (err) => {
      this.options.log.error({ err }, 'v4 session failed');
      this.closeReason ??= 'internal';
      this.tls.destroy();
    },
  );

  constructor(
    private readonly raw: Socket,
    readonly remoteAddress: string,
    private readonly options: V4ConnectionOptions,
  ) {
    this.openedAt = options.clock();
    this.lastRequestAt = this.openedAt;
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
    raw.setNoDelay(true);
    // TLS runs on the TCP socket's own handle (and the bytes the sniffer put back).
    this.tls = new tls.TLSSocket(raw, {
      isServer: true,
      secureContext: options.secureContext,
      requestCert: true,
      rejectUnauthorized: false,
      ALPNProtocols: [ALPN_V4],
    });
    this.tls.on('secure', () => this.onSecure());
    this.tls.on('data', (chunk: Buffer) => this.onData(chunk));
    this.tls.on('error', (err) => this.onError(err));
    // Either side closing closes both, whatever state the handshake was in.
    this.tls.on('close', () => {
      this.raw.destroy();
      this.onClose();
    });
    this.raw.on('close', () => this.tls.destroy());
    this.tls.on('end', () => this.tls.end());
  }

  get active(): boolean {
    return (
      this.busy ||
      this.outbox.owing ||
      Boolean(this.framer?.pending || this.framer?.inFrame) ||
      Boolean(this.session?.uploadInProgress)
    );
  }

  get quiet(): boolean {
    return this.secure && !this.active;
  }

  get onlyPartialRequest(): boolean {
    return (
      !this.secure ||
      (Boolean(this.framer?.inFrame) && !this.busy && !this.session?.uploadInProgress)
    );
  }

  sweep(
    now: number,
    idleTimeoutMs: number,
    minRate: number,
    graceMs: number,
  ): CloseReason | undefined {
    if (this.closed || this.busy || this.outbox.owing) return undefined;
    if (!this.secure) {
      if (now - this.openedAt >= this.options.handshakeTimeoutMs) {
        this.close('slow');
        return 'slow';
      }
      return undefined;
    }
    const arriving =
      this.frameStartedAt === undefined
        ? undefined
        : { startedAt: this.frameStartedAt, bytes: this.frameBytes };
    const verdict = sweepVerdict(
      now,
      this.lastRequestAt,
      arriving,
      idleTimeoutMs,
      minRate,
      graceMs,
    );
    if (verdict !== undefined) this.close(verdict);
    return verdict;
  }

  close(reason: CloseReason): void {
    if (this.closed) return;
    this.closeReason ??= reason;
    this.tls.destroy();
    this.raw.destroy();
  }

  closeWhenQuiet(): void {
    if (!this.active) this.close('shutdown');
  }

  get reason(): CloseReason | undefined {
    return this.closeReason;
  }

  private onSecure(): void {
    const { log } = this.options;
    if (this.tls.alpnProtocol !== ALPN_V4) {
      log.warn({ alpn: this.tls.alpnProtocol }, 'TLS without ALPN sft/4: closed');
      this.close('framing');
      return;
    }
    this.secure = true;
    const peer = peerOf(this.tls);
    const childLog = log.child({ protocol: 4, fingerprint: peer.fingerprint ?? null });
    const session = this.options.newSession(peer, childLog);
    this.session = session;
    this.framer = new Framer(requestFrameLayout(() => session.chunkSize));
    this.lastRequestAt = this.options.clock();
    childLog.debug({ tls: this.tls.getProtocol() }, 'v4 channel open');
  }

  private readonly sink: FrameSink = {
    frame: (buf, offset, code, payloadSize) => {
      this.frameStartedAt = undefined;
      this.frameBytes = 0;
      this.lastRequestAt = this.options.clock();
      const payload = framePayload(buf, offset, payloadSize);
      let request: Request;
      try {
        request = decodeRequest(code, payload);
      } catch (err) {
        if (!isProtocolError(err)) throw err;
        // BAD_MESSAGE, from the session: a frame of a pipelined upload ends that upload.
        this.serve((session) => session.undecodable(code, payload, err.message));
        return;
      }
      // DATA stays a view into the framer's buffer, not copied: the framer holds every later
      // byte until the request is served, and the upload is done with the view by then.
      this.serve((session) => session.handle(request));
    },
  };

  private onData(chunk: Buffer): void {
    const framer = this.framer;
    if (!framer || this.stopped) return;
    if (this.busy) {
      // Frames wait in the framer while one is served; past a bound the socket pauses.
      this.heldBytes += chunk.length;
      if (this.heldBytes > HOLD_HIGH_WATER) this.tls.pause();
    }
    if (this.frameStartedAt === undefined) this.frameStartedAt = this.options.clock();
    this.frameBytes += chunk.length;
    try {
      framer.push(chunk, this.sink);
    } catch (err) {
      this.framingError(err);
    }
    if (!framer.inFrame && !this.busy) this.frameStartedAt = undefined;
  }

  private framingError(err: unknown): void {
    this.stopped = true;
    const text = err instanceof Error ? err.message : String(err);
    this.options.log.warn({ reason: text }, 'v4 framing error: closing');
    this.closeReason ??= 'framing';
    this.outbox.answer({
      code: ResponseCode.ERROR,
      error: WireErrorCode.FRAMING,
      fatal: true,
      text,
    });
  }

  /** Serves one frame; later frames wait in the framer until it is done. */
  private serve(work: (session: V4Session) => Promise<Response | LaterAnswer | undefined>): void {
    const session = this.session;
    const framer = this.framer;
    if (!session || !framer) return;
    this.busy = true;
    framer.hold();
    work(session)
      .then((reply) => {
        if (isLaterAnswer(reply)) this.outbox.answerLater(reply.later);
        else if (reply) this.outbox.answer(reply);
        return this.peerReading();
      })
      .catch((err: unknown) => {
        this.options.log.error({ err }, 'v4 session failed');
        this.closeReason ??= 'internal';
        this.tls.destroy();
      })
      .finally(() => {
        this.busy = false;
        this.continueHeld();
      });
  }

  /**
   * Walks the frames that arrived meanwhile. After the peer closed they are still served (DATA
   * goes to the partial, so a cut upload keeps every byte that arrived); then the connection
   * finishes.
   */
  private continueHeld(): void {
    const framer = this.framer;
    if (framer && !this.stopped) {
      this.heldBytes = 0;
      try {
        framer.release(this.sink);
      } catch (err) {
        if (!this.closed) this.framingError(err);
      }
    }
    if (this.busy) return;
    if (this.closed) {
      this.finish();
      return;
    }
    if (this.tls.isPaused() && !this.stopped) this.tls.resume();
  }

  /**
   * Waits while the peer leaves answers unread (downloads, docs/protocol-v4.md §5.6): the next
   * request is served only then, so answers cannot pile up in memory.
   */
  private peerReading(): Promise<void> {
    if (this.tls.destroyed || this.tls.writableLength <= UNREAD_HIGH_WATER) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        this.tls.off('drain', done);
        this.tls.off('close', done);
        resolve();
      };
      this.tls.on('drain', done);
      this.tls.on('close', done);
    });
  }

  private send(response: Response, thenClose: boolean): void {
    if (this.tls.destroyed || !this.tls.writable) return;
    this.tls.write(encodeResponse(response));
    if (thenClose) {
      this.stopped = true;
      this.tls.end(() => this.tls.destroy());
    }
  }

  private onError(err: Error): void {
    this.closeReason ??= 'error';
    this.options.log.debug({ err: err.message }, 'v4 socket error');
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.options.log.debug({ reason: this.closeReason ?? 'peer' }, 'v4 connection closed');
    if (!this.busy) this.continueHeld();
  }

  private finishing = false;

  private finish(): void {
    if (this.finishing) return;
    this.finishing = true;
    const done = this.session ? this.session.close() : Promise.resolve();
    void done.finally(() => {
      this.options.onClosed(this);
      this.resolveFinished();
    });
  }
}
