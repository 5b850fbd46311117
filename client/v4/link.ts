/**
 * Messages over an open v4 channel: requests written in order, responses read with the shared
 * framer and handed out one by one, every failure a ClientError (connection lost, timeout, a
 * byte stream that cannot be framed).
 */
import type tls from 'node:tls';
import { isProtocolError } from '../../protocol/errors';
import { Framer } from '../../protocol/framer';
import {
  decodeResponse,
  encodeDataHeader,
  encodeRequest,
  framePayload,
  responseFrameLayout,
  type Request,
  type Response,
} from '../../protocol/v4';
import { ClientErrorCode, clientError, type ClientError } from '../errors';

export class V4Link {
  private readonly framer = new Framer(responseFrameLayout());
  private readonly queue: Response[] = [];
  private failure: ClientError | undefined;
  private waiter: { resolve: () => void } | undefined;
  /** Bytes of file data written to the socket (for reports and tests). */
  dataBytesSent = 0;

  constructor(
    private readonly socket: tls.TLSSocket,
    readonly remote: string,
    private readonly responseTimeoutMs: number,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(this.lost(err.message, err)));
    socket.on('close', () => this.fail(this.lost('the server closed the connection')));
  }

  private lost(why: string, cause?: unknown): ClientError {
    return clientError(
      ClientErrorCode.CONNECTION_LOST,
      `connection to ${this.remote} lost: ${why}`,
      {
        hint: 'run again: an interrupted upload or download continues where it stopped',
        cause,
      },
    );
  }

  private onData(chunk: Buffer): void {
    try {
      this.framer.push(chunk, {
        frame: (buf, offset, code, size) => {
          this.queue.push(decodeResponse(code, framePayload(buf, offset, size)));
        },
      });
    } catch (err) {
      const why = isProtocolError(err) ? err.message : String(err);
      this.fail(
        clientError(ClientErrorCode.PROTOCOL_VIOLATION, `${this.remote} sent bad v4 data: ${why}`),
      );
      this.socket.destroy();
      return;
    }
    this.wake();
  }

  private fail(err: ClientError): void {
    this.failure ??= err;
    this.wake();
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.resolve();
  }

  /** True when a response arrived that nobody asked for yet (an early ERROR). */
  get hasResponse(): boolean {
    return this.queue.length > 0;
  }

  async receive(what: string): Promise<Response> {
    const deadline = Date.now() + this.responseTimeoutMs;
    while (this.queue.length === 0) {
      if (this.failure) throw this.failure;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw clientError(
          ClientErrorCode.RESPONSE_TIMEOUT,
          `no answer to ${what} from ${this.remote} within ${this.responseTimeoutMs / 1000} s`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = {
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
      });
    }
    return this.queue.shift() as Response;
  }

  async send(request: Request): Promise<void> {
    await this.write(encodeRequest(request));
  }

  /** One DATA frame: its header, then the bytes as they are (no copy into a frame). */
  async sendData(data: Buffer): Promise<void> {
    this.socket.cork();
    const header = this.socket.write(encodeDataHeader(data.length));
    const body = this.socket.write(data);
    this.socket.uncork();
    this.dataBytesSent += data.length;
    if (!(header && body)) await this.drained();
  }

  private write(bytes: Buffer): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.socket.write(bytes)) return Promise.resolve();
    return this.drained();
  }

  private drained(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.failure) {
        reject(this.failure);
        return;
      }
      const timer = setTimeout(() => {
        cleanup();
        reject(
          clientError(
            ClientErrorCode.RESPONSE_TIMEOUT,
            `${this.remote} took no data for ${this.responseTimeoutMs / 1000} s`,
          ),
        );
      }, this.responseTimeoutMs);
      const onDrain = (): void => {
        cleanup();
        resolve();
      };
      const onClose = (): void => {
        cleanup();
        reject(this.failure ?? this.lost('closed while sending'));
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        this.socket.off('drain', onDrain);
        this.socket.off('close', onClose);
      };
      this.socket.on('drain', onDrain);
      this.socket.on('close', onClose);
    });
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }
}
