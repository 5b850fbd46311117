/**
 * Socket I/O of one connection: bytes in through the request reader, requests to the session
 * strictly in order, answers out. While the session works on a request (or the disk or the
 * peer is behind) the socket is paused and the reader holds what it has not walked yet, so
 * memory per connection stays near one payload limit plus one socket read and one batch.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { DecodedRequest } from '../../protocol/v3/decode';
import { encodeResponse } from '../../protocol/v3/encode';
import { ResponseCode } from '../../protocol/v3/constants';
import { isProtocolError } from '../../protocol/errors';
import type { Response } from '../../protocol/v3/messages';
import { RequestDecoder, type RequestSink } from '../../protocol/v3/request-decoder';
import type { Session } from '../session/session';
import type { BufferBudget } from './buffer-budget';
import { sweepVerdict } from './limits';

/** Plaintext queued for the disk before the connection stops reading. */
const WRITE_BACKLOG_LIMIT = 1024 * 1024;

export type CloseReason =
  'peer' | 'idle' | 'slow' | 'evicted' | 'framing' | 'shutdown' | 'error' | 'internal';

export interface ConnectionOptions {
  readonly maxChunk: number;
  readonly log: Logger;
  /** Monotonic milliseconds (for idle and trickle checks). */
  readonly clock: () => number;
  /** The server-wide bound on upload bytes in memory; reading pauses while it is exceeded. */
  readonly budget?: BufferBudget;
  /** Called once, after the socket closed and the session let go of everything. */
  readonly onClosed: (connection: Connection) => void;
}

export class Connection {
  /** When the last complete request arrived (or the connection opened). */
  lastRequestAt: number;
  private readonly decoder: RequestDecoder;
  private busy = false;
  private waitingForPeer = false;
  private peerEnded = false;
  private closing = false;
  private closed = false;
  private closeReason: CloseReason | undefined;
  /** Start of the partial request now arriving, and how many bytes it had then. */
  private frameStartedAt: number | undefined;
  private frameStartBytes = 0;
  private completedInPush = false;
  /** Settles when the session has finished its last step after the socket closed. */
  readonly finished: Promise<void>;
  private resolveFinished!: () => void;
  private readonly log: Logger;

  constructor(
    readonly socket: Socket,
    private readonly session: Session,
    readonly remoteAddress: string,
    private readonly options: ConnectionOptions,
  ) {
    this.log = options.log;
    this.decoder = new RequestDecoder({ maxChunk: options.maxChunk });
    this.lastRequestAt = options.clock();
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('drain', () => this.onDrain());
    socket.on('error', (err) => this.onSocketError(err));
    socket.on('close', () => this.onClose());
  }

  /** A request is being served, partly received, or an upload is open: not idle. */
  get active(): boolean {
    return (
      this.busy || this.decoder.pending || this.decoder.inFrame || this.session.uploadInProgress
    );
  }

  /** True if the connection has sent nothing but whole requests and is owed nothing. */
  get quiet(): boolean {
    return !this.active;
  }

  /**
   * Only a request the peer has not finished sending is at stake (no answer owed, no upload
   * open): at the global limit such a connection may make room too, or 1000 half-sent
   * sockets would lock everyone out until the trickle floor cuts them (slowloris).
   */
  get onlyPartialRequest(): boolean {
    return (
      this.decoder.inFrame && !(this.busy || this.decoder.pending || this.session.uploadInProgress)
    );
  }

  /**
   * Periodic check (one sweep for all connections, not one timer each): closes the connection
   * if it sent no complete request for `idleTimeoutMs`, or trickles its current request slower
   * than `minRate` bytes per second once `graceMs` have passed. Returns the reason if closed.
   */
  sweep(
    now: number,
    idleTimeoutMs: number,
    minRate: number,
    graceMs: number,
  ): CloseReason | undefined {
    // While the server works or waits for the peer to read, the peer is not the slow one.
    if (this.closed || this.busy || this.waitingForPeer) return undefined;
    const arriving =
      this.frameStartedAt === undefined
        ? undefined
        : {
            startedAt: this.frameStartedAt,
            bytes: this.decoder.bufferedBytes - this.frameStartBytes,
          };
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

  /** Closes at once (idle, evicted, shutdown): an unfinished upload is dropped. */
  close(reason: CloseReason): void {
    if (this.closed) return;
    this.closeReason ??= reason;
    this.closing = true;
    this.socket.destroy();
  }

  /** Closes once the requests received so far are answered (shutdown of a quiet connection). */
  closeWhenQuiet(): void {
    if (this.quiet) this.close('shutdown');
  }

  // ------------------------------------------------------------ input

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    this.read(() => this.decoder.push(chunk, this.sink));
    if (!this.busy) this.afterWork();
  }

  /** Runs the reader (push or release); a framing error is answered, then the socket closes. */
  private read(step: () => void): void {
    this.completedInPush = false;
    try {
      step();
    } catch (err) {
      if (!isProtocolError(err) || !err.fatal) throw err;
      this.fatalFraming(err, err.messageCode);
    }
    // Once per read, not per packet: the clock is the idle sweep's, coarse is enough.
    if (this.completedInPush) this.lastRequestAt = this.options.clock();
    this.session.relieve();
    this.trackPartialFrame();
  }

