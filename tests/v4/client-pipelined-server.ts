/**
 * A scripted v4 server for the client's pipelined uploads (docs/protocol-v4.md §5.10), over a
 * real TLS 1.3 socket: HELLO, KEYS (signed with its identity) and uploads, answered in request
 * order as §5.10 says, with hooks to refuse an UPLOAD_BEGIN, hold or falsify a STORED, cut the
 * connection, or play a server that does not know PIPELINED. It logs what it got and sent, in
 * order, so a test can tell what the client sent before which answer.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { inflateRawSync } from 'node:zlib';
import { Framer } from '../../protocol/framer';
import {
  ALPN_V4,
  decodeRequest,
  encodeResponse,
  framePayload,
  IdentityStatus,
  MAX_CHUNK_SIZE,
  PROTOCOL_VERSION_4,
  requestFrameLayout,
  RequestCode,
  ResponseCode,
  UploadFlag,
  WireErrorCode,
  wireErrorName,
  type ErrorMessage,
  type Request,
  type Response,
} from '../../protocol/v4';
import { silentLog } from '../../client/session/types';
import type { V4Plan } from '../../client/v4/plan';
import { V4ClientSession } from '../../client/v4/session';
import type { V4UploadEvents } from '../../client/v4/upload';
import { singleKeySet } from '../../server/transport/key-set-signing';
import { serverIdentity } from '../../server/transport/tls-setup';
import { patternBytes, removeDirs, tempDir } from './helpers';

export interface FakeServerOptions {
  /** False: answers BAD_MESSAGE to the PIPELINED bit, as a server from before §5.10. */
  readonly pipelining?: boolean;
  /** The chunk size WELCOME gives. */
  readonly chunkSize?: number;
  /** An ERROR for an UPLOAD_BEGIN of this name, or undefined to take it. */
  readonly refuse?: (fileName: string) => ErrorMessage | undefined;
  /** Awaited before the STORED of this name goes out (answers after it wait too). */
  readonly beforeStored?: (fileName: string) => Promise<void> | void;
  /** The SHA-256 STORED gives instead of that of the bytes received. */
  readonly storedSha?: (fileName: string, received: Buffer) => Buffer;
  /** Destroys the connection when it gets this request (after logging it). */
  readonly cutAt?: (entry: string) => boolean;
}

export interface FakeServer {
  readonly port: number;
  /**
   * In order: `BEGIN name flags` (flags in hex, `-` for a plain UPLOAD_BEGIN), `DATA name`,
   * `DEFLATE name`, `END name`, `DROP name` for frames of a refused pipelined upload, and `>`
   * before each answer sent: `>OFFSET name 0`, `>STORED name`, `>ERROR name CODE`.
   */
  readonly log: string[];
  /** Bytes stored per file name (the last upload of each). */
  readonly stored: Map<string, Buffer>;
  /** The most uploads between their UPLOAD_BEGIN and their last answer at once, on any one connection. */
  readonly mostInFlight: () => number;
  /** Uploads in flight now on the connection that has the most. */
  readonly inFlight: () => number;
  /** Resolves once `entry` is in the log (rejects after `ms`). */
  seen(entry: string, ms?: number): Promise<void>;
  close(): Promise<void>;
}

const CLIENT_ID = Buffer.alloc(16, 0xab);

interface Upload {
  readonly name: string;
  /** A refused pipelined upload: its DATA and UPLOAD_END are dropped unanswered. */
  readonly dropped: boolean;
  readonly data: Buffer[];
}

