/**
 * HELLO, REGISTER and MIGRATE of version 4 (docs/protocol-v4.md §5.1–§5.3). A v4 client is
 * authenticated by its TLS certificate alone: its fingerprint, bound to a client id when it
 * registered or migrated, is the credential; names and ids sent in messages never are.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import {
  IdentityStatus,
  MAX_CHUNK_SIZE,
  MIN_CHUNK_SIZE,
  PROTOCOL_VERSION_4,
  ResponseCode,
  Size,
} from '../../../protocol/v4/constants';
import { migrationStatement } from '../../../protocol/v4/migration';
import type { Hello, Migrate, Register, Registered, Welcome } from '../../../protocol/v4/messages';
import { clientIdToHex } from '../../../shared/client-id';
import { issueClientId } from '../client-ids';
import { v4Error, type V4Context } from './context';

/** Longest name a v3 string255 can carry, so a v4 name stays valid in every listing. */
const MAX_NAME_BYTES = 254;
const AES_KEY_BYTES = 32;

/** What TLS told us about the peer of one connection. */
export interface PeerIdentity {
  /** Fingerprint of the client certificate; undefined when none was presented. */
  readonly fingerprint: string | undefined;
  /** DER SubjectPublicKeyInfo of the certificate's key. */
  readonly spki: Buffer | undefined;
  /** The TLS exporter value that binds a migration signature to this channel (§5.3). */
  exporter(): Buffer;
}

export interface BoundClient {
  readonly clientId: Buffer;
  readonly clientIdHex: string;
  readonly name: string;
  readonly fingerprint: string;
}

export function negotiateChunk(ctx: V4Context, hello: Hello): number {
  if (hello.version !== PROTOCOL_VERSION_4) {
    throw v4Error('UNSUPPORTED_VERSION', `version ${hello.version}; this server speaks 4`, true);
  }
  if (hello.maxChunk < MIN_CHUNK_SIZE) {
    throw v4Error('BAD_MESSAGE', `chunk size ${hello.maxChunk} under ${MIN_CHUNK_SIZE}`, true);
  }
  return Math.min(hello.maxChunk, ctx.maxChunk, MAX_CHUNK_SIZE);
}

/** The client bound to the peer's certificate, if any; a binding whose client is gone is dropped. */
export async function lookUpPeer(
  ctx: V4Context,
  peer: PeerIdentity,
): Promise<BoundClient | undefined> {
  if (peer.fingerprint === undefined) return undefined;
  const identity = await ctx.identities.findByFingerprint(peer.fingerprint);
  if (identity === undefined) return undefined;
  const client = await ctx.base.store.findClientById(identity.clientId);
  if (client === undefined) {
    // Written before the client row by a registration that did not finish (see register).
    await ctx.identities.unbind(peer.fingerprint);
    return undefined;
  }
  return {
    clientId: client.id,
    clientIdHex: clientIdToHex(client.id),
    name: client.name,
    fingerprint: peer.fingerprint,
  };
}

export function welcome(
  chunkSize: number,
  challenge: Buffer,
  bound: BoundClient | undefined,
): Welcome {
  return {
    code: ResponseCode.WELCOME,
    version: PROTOCOL_VERSION_4,
    chunkSize,
    challenge,
    status: bound ? IdentityStatus.KNOWN : IdentityStatus.UNKNOWN,
    clientId: bound ? bound.clientId : Buffer.alloc(Size.CLIENT_ID),
    name: bound ? bound.name : '',
  };
}

function requireCertificate(peer: PeerIdentity): { fingerprint: string; spki: Buffer } {
  if (peer.fingerprint === undefined || peer.spki === undefined) {
    throw v4Error('NOT_AUTHENTICATED', 'a client certificate is required');
  }
  return { fingerprint: peer.fingerprint, spki: peer.spki };
}

/**
 * Registers a new client for the peer's certificate. The binding is written first: a crash
 * before the client row leaves a binding without a client, which lookUpPeer drops, never a
 * client whose credential is lost. The certificate's key fills the PublicKey column
 * (docs/protocol.md §7), so the name is owned at once and no v3 1025/1026 can take it over
 * (docs/protocol.md §5.1, §5.2).
 */
