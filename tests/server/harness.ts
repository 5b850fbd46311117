/**
 * In-process servers for the server tests: a real `net` listener on an ephemeral loopback port,
 * with injectable stores, sources and limits.
 */
import {
  constants,
  createPrivateKey,
  generateKeyPairSync,
  createHash,
  privateDecrypt,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { startDaemon, type Daemon } from '../../server/process/daemon';
import type { ServerLimits } from '../../server/transport/limits';
import { silentLogger } from '../../shared/logger';
import { createServer, type SftServer } from '../../server/transport/listener';
import type { Sources } from '../../server/session/sources';
import type { Catalog, FileStore } from '../../server/storage/types';
import { memoryBackends, type FailureInjector } from '../../server/storage/memory';
import { RawClient, Reply, reconnect, register, sendPublicKey } from '../helpers/raw-client';

/** Ids and keys handed out in order (the recorded ones), then random ones; a settable clock. */
export class QueuedSources implements Sources {
  readonly ids: Buffer[];
  readonly keys: Buffer[];
  time = 1_700_000_000_000;
  readonly issuedIds: Buffer[] = [];
  readonly issuedKeys: Buffer[] = [];

  constructor(ids: Buffer[] = [], keys: Buffer[] = []) {
    this.ids = [...ids];
    this.keys = [...keys];
  }

  clientId(): Buffer {
    const id = this.ids.shift() ?? randomBytes(16);
    this.issuedIds.push(id);
    return id;
  }

  aesKey(): Buffer {
    const key = this.keys.shift() ?? randomBytes(32);
    this.issuedKeys.push(key);
    return key;
  }

  now = (): number => this.time;
}

/** Loose limits for tests that are not about limits. */
export const TEST_LIMITS: Partial<ServerLimits> = {
  maxConnectionsPerIp: 1000,
  registerRate: { perSecond: 10000, burst: 10000 },
};

export interface TestServer {
  readonly server: SftServer;
  readonly port: number;
  readonly store: Catalog;
  readonly files: FileStore;
  readonly faults: FailureInjector | undefined;
  readonly sources: QueuedSources;
  connect(localAddress?: string): Promise<RawClient>;
  close(): Promise<void>;
}

export async function startServer(
  options: {
    store?: Catalog;
    files?: FileStore;
    sources?: QueuedSources;
    limits?: Partial<ServerLimits>;
    logger?: Logger;
  } = {},
): Promise<TestServer> {
  const memory = memoryBackends();
  const store = options.store ?? memory.store;
  const files = options.files ?? memory.files;
  const sources = options.sources ?? new QueuedSources();
  const server = createServer({
    store,
    files,
    sources,
    logger: options.logger,
    limits: { ...TEST_LIMITS, ...options.limits },
  });
  const address = await server.listen(0, '127.0.0.1');
  const clients: RawClient[] = [];
  return {
    server,
    port: address.port,
    store,
    files,
    faults: options.store === undefined ? memory.faults : undefined,
    sources,
    async connect(localAddress?: string) {
      const c = await RawClient.connect(address.port, '127.0.0.1', localAddress);
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) c.destroy();
      await server.close(1000);
    },
  };
}

export interface ClientKeys {
  readonly privateKey: KeyObject;
  readonly publicKeyDer: Buffer;
}

/** RSA-1024, e = 17: the SPKI DER is exactly 160 bytes (§2). */
export function generateClientKeys(): ClientKeys {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 1024,
    publicExponent: 17,
  });
  return { privateKey, publicKeyDer: publicKey.export({ type: 'spki', format: 'der' }) };
}

export function privateKeyFromBase64(text: string): KeyObject {
  return createPrivateKey({
    key: Buffer.from(text.replace(/\s+/g, ''), 'base64'),
    format: 'der',
    type: 'pkcs8',
  });
}

export async function tempDir(prefix = 'sft-server-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export interface RealServer extends TestServer {
  readonly daemon: Daemon;
  readonly dataDir: string;
}

/** The server with its real storage (SQLite + files) on `dataDir`, in this process. */
export async function startRealServer(
  options: {
    dataDir?: string;
    sources?: QueuedSources;
    limits?: Partial<ServerLimits>;
    logger?: Logger;
    masterKey?: Buffer;
  } = {},
): Promise<RealServer> {
  const dataDir = options.dataDir ?? (await tempDir());
  const sources = options.sources ?? new QueuedSources();
  const daemon = await startDaemon({
    dataDir,
    port: 0,
    host: '127.0.0.1',
    logger: options.logger ?? silentLogger(),
    limits: { ...TEST_LIMITS, ...options.limits },
    masterKey: options.masterKey,
    sources,
  });
  const clients: RawClient[] = [];
  return {
    daemon,
    dataDir,
    server: daemon.server,
    port: daemon.port,
    store: daemon.store,
    files: daemon.files,
    faults: undefined,
    sources,
    async connect(localAddress?: string) {
      const c = await RawClient.connect(daemon.port, '127.0.0.1', localAddress);
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) c.destroy();
      await daemon.close(1000);
    },
  };
}

export interface Registered {
  readonly id: Buffer;
  readonly name: string;
  readonly keys: ClientKeys;
  readonly aesKey: Buffer;
}

const sharedKeys: ClientKeys[] = [];

/** A few RSA key pairs reused across tests (generation is the slow part). */
export function testKeys(i = 0): ClientKeys {
  while (sharedKeys.length <= i) sharedKeys.push(generateClientKeys());
  return sharedKeys[i];
}

/** Registers `name` and sends its key over `client`: 1600 then 1602; returns id and AES key. */
export async function registerWithKey(
  client: RawClient,
  name: string,
  keys: ClientKeys = testKeys(),
): Promise<Registered> {
  const r1 = await client.request(register(name));
  if (r1.code !== Reply.REGISTERED) throw new Error(`register ${name}: got ${r1.code}`);
  const id = Buffer.from(r1.payload.subarray(0, 16));
  const r2 = await client.request(sendPublicKey(id, name, keys.publicKeyDer));
  if (r2.code !== Reply.KEY_ACCEPTED) throw new Error(`key of ${name}: got ${r2.code}`);
  const aesKey = unwrapWith(keys, r2.payload.subarray(16, 144));
  return { id, name, keys, aesKey };
}

/**
 * A 1027 for `me` on `client`: binds that connection to the client (docs/protocol.md §9) and
 * returns `me` with the new session key, the one uploads on this connection must use.
 */
export async function reconnectWithKey(client: RawClient, me: Registered): Promise<Registered> {
  const r = await client.request(reconnect(me.id, me.name));
  if (r.code !== Reply.RECONNECTED) throw new Error(`reconnect ${me.name}: got ${r.code}`);
  return { ...me, aesKey: unwrapWith(me.keys, r.payload.subarray(16, 144)) };
}

export function unwrapWith(keys: ClientKeys, wrapped: Buffer): Buffer {
  return privateDecrypt(
    { key: keys.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
    wrapped,
  );
}

/** Byte equality with a short message (jest's deep equality is slow on megabytes). */
export function expectBytes(actual: Buffer | undefined, expected: Buffer): void {
  const digest = (b: Buffer | undefined) =>
    b === undefined
      ? 'missing'
      : `${b.length} bytes, sha256 ${createHash('sha256').update(b).digest('hex')}`;
  expect(digest(actual)).toBe(digest(expected));
}