  private readonly sink: RequestSink = {
    fast: (buf: Buffer, offset: number, code: number, payloadSize: number): boolean => {
      if (!this.session.fastPacket(buf, offset, code, payloadSize)) return false;
      this.completedInPush = true;
      return true;
    },
    request: (decoded: DecodedRequest): void => {
      this.completedInPush = true; // `read` stamps lastRequestAt once for the whole read
      this.serve(decoded);
    },
  };

  private trackPartialFrame(): void {
    if (!this.decoder.inFrame) {
      this.frameStartedAt = undefined;
    } else if (this.frameStartedAt === undefined || this.completedInPush) {
      this.frameStartedAt = this.options.clock();
      this.frameStartBytes = 0;
    }
  }

  /** The reader throws only while walking, so nothing is being served: answer at once. */
  private fatalFraming(error: unknown, code: number | undefined): void {
    this.closing = true;
    this.closeReason ??= 'framing';
    this.wait(this.session.fatal(error, code), true);
  }

  private serve(decoded: DecodedRequest): void {
    let step: Promise<Response | undefined> | undefined;
    try {
      step = this.session.handle(decoded);
    } catch (err) {
      // A bug in the synchronous path: answer like any internal error, keep serving.
      this.log.error({ err }, 'internal error while handling a request');
      this.send({ code: ResponseCode.GENERAL_ERROR });
      return;
    }
    if (step !== undefined) this.wait(step, false);
  }

  /** Stops reading until `step` settles, then sends its answer and reads on. */
  private wait(step: Promise<Response | undefined>, thenClose: boolean): void {
    this.busy = true;
    this.decoder.hold();
    this.socket.pause();
    step
      .then(
        (response) => {
          if (response !== undefined) this.send(response);
        },
        (err: unknown) => {
          this.log.error({ err }, 'internal error while handling a request');
          this.send({ code: ResponseCode.GENERAL_ERROR });
        },
      )
      .finally(() => {
        this.busy = false;
        if (thenClose || this.closed) {
          // After a framing error the rest of the stream is meaningless: answer, then go.
          this.endSocket(true);
          if (this.closed) this.finish();
          return;
        }
        this.pump();
      })
      .catch((err: unknown) => this.log.error({ err }, 'connection state error'));
  }

  private pump(): void {
    this.read(() => this.decoder.release(this.sink));
    if (!this.busy) this.afterWork();
  }

  /** Nothing is being served: apply backpressure, or read on. */
  private afterWork(): void {
    if (this.closed) {
      this.finish();
      return;
    }
    if (this.session.pendingWriteBytes > WRITE_BACKLOG_LIMIT) {
      this.wait(
        this.session.drain().then(() => undefined),
        false,
      );
      return;
    }
    const budget = this.options.budget;
    if (budget !== undefined && budget.over && this.session.pendingWriteBytes > 0) {
      // The server holds too much upload data: read no more of ours until the disk caught up.
      this.wait(
        budget.whenBelow().then(() => undefined),
        false,
      );
      return;
    }
    if (this.peerEnded) {
      // The peer half-closed and everything it sent is answered.
      this.endSocket();
      return;
    }
    if (!this.closing && !this.waitingForPeer) this.resume();
  }

  private resume(): void {
    if (!this.socket.isPaused()) return;
    // Time spent paused by us does not count against the peer's request rate.
    if (this.frameStartedAt !== undefined) {
      this.frameStartedAt = this.options.clock();
      this.frameStartBytes = this.decoder.bufferedBytes;
    }
    this.socket.resume();
  }

  // ------------------------------------------------------------ output

  private send(response: Response): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    const ok = this.socket.write(encodeResponse(response));
    if (!ok) {
      // The peer does not read its answers: stop reading its requests until it does.
      this.waitingForPeer = true;
      this.socket.pause();
    }
  }

  private onDrain(): void {
    if (!this.waitingForPeer) return;
    this.waitingForPeer = false;
    if (!this.busy && !this.closing) this.resume();
  }

  /**
   * Ends our side after what is written. With `thenDestroy`, the socket is destroyed once the
   * answer is out, whatever the peer still sends; otherwise the peer has ended already.
   */
  private endSocket(thenDestroy = false): void {
    this.closing = true;
    if (this.socket.destroyed) return;
    if (thenDestroy) this.socket.end(() => this.socket.destroy());
    else this.socket.end();
  }

  // ------------------------------------------------------------ lifecycle

  private onEnd(): void {
    this.peerEnded = true;
    if (!this.busy && !this.decoder.pending) this.endSocket();
  }

  private onSocketError(err: Error): void {
    // A reset or a vanished peer is normal for a network server, not an error.
    this.closeReason ??= 'error';
    this.log.debug({ err: err.message }, 'socket error');
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.closing = true;
    this.log.debug({ reason: this.closeReason ?? 'peer' }, 'connection closed');
    if (!this.busy) this.finish();
  }

  private finishing = false;

  /** Lets the session drop an unfinished upload, then reports the connection gone. */
  private finish(): void {
    if (this.finishing) return;
    this.finishing = true;
    this.session
      .dispose()
      .catch((err: unknown) => this.log.error({ err }, 'error while closing a session'))
      .finally(() => {
        this.options.onClosed(this);
        this.resolveFinished();
      });
  }

  get reason(): CloseReason | undefined {
    return this.closeReason;
  }
}
