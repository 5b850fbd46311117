/**
 * A test-only client that speaks docs/protocol.md at the byte level. Requests are built here with
 * plain Buffer writes, independently of protocol/encode.ts, so the server is checked against
 * the document and not against our own encoder. Any byte can be sent, hostile ones included.
 */
import { createCipheriv, type KeyObject, publicEncrypt } from 'node:crypto';
import net from 'node:net';

export const VERSION = 3;
export const REQUEST_HEADER = 23;
export const RESPONSE_HEADER = 7;
export const NAME_FIELD = 255;
export const KEY_FIELD = 160;
/** content size, orig size, packet, total, file name (§3). */
export const SEND_FILE_FIXED = 267;
export const ZERO_ID = Buffer.alloc(16);

export const Code = {
  REGISTER: 1025,
  PUBLIC_KEY: 1026,
  RECONNECT: 1027,
  SEND_FILE: 1028,
  CRC_OK: 1029,
  CRC_RETRY: 1030,
  CRC_ABORT: 1031,
} as const;

export const Reply = {
  REGISTERED: 1600,
  REGISTRATION_FAILED: 1601,
  KEY_ACCEPTED: 1602,
  FILE_RECEIVED: 1603,
  ACK: 1604,
  RECONNECTED: 1605,
  RECONNECT_REFUSED: 1606,
  ERROR: 1607,
} as const;

/** 23-byte request header (§1), little-endian. */
export function header(clientId: Buffer, code: number, payloadSize: number, version = VERSION) {
  const h = Buffer.alloc(REQUEST_HEADER);
  clientId.copy(h, 0, 0, 16);
  h[16] = version;
  h.writeUInt16LE(code, 17);
  h.writeUInt32LE(payloadSize, 19);
  return h;
}

/** A 255-byte string field: the bytes, a NUL, NUL padding (§2). Raw bytes are sent as is. */
export function nameField(text: string | Buffer): Buffer {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  const f = Buffer.alloc(NAME_FIELD);
  bytes.copy(f, 0, 0, Math.min(bytes.length, NAME_FIELD));
  return f;
}

export function frame(clientId: Buffer, code: number, payload: Buffer, version = VERSION) {
  return Buffer.concat([header(clientId, code, payload.length, version), payload]);
}

export function register(name: string | Buffer, clientId: Buffer = ZERO_ID): Buffer {
  return frame(clientId, Code.REGISTER, nameField(name));
}

export function sendPublicKey(clientId: Buffer, name: string, spkiDer: Buffer): Buffer {
  const keyField = Buffer.alloc(KEY_FIELD);
  spkiDer.copy(keyField, 0, 0, Math.min(spkiDer.length, KEY_FIELD));
  return frame(clientId, Code.PUBLIC_KEY, Buffer.concat([nameField(name), keyField]));
}

export function reconnect(clientId: Buffer, name: string): Buffer {
  return frame(clientId, Code.RECONNECT, nameField(name));
}

export function checksum(
  code: typeof Code.CRC_OK | typeof Code.CRC_RETRY | typeof Code.CRC_ABORT,
  clientId: Buffer,
  fileName: string | Buffer,
): Buffer {
  return frame(clientId, code, nameField(fileName));
}

export interface PacketFields {
  readonly contentSize: number;
  readonly origSize: number;
  readonly packet: number;
  readonly total: number;
  readonly fileName: string | Buffer;
}

export function sendFilePacket(clientId: Buffer, f: PacketFields, content: Buffer): Buffer {
  const fixed = Buffer.alloc(12);
  fixed.writeUInt32LE(f.contentSize, 0);
  fixed.writeUInt32LE(f.origSize, 4);
  fixed.writeUInt16LE(f.packet, 8);
  fixed.writeUInt16LE(f.total, 10);
  return frame(clientId, Code.SEND_FILE, Buffer.concat([fixed, nameField(f.fileName), content]));
}

/** AES-256-CBC, zero IV, PKCS#7 (§5.4), straight from node:crypto. */
export function encrypt(key: Buffer, plaintext: Buffer): Buffer {
  const c = createCipheriv('aes-256-cbc', key, Buffer.alloc(16));
  return Buffer.concat([c.update(plaintext), c.final()]);
}

/** All 1028 packets of one upload: `chunk` ciphertext bytes each, the last one the rest. */
export function uploadPackets(
  clientId: Buffer,
  fileName: string | Buffer,
  key: Buffer,
  plaintext: Buffer,
  chunk = 1024,
): Buffer[] {
  const ciphertext = encrypt(key, plaintext);
  const total = Math.max(1, Math.ceil(ciphertext.length / chunk));
  const packets: Buffer[] = [];
  for (let i = 0; i < total; i++) {
    packets.push(
      sendFilePacket(
        clientId,
        {
          contentSize: ciphertext.length,
          origSize: plaintext.length,
          packet: i + 1,
          total,
          fileName,
        },
        ciphertext.subarray(i * chunk, (i + 1) * chunk),
      ),
    );
  }
  return packets;
}