export async function startFakeServer(
  dir: string,
  options: FakeServerOptions = {},
): Promise<FakeServer> {
  const identity = await serverIdentity(dir);
  const chunkSize = options.chunkSize ?? MAX_CHUNK_SIZE;
  const log: string[] = [];
  const stored = new Map<string, Buffer>();
  const flights: { now: number }[] = [];
  let most = 0;
  const watchers: { entry: string; resolve: () => void }[] = [];
  const note = (entry: string): void => {
    log.push(entry);
    for (const w of watchers.filter((x) => x.entry === entry)) w.resolve();
  };
  const sockets = new Set<tls.TLSSocket>();

  const server = tls.createServer({
    key: identity.keyPem,
    cert: identity.certPem,
    minVersion: 'TLSv1.3',
    ALPNProtocols: [ALPN_V4],
  });
  server.on('secureConnection', (socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    const flight = { now: 0 };
    flights.push(flight);
    let answers: Promise<void> = Promise.resolve();
    /** Sends `make()`'s answer once every answer before it went out. */
    const answer = (make: () => Promise<Response> | Response, entry: string, settles = false) => {
      answers = answers.then(async () => {
        const response = await make();
        if (socket.destroyed) return;
        note(`>${entry}`);
        if (settles) flight.now--;
        socket.write(encodeResponse(response));
      });
    };
    const error = (name: string, e: ErrorMessage, settles: boolean): void =>
      answer(() => e, `ERROR ${name} ${wireErrorName(e.error)}`, settles);
    let open: Upload | undefined;

    const onRequest = (request: Request): void => {
      switch (request.code) {
        case RequestCode.HELLO:
          answer(
            () => ({
              code: ResponseCode.WELCOME,
              version: PROTOCOL_VERSION_4,
              chunkSize,
              challenge: Buffer.alloc(32),
              status: IdentityStatus.KNOWN,
              clientId: CLIENT_ID,
              name: 'fake',
            }),
            'WELCOME',
          );
          return;
        case RequestCode.KEYS:
          answer(() => singleKeySet(identity, Date.now()), 'KEY_SET');
          return;
        case RequestCode.UPLOAD_BEGIN:
        case RequestCode.UPLOAD_BEGIN_FLAGS: {
          const flags = request.code === RequestCode.UPLOAD_BEGIN ? undefined : request.flags;
          const name = request.fileName;
          note(`BEGIN ${name} ${flags === undefined ? '-' : flags.toString(16)}`);
          const pipelined = flags !== undefined && (flags & UploadFlag.PIPELINED) !== 0;
          if (pipelined && options.pipelining === false) {
            open = undefined;
            error(name, badMessage('flags 0x80'), false);
            return;
          }
          flight.now++;
          most = Math.max(most, flight.now);
          const refusal = options.refuse?.(name);
          if (refusal !== undefined) {
            open = pipelined ? { name, dropped: true, data: [] } : undefined;
            error(name, refusal, true);
            return;
          }
          open = { name, dropped: false, data: [] };
          answer(() => ({ code: ResponseCode.UPLOAD_OFFSET, offset: 0 }), `OFFSET ${name} 0`);
          return;
        }
        case RequestCode.UPLOAD_DATA:
        case RequestCode.UPLOAD_DATA_DEFLATE: {
          const deflated = request.code === RequestCode.UPLOAD_DATA_DEFLATE;
          if (open === undefined) {
            error('-', { ...badMessage('no upload open'), error: WireErrorCode.UNEXPECTED }, false);
            return;
          }
          note(`${open.dropped ? 'DROP' : deflated ? 'DEFLATE' : 'DATA'} ${open.name}`);
          open.data.push(deflated ? inflateRawSync(request.data) : Buffer.from(request.data));
          return;
        }
        case RequestCode.UPLOAD_END: {
          const upload = open;
          open = undefined;
          if (upload === undefined) {
            error('-', { ...badMessage('no upload open'), error: WireErrorCode.UNEXPECTED }, false);
            return;
          }
          const name = upload.name;
          note(`${upload.dropped ? 'DROP' : 'END'} ${name}`);
          if (upload.dropped) return;
          const bytes = Buffer.concat(upload.data);
          const sha = createHash('sha256').update(bytes).digest();
          if (!sha.equals(request.sha256)) {
            const e = { ...badMessage('digest'), error: WireErrorCode.DIGEST_MISMATCH };
            error(name, e, true);
            return;
          }
          answer(
            async () => {
              await options.beforeStored?.(name);
              stored.set(name, bytes);
              return {
                code: ResponseCode.STORED,
                size: bytes.length,
                sha256: options.storedSha?.(name, sha) ?? sha,
                cksum: 0,
              };
            },
            `STORED ${name}`,
            true,
          );
          return;
        }
        default:
          error('-', { ...badMessage('not scripted'), error: WireErrorCode.UNEXPECTED }, false);
      }
    };

    const framer = new Framer(requestFrameLayout(() => chunkSize));
    socket.on('data', (chunk: Buffer) =>
      framer.push(chunk, {
        frame: (buf, offset, code, size) => {
          if (socket.destroyed) return;
          onRequest(decodeRequest(code, framePayload(buf, offset, size)));
          if (options.cutAt?.(log[log.length - 1] ?? '') === true) socket.destroy();
        },
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    log,
    stored,
    mostInFlight: () => most,
    inFlight: () => Math.max(0, ...flights.map((f) => f.now)),
    seen: (entry, ms = 5000) =>
      new Promise<void>((resolve, reject) => {
        if (log.includes(entry)) {
          resolve();
          return;
        }
        const timer = setTimeout(() => reject(new Error(`the server never saw ${entry}`)), ms);
        watchers.push({
          entry,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      }),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function badMessage(text: string): ErrorMessage {
  return { code: ResponseCode.ERROR, error: WireErrorCode.BAD_MESSAGE, fatal: false, text };
}

/** An ERROR a test has the server give to an UPLOAD_BEGIN. */
export function refusal(error: WireErrorCode, fatal = false): ErrorMessage {
  return { code: ResponseCode.ERROR, error, fatal, text: wireErrorName(error).toLowerCase() };
}

/** A v4 session of a client (config in `configDir`) with the fake server, pinned on first use. */
export async function openFakeSession(
  port: number,
  configDir: string,
  events: V4UploadEvents = {},
): Promise<V4ClientSession> {
  const opened = await V4ClientSession.open({
    configDir,
    server: { host: '127.0.0.1', port, display: `127.0.0.1:${port}` },
    protocol: 'v4',
    serverFingerprint: undefined,
    registerName: undefined,
    v3Identity: undefined,
    connectTimeoutMs: 5000,
    responseTimeoutMs: 5000,
    notice: () => undefined,
    events,
    log: silentLog,
  });
  if (opened.kind !== 'v4') throw new Error('the fake server was taken for a v3 one');
  return opened.session;
}

/** Files `names` under `dir`, `size` bytes each (or per name), different contents. */
export async function writePlans(
  dir: string,
  names: readonly string[],
  size: number | ((name: string) => number),
): Promise<{ plans: V4Plan[]; bytes: Map<string, Buffer> }> {
  await mkdir(dir, { recursive: true });
  const bytes = new Map<string, Buffer>();
  const plans: V4Plan[] = [];
  for (const [i, name] of names.entries()) {
    const content = patternBytes(typeof size === 'number' ? size : size(name), 11 + i);
    const path = join(dir, name);
    await writeFile(path, content);
    bytes.set(name, content);
    plans.push({ path, fileName: name, size: content.length });
  }
  return { plans, bytes };
}

/** `f00.bin`, `f01.bin`, … */
export function fileNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `f${String(i).padStart(2, '0')}.bin`);
}

export function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** What a pipelined-upload test starts; ended after each test (see pipelinedFixture). */
export interface PipelinedFixture {
  /** The test's temp folder. */
  dir(): string;
  /** A fake server; `options` may refer to the server itself through `self`. */
  server(options?: (self: () => FakeServer) => FakeServerOptions): Promise<FakeServer>;
  /** A session with `server`, the client's config in the test's folder. */
  session(server: FakeServer): Promise<V4ClientSession>;
}

/** Registers a beforeEach and an afterEach: a temp folder, closed sessions and servers. */
export function pipelinedFixture(): PipelinedFixture {
  let dir = '';
  const opened: { close(): void | Promise<void> }[] = [];
  beforeEach(async () => {
    dir = await tempDir('pipelined');
  });
  afterEach(async () => {
    for (const o of opened.splice(0).reverse()) await o.close();
    await removeDirs(dir);
  });
  return {
    dir: () => dir,
    async server(options = () => ({})) {
      const holder: { server?: FakeServer } = {};
      const server = await startFakeServer(
        join(dir, 'srv'),
        options(() => holder.server as FakeServer),
      );
      holder.server = server;
      opened.push(server);
      return server;
    },
    async session(server) {
      const s = await openFakeSession(server.port, join(dir, 'cfg'));
      opened.push(s);
      return s;
    },
  };
}

/** Where `entry` is in the server's log (throws, showing the log, when it is not). */
export function logIndex(server: FakeServer, entry: string): number {
  const i = server.log.indexOf(entry);
  if (i < 0) throw new Error(`${entry} is not in the log: ${server.log.join(', ')}`);
  return i;
}
