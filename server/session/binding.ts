/**
 * The two checks that stand before a request acts for a client (docs/protocol.md §9): the
 * connection is bound to that client by its own 1026/1027, and the client id is not locked out
 * from this address after repeated decrypt failures.
 */
import type { Binding, Flow } from './context';
import { sessionError, SessionErrorCode } from './session-error';

/** This connection's binding, if it is to the client `clientId`; `what` names the request. */
export function requireBinding(flow: Flow, clientId: Buffer, what: string): Binding {
  const binding = flow.state.binding;
  if (binding === undefined) {
    throw sessionError(SessionErrorCode.NOT_BOUND, `${what} before a 1026/1027 on this connection`);
  }
  if (!binding.clientId.equals(clientId)) {
    throw sessionError(
      SessionErrorCode.WRONG_CLIENT,
      `${what} for another client than the bound one`,
    );
  }
  return binding;
}

/** Refuses 1027/1028 for `clientIdHex` from this address while a lockout runs. */
export function requireNotLockedOut(flow: Flow, clientIdHex: string): void {
  const locked = flow.ctx.lockout.lockedFor(clientIdHex, flow.remoteAddress);
  if (locked > 0) {
    throw sessionError(
      SessionErrorCode.LOCKED_OUT,
      `locked out for ${Math.ceil(locked / 1000)} s after repeated decrypt failures`,
    );
  }
}
