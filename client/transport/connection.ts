/**
 * The TCP side of a session: one socket, one ResponseDecoder, responses queued in order, and
 * every socket failure turned into a ClientError with a code (exit 3) and a message that says
 * what happened. The session talks to it only through the `Transport` interface.
 */
import { connect as netConnect, type Socket } from 'node:net';
import {
  isProtocolError,
  ResponseCode,
  ResponseDecoder,
  type DecodedResponse,
} from '../../protocol';
import { firstErrnoCode } from '../../shared/errno';
import { ClientErrorCode, clientError, type ClientError } from '../errors';
import type { ServerAddress } from '../config/server-address';

/** What a session needs from a connection; tests may supply their own. */
export interface Transport {
  /** `host:port` for messages. */
  readonly remote: string;
  /**
   * Hands `data` to the connection. Resolves once the bytes are written out (the buffer may be
   * reused), rejects with a ClientError when the connection fails or stalls.
   */
  write(data: Buffer): Promise<void>;
  /** True when a response (or a failure) has arrived that nobody has taken yet. */
  readonly interrupted: boolean;
  /** The next response in order; rejects on timeout, close, or a broken byte stream. */
  receive(what: string): Promise<DecodedResponse>;
  /**
   * Tolerates undeclared bytes after the next 1604 (§9): if what follows it equals a prefix of
   * `bytes`, it is dropped (ResponseDecoder.skipIfNext, armed from the 1604's own callback so
   * junk in the same TCP chunk is caught too).
   */
  skipAfterAck(bytes: Buffer): void;
  /** Closes the connection; pending waits reject. Safe to call twice. */
  close(): void;
}

export interface ConnectOptions {
  readonly connectTimeoutMs: number;
  /** How long to wait for an answer, or for the server to take more data. */
  readonly responseTimeoutMs: number;
}

const seconds = (ms: number): string => `${Math.round(ms) / 1000} s`;

function serverHint(server: ServerAddress): string {
  return (
    `check that sft-server is running and reachable at ${server.display} ` +
    '(line 1 of transfer.info, or --server)'
  );
}

