/**
 * 1029/1030/1031, the client's answer to the cksum of a 1603 (docs/protocol.md §5.5). Each refers
 * only to a file this connection stored and answered 1603 for (§9): a confirmation or a removal
 * is never taken from a connection that did not upload the file.
 */
import { RequestCode, ResponseCode } from '../../protocol/v3/constants';
import { assertNever } from '../../protocol/errors';
import type { ChecksumRequest, Response } from '../../protocol/v3/messages';
import { requireBinding } from './binding';
import type { Binding, Flow } from './context';
import { sessionError, SessionErrorCode } from './session-error';
import { abandonUpload } from './upload-flow';

export async function handleChecksum(
  flow: Flow,
  req: ChecksumRequest,
): Promise<Response | undefined> {
  await abandonUpload(flow, 'new request');
  const binding = boundFor(flow, req);
  const { store, files, sources, fileLocks } = flow.ctx;
  const { clientId, clientIdHex } = binding;
  const now = sources.now();
  await store.touch(clientId, now);
  const ack: Response = { code: ResponseCode.ACKNOWLEDGED, clientId };
  const lockKey = `${clientIdHex}/${req.fileName}`;
  switch (req.code) {
    case RequestCode.CHECKSUM_OK: {
      // A file given up by 1031 is deleted: it cannot be verified any more. One conditional
      // write: its row count says whether the file was known (and the audit row goes with it).
      const known = await fileLocks.run(lockKey, () => {
        const audit = flow.audit.entry(req.code, clientId, req, 'checksum_ok');
        return store.setFileStatus(clientId, req.fileName, 'verified', now, audit, {
          unlessFailed: true,
        });
      });
      if (!known) {
        throw sessionError(SessionErrorCode.UNKNOWN_FILE, 'no such file for this client');
      }
      flow.state.storedHere.delete(req.fileName);
      return ack;
    }
    case RequestCode.CHECKSUM_RETRY:
      // No answer: the client re-sends the whole upload, whose packet 1 restarts it (§5.5).
      await flow.audit.write(req.code, clientId, req, 'checksum_retry');
      return undefined;
    case RequestCode.CHECKSUM_ABORT: {
      // Under the file's lock, so an upload of this name committing now cannot interleave.
      const known = await fileLocks.run(lockKey, async () => {
        const audit = flow.audit.entry(req.code, clientId, req, 'checksum_failed');
        if (!(await store.setFileStatus(clientId, req.fileName, 'failed', now, audit))) {
          return false;
        }
        await files.remove(clientIdHex, req.fileName);
        return true;
      });
      if (!known) {
        throw sessionError(SessionErrorCode.UNKNOWN_FILE, 'no such file for this client');
      }
      flow.state.storedHere.delete(req.fileName);
      return ack;
    }
    default:
      return assertNever(req.code, 'checksum request code');
  }
}

/** The binding a checksum answer needs: this connection's client and a file it stored. */
function boundFor(flow: Flow, req: ChecksumRequest): Binding {
  const binding = requireBinding(flow, req.clientId, 'checksum answer');
  if (!flow.state.storedHere.has(req.fileName)) {
    throw sessionError(
      SessionErrorCode.NOT_THIS_UPLOAD,
      'checksum answer for a file this connection did not store',
    );
  }
  return binding;
}
