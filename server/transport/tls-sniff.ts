/**
 * Version 3 and version 4 on one port (docs/protocol-v4.md §1): the first bytes of a connection
 * decide (protocol/version.ts). 0x16 0x03 starts a TLS handshake record and goes to the v4
 * stack; anything else is a v3 request header (a v3 client id never starts with 0x16,
 * docs/protocol.md §9). Until that byte
 * arrives the connection is idle and counts against every limit like any other.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { sniffProtocol } from '../../protocol/version';
import type { CloseReason } from './connection';

/** The shape the listener needs of a connection, v3 or v4. */
export interface ServedConnection {
  readonly remoteAddress: string;
  readonly finished: Promise<void>;
  readonly lastRequestAt: number;
  readonly quiet: boolean;
  readonly onlyPartialRequest: boolean;
  sweep(
    now: number,
    idleTimeoutMs: number,
    minRate: number,
    graceMs: number,
  ): CloseReason | undefined;
  close(reason: CloseReason): void;
  closeWhenQuiet(): void;
}

export interface SniffOptions {
  readonly log: Logger;
  /** Monotonic milliseconds. */
  readonly clock: () => number;
  /** Builds the v3 connection; undefined when v3 is switched off (`--v3 off`). */
  readonly v3: ((socket: Socket, onClosed: () => void) => ServedConnection) | undefined;
  /** Builds the v4 connection; undefined when the server has no v4 stack. */
  readonly v4: ((socket: Socket, onClosed: () => void) => ServedConnection) | undefined;
  readonly onClosed: (connection: SniffingConnection) => void;
}

export class SniffingConnection implements ServedConnection {
  readonly finished: Promise<void>;
  private resolveFinished!: () => void;
  private inner: ServedConnection | undefined;
  private readonly openedAt: number;
  private done = false;

  constructor(
    private readonly socket: Socket,
    readonly remoteAddress: string,
    private readonly options: SniffOptions,
  ) {
    this.openedAt = options.clock();
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
    socket.on('data', this.onData);
    socket.on('error', () => undefined);
    // A peer that half-closes before its first byte is owed nothing: close our side too.
    socket.once('end', () => {
      if (this.inner === undefined) this.socket.destroy();
    });
    socket.once('close', () => {
      if (this.inner === undefined) this.finish();
    });
  }

  /** Which protocol the connection turned out to speak, once its first byte came. */
  get protocol(): 3 | 4 | undefined {
    if (this.inner === undefined) return undefined;
    return this.isV4 ? 4 : 3;
  }

  private isV4 = false;

  get lastRequestAt(): number {
    return this.inner?.lastRequestAt ?? this.openedAt;
  }

  get quiet(): boolean {
    return this.inner?.quiet ?? true;
  }

  get onlyPartialRequest(): boolean {
    return this.inner?.onlyPartialRequest ?? false;
  }

  sweep(
    now: number,
    idleTimeoutMs: number,
    minRate: number,
    graceMs: number,
  ): CloseReason | undefined {
    if (this.inner) return this.inner.sweep(now, idleTimeoutMs, minRate, graceMs);
    if (this.done) return undefined;
    if (now - this.openedAt >= idleTimeoutMs) {
      this.close('idle');
      return 'idle';
    }
    return undefined;
  }

  close(reason: CloseReason): void {
    if (this.inner) {
      this.inner.close(reason);
      return;
    }
    this.socket.destroy();
  }

  closeWhenQuiet(): void {
    if (this.inner) this.inner.closeWhenQuiet();
    else this.socket.destroy();
  }

  /** Bytes seen before the protocol is known (one byte at most: 0x16 alone is undecided). */
  private seen: Buffer = Buffer.alloc(0);

  private readonly onData = (chunk: Buffer): void => {
    const first = this.seen.length === 0 ? chunk : Buffer.concat([this.seen, chunk]);
    const verdict = sniffProtocol(first);
    if (verdict === 'need-more') {
      this.seen = first;
      return;
    }
    this.socket.off('data', this.onData);
    this.seen = Buffer.alloc(0);
    this.choose(first, verdict);
  };

  private choose(first: Buffer, verdict: 'tls' | 'v3'): void {
    const { v3, v4, log } = this.options;
    // Back into the socket's buffer: the chosen stack reads the stream from its first byte.
    this.socket.pause();
    this.socket.unshift(first);
    const onClosed = (): void => this.finish();
    if (verdict === 'tls' && v4) {
      this.isV4 = true;
      // TLSSocket takes over the socket's handle and the bytes buffered in it.
      this.inner = v4(this.socket, onClosed);
      return;
    }
    if (v3) {
      this.inner = v3(this.socket, onClosed);
      this.socket.resume();
      return;
    }
    log.info({ firstByte: first[0] }, 'not a TLS handshake and v3 is off: closed');
    this.socket.destroy();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.options.onClosed(this);
    this.resolveFinished();
  }
}
