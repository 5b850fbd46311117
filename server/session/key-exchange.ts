/**
 * 1026 key exchange (docs/protocol.md §5.2) and 1027 reconnect (§5.3): the two requests that
 * bind a connection to a client (§9). The AES key issued here becomes this connection's session
 * key; the stored copy is written for the §7 table only.
 */
import { ResponseCode } from '../../protocol/v3/constants';
import type { ReconnectRequest, Response, SendPublicKeyRequest } from '../../protocol/v3/messages';
import { clientIdToHex } from '../../shared/client-id';
import { encodePublicKeyField, parsePublicKeyField, wrapAesKey } from '../../shared/crypto';
import type { ClientRecord } from '../storage/types';
import { requireNotLockedOut } from './binding';
import type { Binding, Flow } from './context';
import { sessionError, SessionErrorCode } from './session-error';
import { abandonUpload } from './upload-flow';

export async function handleSendPublicKey(
  flow: Flow,
  req: SendPublicKeyRequest,
): Promise<Response> {
  await abandonUpload(flow, 'new request');
  const { store, sources } = flow.ctx;
  const client = await clientNamed(flow, req);
  if (client.publicKey !== null) {
    throw sessionError(SessionErrorCode.KEY_ALREADY_SET, 'client already has a public key');
  }
  const publicKey = parsePublicKeyField(req.publicKey);
  const aesKey = sources.aesKey();
  const wrappedKey = wrapAesKey(publicKey, aesKey);
  const der = spkiDerOf(req.publicKey);
  // The audit row commits with the key: both, or neither.
  const audit = flow.audit.entry(req.code, client.id, req, 'key_set');
  if (!(await store.setPublicKey(client.id, der, aesKey, sources.now(), audit))) {
    throw sessionError(SessionErrorCode.KEY_ALREADY_SET, 'client already has a public key');
  }
  bind(flow, client, aesKey);
  return { code: ResponseCode.KEY_ACCEPTED, clientId: client.id, wrappedKey };
}

export async function handleReconnect(flow: Flow, req: ReconnectRequest): Promise<Response> {
  await abandonUpload(flow, 'new request');
  const { store, sources } = flow.ctx;
  const client = await clientNamed(flow, req);
  requireNotLockedOut(flow, clientIdToHex(client.id));
  if (client.publicKey === null) {
    throw sessionError(SessionErrorCode.NO_KEY, 'client never sent a public key');
  }
  const publicKey = parsePublicKeyField(encodePublicKeyField(client.publicKey));
  const aesKey = sources.aesKey();
  const wrappedKey = wrapAesKey(publicKey, aesKey);
  const audit = flow.audit.entry(req.code, client.id, req, 'reconnected');
  await store.setAesKey(client.id, aesKey, sources.now(), audit);
  bind(flow, client, aesKey);
  return { code: ResponseCode.RECONNECTED, clientId: client.id, wrappedKey };
}

/**
 * The client of a 1026/1027: its id must be known, its name the one on record (§5.2, §5.3), and
 * a connection already bound stays with its client (§9).
 */
async function clientNamed(
  flow: Flow,
  req: SendPublicKeyRequest | ReconnectRequest,
): Promise<ClientRecord> {
  const client = await flow.ctx.store.findClientById(req.clientId);
  // Unknown ids and wrong names get the code's own refusal (§5.3), bound or not: nothing changes.
  if (!client) throw sessionError(SessionErrorCode.UNKNOWN_CLIENT, 'unknown client id');
  if (client.name !== req.name) {
    throw sessionError(SessionErrorCode.NAME_MISMATCH, 'name does not match the client id');
  }
  const bound = flow.state.binding;
  if (bound !== undefined && !bound.clientId.equals(client.id)) {
    throw sessionError(
      SessionErrorCode.WRONG_CLIENT,
      'connection is bound to another client; one connection serves one client',
    );
  }
  return client;
}

/**
 * The DER of a public key field that parsePublicKeyField accepted: the field without its zero
 * padding (§2), which encodePublicKeyField puts back for a 1027. The DER ends with the public
 * exponent, odd by that check, so no byte of it is cut. Taken from the field because exporting
 * it from the parsed key costs as much again as the parse.
 */
function spkiDerOf(field: Buffer): Buffer {
  let end = field.length;
  while (end > 0 && field[end - 1] === 0) end--;
  return Buffer.from(field.subarray(0, end));
}

function bind(flow: Flow, client: ClientRecord, aesKey: Buffer): void {
  const binding: Binding = {
    clientId: Buffer.from(client.id),
    clientIdHex: clientIdToHex(client.id),
    name: client.name,
    aesKey,
  };
  flow.state.binding = binding;
}
