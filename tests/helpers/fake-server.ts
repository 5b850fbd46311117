/**
 * A test-only server scripted at the byte level, for client tests. It frames requests with its
 * own minimal parser and builds responses by hand (not with the production codec), so a bug
 * shared by the codec's encoder and decoder cannot hide. `honest()` answers like a conforming
 * server (docs/protocol.md §5); a test's `tamper` hook replaces any answer with other bytes or none.
 */
import {
  constants,
  createCipheriv,
  createDecipheriv,
  createPublicKey,
  publicEncrypt,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { cksum } from '../../shared/cksum';

const REQUEST_HEADER = 23;
const RESPONSE_HEADER = 7;
const STRING255 = 255;
const ID = 16;

export interface FakeRequest {
  /** 0-based index of the connection it came on. */
  readonly connection: number;
  readonly clientId: Buffer;
  readonly version: number;
  readonly code: number;
  readonly payload: Buffer;
}

/** A response frame built by hand: version 3, u16 code, u32 declared size, then `payload`. */
export function responseBytes(
  code: number,
  payload: Buffer = Buffer.alloc(0),
  declaredSize: number = payload.length,
): Buffer {
  const header = Buffer.alloc(RESPONSE_HEADER);
  header[0] = 3;
  header.writeUInt16LE(code, 1);
  header.writeUInt32LE(declaredSize, 3);
  return Buffer.concat([header, payload]);
}

/** Text of a string255 field: bytes up to the first NUL. */
export function readString255(buf: Buffer, offset: number): string {
  const field = buf.subarray(offset, offset + STRING255);
  const nul = field.indexOf(0);
  return field.subarray(0, nul < 0 ? field.length : nul).toString('utf8');
}

export function string255(text: string): Buffer {
  const field = Buffer.alloc(STRING255);
  field.write(text, 'utf8');
  return field;
}

export interface Reply {
  /** Writes raw bytes to the client. */
  send(bytes: Buffer): void;
  /** Closes the connection (FIN). */
  end(): void;
}

export type Handler = (request: FakeRequest, reply: Reply) => void;

export class FakeServer {
  readonly requests: FakeRequest[] = [];
  private connections = 0;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    handler: Handler,
  ) {
    server.on('connection', (socket) => {
      const connection = this.connections++;
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
      let pending = Buffer.alloc(0);
      const reply: Reply = {
        send: (bytes) => {
          if (!socket.destroyed && !socket.writableEnded) socket.write(bytes);
        },
        end: () => socket.end(),
      };
      socket.on('data', (chunk: Buffer) => {
        pending = Buffer.concat([pending, chunk]);
        while (pending.length >= REQUEST_HEADER) {
          const size = pending.readUInt32LE(19);
          if (pending.length < REQUEST_HEADER + size) break;
          const request: FakeRequest = {
            connection,
            clientId: Buffer.from(pending.subarray(0, ID)),
            version: pending[ID],
            code: pending.readUInt16LE(17),
            payload: Buffer.from(pending.subarray(REQUEST_HEADER, REQUEST_HEADER + size)),
          };
          pending = pending.subarray(REQUEST_HEADER + size);
          this.requests.push(request);
          handler(request, reply);
        }
      });
    });
  }

  static async start(handler: Handler): Promise<FakeServer> {
    const server = createServer();
    const fake = new FakeServer(server, handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  get port(): number {
    const address = this.server.address();
    if (address === null || typeof address === 'string') throw new Error('not listening');
    return address.port;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get connectionCount(): number {
    return this.connections;
  }

  /** Request codes in arrival order. */
  codes(): number[] {
    return this.requests.map((r) => r.code);
  }

  count(code: number): number {
    return this.requests.filter((r) => r.code === code).length;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

// ---------------------------------------------------------------- a conforming server

export interface FakeClient {
  name: string;
  publicKey?: KeyObject;
  aesKey?: Buffer;
}

export interface StoredUpload {
  readonly clientId: string;
  readonly fileName: string;
  readonly plaintext: Buffer;
  /** Content bytes per packet, in order. */
  readonly packetSizes: readonly number[];
  /** Declared (content size, orig size, total) of every packet. */
  readonly headers: readonly { contentSize: number; origSize: number; total: number }[];
}

export interface HonestState {
  /** Registered clients by id hex. */
  readonly clients: Map<string, FakeClient>;
  /** Completed uploads in order (every re-send too). */
  readonly uploads: StoredUpload[];
}

export interface HonestOptions {
  /**
   * Replaces the honest answer: return bytes to send, `null` to say nothing. `honest` is the
   * answer a conforming server would give (undefined where it gives none, e.g. 1030).
   */
  readonly tamper?: (
    request: FakeRequest,
    honest: Buffer | undefined,
    state: HonestState,
  ) => Buffer | null | undefined;
  /** Names that get 1601. */
  readonly takenNames?: readonly string[];
  /** Ids issued on 1025, in order; random when exhausted. */
  readonly ids?: readonly Buffer[];
}

/** The DER SEQUENCE at the start of the 160-byte key field, as a public key. */
function publicKeyFromField(field: Buffer): KeyObject {
  const lengthByte = field[1];
  const length =
    lengthByte < 0x80
      ? 2 + lengthByte
      : 2 + (lengthByte & 0x7f) + field.readUIntBE(2, lengthByte & 0x7f);
  return createPublicKey({ key: field.subarray(0, length), format: 'der', type: 'spki' });
}

function wrap(publicKey: KeyObject, aesKey: Buffer): Buffer {
  return publicEncrypt(
    { key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
    aesKey,
  );
}

/** AES-256-CBC, zero IV, PKCS#7: as the client must encrypt (test-side copy). */
export function testEncrypt(key: Buffer, plaintext: Buffer): Buffer {
  const c = createCipheriv('aes-256-cbc', key, Buffer.alloc(16));
  return Buffer.concat([c.update(plaintext), c.final()]);
}

interface UploadInProgress {
  chunks: Buffer[];
  packetSizes: number[];
  headers: { contentSize: number; origSize: number; total: number }[];
  next: number;
}

/** A handler that answers as docs/protocol.md §5 says, with a `tamper` hook for tests. */
export function honest(options: HonestOptions = {}): { handler: Handler; state: HonestState } {
  const state: HonestState = { clients: new Map(), uploads: [] };
  const ids = [...(options.ids ?? [])];
  const inProgress = new Map<string, UploadInProgress>();
  const taken = new Set(options.takenNames ?? []);

  const answer = (req: FakeRequest): Buffer | undefined => {
    const idHex = req.clientId.toString('hex');
    const client = state.clients.get(idHex);
    const generalError = responseBytes(1607);
    switch (req.code) {
      case 1025: {
        const name = readString255(req.payload, 0);
        const owner = [...state.clients.values()].find((c) => c.name === name);
        if (taken.has(name) || (owner && owner.publicKey)) return responseBytes(1601);
        if (owner) for (const [k, c] of state.clients) if (c === owner) state.clients.delete(k);
        const id = ids.shift() ?? randomBytes(ID);
        state.clients.set(id.toString('hex'), { name });
        return responseBytes(1600, id);
      }
      case 1026: {
        const name = readString255(req.payload, 0);
        if (!client || client.name !== name || client.publicKey) return responseBytes(1601);
        client.publicKey = publicKeyFromField(req.payload.subarray(STRING255));
        client.aesKey = randomBytes(32);
        return responseBytes(
          1602,
          Buffer.concat([req.clientId, wrap(client.publicKey, client.aesKey)]),
        );
      }
      case 1027: {
        const name = readString255(req.payload, 0);
        if (!client || client.name !== name || !client.publicKey) {
          return responseBytes(1606, req.clientId);
        }
        client.aesKey = randomBytes(32);
        return responseBytes(
          1605,
          Buffer.concat([req.clientId, wrap(client.publicKey, client.aesKey)]),
        );
      }
      case 1028: {
        if (!client?.aesKey) return generalError;
        const p = req.payload;
        const contentSize = p.readUInt32LE(0);
        const origSize = p.readUInt32LE(4);
        const packet = p.readUInt16LE(8);
        const total = p.readUInt16LE(10);
        const fileName = readString255(p, 12);
        const key = `${req.connection}/${idHex}/${fileName}`;
        if (packet === 1) {
          inProgress.set(key, { chunks: [], packetSizes: [], headers: [], next: 1 });
        }
        const upload = inProgress.get(key);
        if (!upload || upload.next !== packet) {
          inProgress.delete(key);
          return generalError;
        }
        const content = p.subarray(12 + STRING255);
        upload.chunks.push(Buffer.from(content));
        upload.packetSizes.push(content.length);
        upload.headers.push({ contentSize, origSize, total });
        upload.next++;
        if (packet < total) return undefined;
        inProgress.delete(key);
        const ciphertext = Buffer.concat(upload.chunks).subarray(0, contentSize);
        let plaintext: Buffer;
        try {
          const d = createDecipheriv('aes-256-cbc', client.aesKey, Buffer.alloc(16));
          plaintext = Buffer.concat([d.update(ciphertext), d.final()]);
        } catch {
          return generalError;
        }
        state.uploads.push({
          clientId: idHex,
          fileName,
          plaintext,
          packetSizes: upload.packetSizes,
          headers: upload.headers,
        });
        const body = Buffer.alloc(ID + 4 + STRING255 + 4);
        req.clientId.copy(body, 0);
        body.writeUInt32LE(contentSize, ID);
        string255(fileName).copy(body, ID + 4);
        body.writeUInt32LE(cksum(plaintext), ID + 4 + STRING255);
        return responseBytes(1603, body);
      }
      case 1029:
      case 1031:
        return client ? responseBytes(1604, req.clientId) : generalError;
      case 1030:
        return undefined;
      default:
        return generalError;
    }
  };

  const handler: Handler = (req, reply) => {
    const honestAnswer = answer(req);
    const tampered = options.tamper ? options.tamper(req, honestAnswer, state) : honestAnswer;
    const out = tampered === undefined ? honestAnswer : tampered;
    if (out) reply.send(out);
  };
  return { handler, state };
}
