/** A bare v4 peer for server tests: TLS 1.3 to the server, frames in and out, nothing else. */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { Framer } from '../../protocol/framer';
import {
  ALPN_V4,
  decodeResponse,
  encodeRequest,
  framePayload,
  MIGRATION_EXPORTER_LABEL,
  MIGRATION_EXPORTER_LENGTH,
  PROTOCOL_VERSION_4,
  RequestCode,
  ResponseCode,
  responseFrameLayout,
  type Request,
  type Response,
} from '../../protocol/v4';
import { generateIdentityKey, issueCertificate, type Identity } from '../../shared/identity';

export interface RawV4 {
  send(request: Request): void;
  sendBytes(bytes: Buffer): void;
  /** The next response; rejects when the connection closed first. */
  next(): Promise<Response>;
  readonly closed: Promise<void>;
  exporter(): Buffer;
  close(): void;
}

export async function connectRaw(port: number, identity?: Identity): Promise<RawV4> {
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    minVersion: 'TLSv1.3',
    ALPNProtocols: [ALPN_V4],
    rejectUnauthorized: false,
    checkServerIdentity: () => undefined,
    ...(identity ? { key: identity.keyPem, cert: identity.certPem } : {}),
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  const queue: Response[] = [];
  const waiters: Array<{ resolve: (r: Response) => void; reject: (e: Error) => void }> = [];
  const framer = new Framer(responseFrameLayout());
  let ended = false;
  socket.on('data', (chunk: Buffer) =>
    framer.push(chunk, {
      frame: (buf, offset, code, size) => {
        const response = decodeResponse(code, framePayload(buf, offset, size));
        const waiter = waiters.shift();
        if (waiter) waiter.resolve(response);
        else queue.push(response);
      },
    }),
  );
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      ended = true;
      for (const w of waiters.splice(0)) w.reject(new Error('connection closed'));
      resolve();
    }),
  );
  return {
    send: (request) => void socket.write(encodeRequest(request)),
    sendBytes: (bytes) => void socket.write(bytes),
    next: () => {
      const ready = queue.shift();
      if (ready) return Promise.resolve(ready);
      if (ended) return Promise.reject(new Error('connection closed'));
      return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
    },
    closed,
    exporter: () =>
      socket.exportKeyingMaterial(
        MIGRATION_EXPORTER_LENGTH,
        MIGRATION_EXPORTER_LABEL,
        Buffer.alloc(0),
      ),
    close: () => socket.destroy(),
  };
}

/** Opens a plain TCP connection and sends `bytes` (a v3 request); resolves with what came back. */
export function rawTcp(port: number, bytes: Buffer, waitMs = 1000): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes));
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', () => undefined);
    const done = (): void => resolve(Buffer.concat(chunks));
    socket.on('close', done);
    setTimeout(() => {
      socket.destroy();
    }, waitMs);
  });
}

/**
 * A peer with a fresh certificate, past HELLO (asking for `maxChunk`) and REGISTER as `name`;
 * its client id in hex.
 */
export async function registeredPeer(
  port: number,
  name: string,
  maxChunk = 65536,
): Promise<{ readonly peer: RawV4; readonly clientHex: string }> {
  const identity = await issueCertificate(await generateIdentityKey(), name, {
    now: Date.now,
    random: randomBytes,
  });
  const peer = await connectRaw(port, identity);
  peer.send({ code: RequestCode.HELLO, version: PROTOCOL_VERSION_4, maxChunk });
  const welcome = await peer.next();
  if (welcome.code !== ResponseCode.WELCOME) throw new Error(`no WELCOME: ${welcome.code}`);
  peer.send({ code: RequestCode.REGISTER, name });
  const answer = await peer.next();
  if (answer.code !== ResponseCode.REGISTERED) throw new Error(`not registered: ${answer.code}`);
  return { peer, clientHex: answer.clientId.toString('hex') };
}
