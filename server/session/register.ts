/** 1025 registration (docs/protocol.md §5.1). Registering does not bind the connection. */
import { ResponseCode } from '../../protocol/v3/constants';
import type { RegisterRequest, Response } from '../../protocol/v3/messages';
import { clientIdToHex } from '../../shared/client-id';
import { issueClientId } from './client-ids';
import type { Flow } from './context';
import { sessionError, SessionErrorCode } from './session-error';
import { abandonUpload } from './upload-flow';

export async function handleRegister(flow: Flow, req: RegisterRequest): Promise<Response> {
  const { ctx, remoteAddress } = flow;
  await abandonUpload(flow, 'new request');
  if (!ctx.registerLimiter.take(remoteAddress)) {
    throw sessionError(SessionErrorCode.RATE_LIMITED, 'registrations over the rate limit');
  }
  const newId = issueClientId(ctx.sources);
  // The audit row commits with the registration: both, or neither.
  const result = await ctx.store.registerClient(
    newId,
    req.name,
    ctx.sources.now(),
    flow.audit.entry(req.code, newId, req, 'registered'),
  );
  if (!result.ok) {
    throw sessionError(SessionErrorCode.NAME_TAKEN, 'name is taken by a client with a key');
  }
  if (result.replacedId !== undefined) {
    // §5.1: the keyless record of this name was replaced; its folder goes with it.
    const replacedHex = clientIdToHex(result.replacedId);
    await ctx.files.removeClient(replacedHex);
    flow.log.info({ replaced: replacedHex, name: req.name }, 'keyless registration replaced');
  }
  return { code: ResponseCode.REGISTERED, clientId: result.client.id };
}
