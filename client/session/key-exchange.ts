/**
 * Getting a session key (docs/protocol.md §5.1–§5.3): reconnect with a saved identity (1027), or
 * register (1025), save the new identity, and send its public key (1026).
 */
import { RequestCode, ResponseCode, encodeRequest } from '../../protocol';
import { clientIdToHex } from '../../shared/client-id';
import {
  encodePublicKeyField,
  loadPrivateKey,
  unwrapAesKey,
  type RsaKeyPair,
} from '../../shared/crypto';
import type { Identity } from '../config/identity';
import { ClientErrorCode, clientError } from '../errors';
import { KEY_DOES_NOT_DECRYPT, ok, unusable, type FlowContext } from './flow';

const ZERO_ID = Buffer.alloc(16);
const noop = (): void => undefined;

function tryUnwrap(identity: Identity, wrapped: Buffer): Buffer | undefined {
  try {
    return unwrapAesKey(identity.privateKey, wrapped);
  } catch {
    return undefined;
  }
}

/** 1027 → 1605 (the session key) or 1606 (undefined: the server does not know us). */
export async function reconnect(ctx: FlowContext, identity: Identity): Promise<Buffer | undefined> {
  const what = 'reconnect request (1027)';
  const request = encodeRequest({
    code: RequestCode.RECONNECT,
    clientId: identity.clientId,
    name: identity.name,
  });
  const key = await ctx.attempts<Buffer | undefined>(what, async () => {
    const r = await ctx.exchange(request, what);
    if (r.ok && r.response.code === ResponseCode.RECONNECTED) {
      const unwrapped = tryUnwrap(identity, r.response.wrappedKey);
      return unwrapped ? ok(unwrapped) : KEY_DOES_NOT_DECRYPT;
    }
    if (r.ok && r.response.code === ResponseCode.RECONNECT_REFUSED) return ok(undefined);
    return unusable(r);
  });
  if (key) {
    ctx.events.reconnected?.(identity);
  } else {
    ctx.log.debug({ clientId: clientIdToHex(identity.clientId) }, 'reconnect refused (1606)');
  }
  return key;
}

export interface RegisterOptions {
  readonly name: string;
  readonly generateKeyPair: () => Promise<RsaKeyPair>;
  /** Persists the new identity (me.info, priv.key) before its key is sent (§8). */
  readonly saveIdentity?: (identity: Identity) => Promise<void>;
  /** Called once the identity is saved, before the public key goes out. */
  readonly adopt: (identity: Identity) => void;
}

/** 1025 → 1600, new RSA key saved with me.info, 1026 → 1602 (§5.1, §5.2); the session key. */
export async function register(ctx: FlowContext, options: RegisterOptions): Promise<Buffer> {
  const { name } = options;
  // RSA generation overlaps the registration round trip.
  const keys = options.generateKeyPair();
  keys.catch(noop);
  const what = 'registration (1025)';
  const request = encodeRequest({ code: RequestCode.REGISTER, clientId: ZERO_ID, name });
  const clientId = await ctx.attempts<Buffer>(what, async () => {
    const r = await ctx.exchange(request, what);
    if (r.ok && r.response.code === ResponseCode.REGISTERED) return ok(r.response.clientId);
    if (r.ok && r.response.code === ResponseCode.REGISTRATION_FAILED) {
      throw clientError(
        ClientErrorCode.REJECTED,
        `rejected by server: it refused to register the name "${name}" (1601)`,
        {
          hint:
            'the name is probably taken by another client: choose another name with --name ' +
            'or on line 2 of transfer.info',
        },
      );
    }
    return unusable(r);
  });
  const pair = await keys;
  const identity: Identity = {
    name,
    clientId,
    privateKey: loadPrivateKey(pair.privateKeyDer),
    privateKeyDer: pair.privateKeyDer,
  };
  await options.saveIdentity?.(identity);
  options.adopt(identity);
  ctx.events.registered?.(identity);

  const keyWhat = 'public key (1026)';
  const keyRequest = encodeRequest({
    code: RequestCode.SEND_PUBLIC_KEY,
    clientId,
    name,
    publicKey: encodePublicKeyField(pair.publicKeyDer),
  });
  return ctx.attempts<Buffer>(keyWhat, async () => {
    const r = await ctx.exchange(keyRequest, keyWhat);
    if (r.ok && r.response.code === ResponseCode.KEY_ACCEPTED) {
      const key = tryUnwrap(identity, r.response.wrappedKey);
      return key ? ok(key) : KEY_DOES_NOT_DECRYPT;
    }
    if (r.ok && r.response.code === ResponseCode.REGISTRATION_FAILED) {
      throw clientError(
        ClientErrorCode.REJECTED,
        `rejected by server: it refused the public key of "${name}" (1601)`,
        {
          hint:
            'run the client again to register anew; if that fails too, choose another name ' +
            'with --name or on line 2 of transfer.info',
        },
      );
    }
    return unusable(r);
  });
}