function connectError(server: ServerAddress, err: unknown): ClientError {
  const sys = firstErrnoCode(err);
  const hint = serverHint(server);
  switch (sys) {
    case 'ECONNREFUSED':
      return clientError(
        ClientErrorCode.CONNECT_REFUSED,
        `connection to ${server.display} refused`,
        { hint, cause: err },
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return clientError(
        ClientErrorCode.HOST_NOT_FOUND,
        `cannot resolve the host name "${server.host}" (${sys})`,
        { hint: 'check the host name and your DNS settings', cause: err },
      );
    default:
      return clientError(
        ClientErrorCode.CONNECT_FAILED,
        `cannot connect to ${server.display} (${sys ?? String(err)})`,
        { hint, cause: err },
      );
  }
}

function lostError(server: ServerAddress, err: unknown): ClientError {
  const sys = firstErrnoCode(err);
  return clientError(
    ClientErrorCode.CONNECTION_LOST,
    `the connection to ${server.display} failed (${sys ?? String(err)})`,
    { hint: 'the server or the network dropped the connection; run the client again', cause: err },
  );
}

class SocketTransport implements Transport {
  readonly remote: string;
  private readonly decoder = new ResponseDecoder();
  private readonly queue: DecodedResponse[] = [];
  private failure: ClientError | undefined;
  private closing = false;
  private junkAfterAck: Buffer | undefined;
  private waiter:
    | { resolve(r: DecodedResponse): void; reject(e: ClientError): void; timer: NodeJS.Timeout }
    | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly server: ServerAddress,
    private readonly options: ConnectOptions,
  ) {
    this.remote = server.display;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(lostError(server, err)));
    socket.on('end', () => this.fail(this.closedError()));
    socket.on('close', () => this.fail(this.closedError()));
  }

  get interrupted(): boolean {
    return this.queue.length > 0 || this.failure !== undefined;
  }

  private closedError(): ClientError {
    return clientError(
      ClientErrorCode.CONNECTION_LOST,
      `the server at ${this.server.display} closed the connection`,
      { hint: 'the server may have restarted or refused the session; run the client again' },
    );
  }

  private onData(chunk: Buffer): void {
    try {
      // Responses hold copies (ids, keys) and plain values, so they may outlive the callback.
      this.decoder.push(chunk, (response) => {
        if (
          response.ok &&
          response.response.code === ResponseCode.ACKNOWLEDGED &&
          this.junkAfterAck
        ) {
          this.decoder.skipIfNext(this.junkAfterAck);
          this.junkAfterAck = undefined;
        }
        this.queue.push(response);
      });
    } catch (err) {
      if (!isProtocolError(err)) throw err;
      this.fail(
        clientError(
          ClientErrorCode.PROTOCOL_VIOLATION,
          `the server at ${this.server.display} sent bytes that are not a protocol response ` +
            `(${err.message})`,
          { hint: 'check that host:port points at an sft server', cause: err },
        ),
      );
      this.socket.destroy();
    }
    this.wake();
  }

  private fail(err: ClientError): void {
    if (this.failure === undefined && !this.closing) this.failure = err;
    this.wake();
  }

  private wake(): void {
    const waiter = this.waiter;
    if (!waiter) return;
    const next = this.queue.shift();
    if (next) {
      this.waiter = undefined;
      clearTimeout(waiter.timer);
      waiter.resolve(next);
    } else if (this.failure) {
      this.waiter = undefined;
      clearTimeout(waiter.timer);
      waiter.reject(this.failure);
    }
  }

  receive(what: string): Promise<DecodedResponse> {
    const next = this.queue.shift();
    if (next) return Promise.resolve(next);
    if (this.failure) return Promise.reject(this.failure);
    if (this.waiter) return Promise.reject(new Error('receive() called while another waits'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        const err = clientError(
          ClientErrorCode.RESPONSE_TIMEOUT,
          `no answer from ${this.server.display} to the ${what} within ` +
            seconds(this.options.responseTimeoutMs),
          {
            hint:
              'the server may be overloaded or hung; try again later, or raise ' +
              '--response-timeout for very large files on slow servers',
          },
        );
        this.fail(err);
        this.socket.destroy();
        reject(err);
      }, this.options.responseTimeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  write(data: Buffer): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      // A server that stops reading would let us wait for ever: bound each write's flush.
      const timer = setTimeout(() => {
        this.fail(
          clientError(
            ClientErrorCode.RESPONSE_TIMEOUT,
            `${this.server.display} took no data for ${seconds(this.options.responseTimeoutMs)}`,
            { hint: 'the server may be overloaded or hung; try again later' },
          ),
        );
        this.socket.destroy();
      }, this.options.responseTimeoutMs);
      this.socket.write(data, (err) => {
        clearTimeout(timer);
        if (err) reject(this.failure ?? lostError(this.server, err));
        else resolve();
      });
    });
  }

  skipAfterAck(bytes: Buffer): void {
    this.junkAfterAck = bytes;
  }

  close(): void {
    if (this.closing) return;
    this.fail(
      clientError(ClientErrorCode.CONNECTION_LOST, `the connection to ${this.remote} was closed`),
    );
    this.closing = true;
    // Everything we sent was answered, so a plain FIN is right; undeclared bytes a server sends
    // after its last 1604 are not read (§9). destroySoon closes once our writes are out.
    this.socket.destroySoon();
  }
}

/** Opens a TCP connection to `server`, with the connect timeout of `options`. */
export function connectTransport(
  server: ServerAddress,
  options: ConnectOptions,
): Promise<Transport> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: server.host, port: server.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        clientError(
          ClientErrorCode.CONNECT_TIMEOUT,
          `no connection to ${server.display} within ${seconds(options.connectTimeoutMs)}`,
          { hint: `${serverHint(server)}; a firewall may be dropping the connection` },
        ),
      );
    }, options.connectTimeoutMs);
    const onError = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(connectError(server, err));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      // Requests are small and each waits for its answer: send them at once (no Nagle delay).
      socket.setNoDelay(true);
      resolve(new SocketTransport(socket, server, options));
    });
  });
}