export interface RawResponse {
  readonly version: number;
  readonly code: number;
  readonly payloadSize: number;
  readonly payload: Buffer;
  /** Header and payload as received. */
  readonly bytes: Buffer;
}

/** Splits a byte stream into responses by their declared payload size (§1). */
export function parseResponses(data: Buffer): { responses: RawResponse[]; rest: Buffer } {
  const responses: RawResponse[] = [];
  let at = 0;
  while (data.length - at >= RESPONSE_HEADER) {
    const payloadSize = data.readUInt32LE(at + 3);
    const end = at + RESPONSE_HEADER + payloadSize;
    if (data.length < end) break;
    responses.push({
      version: data[at],
      code: data.readUInt16LE(at + 1),
      payloadSize,
      payload: Buffer.from(data.subarray(at + RESPONSE_HEADER, end)),
      bytes: Buffer.from(data.subarray(at, end)),
    });
    at = end;
  }
  return { responses, rest: data.subarray(at) };
}

/** Fields of a 1603 payload (§4). */
export function fileReceived(r: RawResponse): {
  clientId: Buffer;
  contentSize: number;
  fileName: string;
  cksum: number;
} {
  const nul = r.payload.indexOf(0, 20);
  return {
    clientId: r.payload.subarray(0, 16),
    contentSize: r.payload.readUInt32LE(16),
    fileName: r.payload.toString('utf8', 20, nul < 0 ? 275 : nul),
    cksum: r.payload.readUInt32LE(275),
  };
}

export function wrapForTest(publicKey: KeyObject, aesKey: Buffer): Buffer {
  return publicEncrypt({ key: publicKey, oaepHash: 'sha1' }, aesKey);
}

const DEFAULT_TIMEOUT_MS = 15000;

export class RawClient {
  private data: Buffer = Buffer.alloc(0);
  private readonly queue: RawResponse[] = [];
  private waiter: (() => void) | undefined;
  private isClosed = false;
  readonly closed: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.data = Buffer.concat([this.data, chunk]);
      const { responses, rest } = parseResponses(this.data);
      this.data = Buffer.from(rest);
      this.queue.push(...responses);
      this.wake();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => {
      // The server ending its side counts as closing (the socket is half-open capable).
      const onGone = (): void => {
        this.isClosed = true;
        this.wake();
        resolve();
      };
      socket.on('end', onGone);
      socket.on('close', onGone);
    });
  }

  static connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host, localAddress, allowHalfOpen: true });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawClient(socket));
      });
    });
  }

  get isOpen(): boolean {
    return !this.isClosed;
  }

  /** Bytes received that do not (yet) form a whole response. */
  get leftover(): Buffer {
    return this.data;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  write(bytes: Buffer | Buffer[]): Promise<void> {
    const buf = Array.isArray(bytes) ? Buffer.concat(bytes) : bytes;
    return new Promise((resolve, reject) =>
      this.socket.write(buf, (err) => (err ? reject(err) : resolve())),
    );
  }

  /**
   * Writes `bytes` in pieces whose sizes `nextSize` picks (1-byte writes, random splits,
   * splits inside headers), yielding to the event loop now and then so pieces go out apart.
   */
  async writeSplit(bytes: Buffer, nextSize: (remaining: number) => number): Promise<void> {
    let at = 0;
    let writes = 0;
    while (at < bytes.length) {
      const size = Math.max(1, Math.min(bytes.length - at, nextSize(bytes.length - at)));
      const piece = bytes.subarray(at, at + size);
      at += size;
      const flushed = this.socket.write(piece);
      if (!flushed) await new Promise((r) => this.socket.once('drain', r));
      if (++writes % 64 === 0) await new Promise((r) => setImmediate(r));
    }
  }

  /** The next response; rejects if the connection closes or nothing comes in time. */
  async next(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<RawResponse> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length === 0) {
      if (this.isClosed) throw new Error('connection closed before a response arrived');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no response within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    return this.queue.shift() as RawResponse;
  }

  /** Sends a request and returns its answer. */
  async request(bytes: Buffer | Buffer[], timeoutMs?: number): Promise<RawResponse> {
    await this.write(bytes);
    return this.next(timeoutMs);
  }

  /** Responses received so far without waiting. */
  drainQueue(): RawResponse[] {
    return this.queue.splice(0);
  }

  /** Waits until the server closes; returns everything answered until then. */
  async untilClosed(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<RawResponse[]> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>(
      (r) => (timer = setTimeout(() => r('timeout'), timeoutMs)),
    );
    const result = await Promise.race([this.closed.then(() => 'closed' as const), timeout]);
    clearTimeout(timer);
    if (result === 'timeout') throw new Error(`server did not close within ${timeoutMs} ms`);
    return this.drainQueue();
  }

  /** Resolves true if nothing arrives within `ms` (for requests that get no answer). */
  async silentFor(ms: number): Promise<boolean> {
    await new Promise((r) => setTimeout(r, ms));
    return this.queue.length === 0;
  }

  /** Half-close: no more requests, answers still readable. */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}