export async function register(
  ctx: V4Context,
  peer: PeerIdentity,
  remoteAddress: string,
  req: Register,
): Promise<{ response: Registered; bound: BoundClient }> {
  const { fingerprint, spki } = requireCertificate(peer);
  if (Buffer.byteLength(req.name, 'utf8') > MAX_NAME_BYTES) {
    throw v4Error('INVALID_NAME', `names are at most ${MAX_NAME_BYTES} bytes`);
  }
  if (await ctx.identities.findByFingerprint(fingerprint)) {
    throw v4Error('ALREADY_REGISTERED', 'this certificate is bound to a client already');
  }
  if (!ctx.base.registerLimiter.take(remoteAddress)) {
    throw v4Error('RATE_LIMITED', 'registrations over the rate limit');
  }
  const now = ctx.base.sources.now();
  const id = issueClientId(ctx.base.sources);
  if (!(await ctx.identities.bind({ clientId: id, fingerprint, boundAt: now, via: 'register' }))) {
    throw v4Error('ALREADY_REGISTERED', 'this certificate is bound to a client already');
  }
  try {
    const result = await ctx.base.store.registerClient(id, req.name, now);
    if (!result.ok) throw v4Error('NAME_TAKEN', 'name is taken');
    if (result.replacedId !== undefined) {
      await ctx.base.files.removeClient(clientIdToHex(result.replacedId));
    }
    // v4 never uses the AES key column; a random value keeps the row's shape
    // (docs/protocol.md §7).
    await ctx.base.store.setPublicKey(id, spki, ctx.random(AES_KEY_BYTES), now);
  } catch (err) {
    await ctx.identities.unbind(fingerprint).catch(() => undefined);
    throw err;
  }
  return {
    response: { code: ResponseCode.REGISTERED, clientId: id },
    bound: { clientId: id, clientIdHex: clientIdToHex(id), name: req.name, fingerprint },
  };
}

function rsaKeyOf(spki: Buffer): KeyObject | undefined {
  try {
    const key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    return key.asymmetricKeyType === 'rsa' ? key : undefined;
  } catch {
    return undefined;
  }
}

/** Moves a v3 client to v4, keeping its id and files, once, on proof of its RSA key. */
export async function migrate(
  ctx: V4Context,
  peer: PeerIdentity,
  challenge: Buffer,
  req: Migrate,
): Promise<{ response: Registered; bound: BoundClient }> {
  const { fingerprint } = requireCertificate(peer);
  if (await ctx.identities.findByFingerprint(fingerprint)) {
    throw v4Error('ALREADY_REGISTERED', 'this certificate is bound to a client already');
  }
  const client = await ctx.base.store.findClientById(req.clientId);
  const rsaKey = client?.publicKey ? rsaKeyOf(client.publicKey) : undefined;
  if (client === undefined || client.name !== req.name || rsaKey === undefined) {
    throw v4Error('MIGRATION_REFUSED', 'no v3 client with that id, name and an RSA key');
  }
  if (await ctx.identities.findByClientId(req.clientId)) {
    throw v4Error('MIGRATION_REFUSED', 'this client has moved to version 4 already');
  }
  const statement = migrationStatement(
    peer.exporter(),
    challenge,
    req.clientId,
    req.name,
    fingerprint,
  );
  if (!verify('sha256', statement, rsaKey, req.signature)) {
    throw v4Error('MIGRATION_REFUSED', 'the signature does not verify');
  }
  const now = ctx.base.sources.now();
  if (
    !(await ctx.identities.bind({ clientId: client.id, fingerprint, boundAt: now, via: 'migrate' }))
  ) {
    throw v4Error('MIGRATION_REFUSED', 'this client has moved to version 4 already');
  }
  return {
    response: { code: ResponseCode.REGISTERED, clientId: client.id },
    bound: {
      clientId: client.id,
      clientIdHex: clientIdToHex(client.id),
      name: client.name,
      fingerprint,
    },
  };
}
