/**
 * One v4 upload (docs/protocol-v4.md §5.4, §5.5): UPLOAD_BEGIN with the size and a content
 * check, DATA from the offset the server holds, UPLOAD_END with the SHA-256 of the whole
 * plaintext, and the server's STORED compared with ours. Bytes before the offset are read and
 * hashed here but not sent: that is the resume.
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { RequestCode, ResponseCode } from '../../protocol/v4';
import { ClientErrorCode, clientError } from '../errors';
import type { UploadResult } from '../session/types';
import { expect } from './errors';
import type { V4Link } from './link';
import type { V4Plan } from './plan';
import { sendChunk, type UploadOptions } from './compress';

/** Bytes at each end of the file that go into the content check. */
const CHECK_EDGE = 64 * 1024;
const CHECK_CONTEXT = 'sft/4 content check\0';

export interface V4UploadResult extends UploadResult {
  readonly sha256: string;
  /** Bytes the server already held: the upload continued from there. */
  readonly resumedFrom: number;
  /** File bytes this run sent. */
  readonly bytesSent: number;
}

/** Methods (not function properties), so the v3 output's events fit them as they are. */
export interface V4UploadEvents {
  uploadStarted?(plan: V4Plan, attempt: number): void;
  uploadProgress?(plan: V4Plan, bytesSent: number): void;
}

async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === length ? buf : buf.subarray(0, done);
}

function fileChanged(plan: V4Plan): Error {
  return clientError(ClientErrorCode.FILE_CHANGED, `${plan.path} changed while it was sent`, {
    hint: 'send it again once it is no longer being written',
  });
}

/**
 * 32 bytes that change when the file does (size, modification time, first and last 64 KiB):
 * a resumed upload must continue the same content (docs/protocol-v4.md §5.5). The SHA-256 at
 * the end still checks every byte.
 */
export async function contentCheck(handle: FileHandle, size: number): Promise<Buffer> {
  const stats = await handle.stat();
  const hash = createHash('sha256').update(CHECK_CONTEXT, 'latin1');
  const sizeBytes = Buffer.alloc(8);
  sizeBytes.writeBigUInt64LE(BigInt(size));
  hash.update(sizeBytes).update(String(stats.mtimeMs), 'latin1');
  hash.update(await readAt(handle, 0, Math.min(CHECK_EDGE, size)));
  if (size > CHECK_EDGE) {
    const start = Math.max(CHECK_EDGE, size - CHECK_EDGE);
    hash.update(await readAt(handle, start, size - start));
  }
  return hash.digest();
}

export async function uploadFile(
  link: V4Link,
  plan: V4Plan,
  chunkSize: number,
  events: V4UploadEvents,
  options: UploadOptions = {},
): Promise<V4UploadResult> {
  const started = Date.now();
  const handle = await open(plan.path, 'r').catch((err: unknown) => {
    throw clientError(ClientErrorCode.FILE_UNREADABLE, `cannot open ${plan.path}`, { cause: err });
  });
  try {
    const size = plan.size;
    if ((await handle.stat()).size !== size) throw fileChanged(plan);
    const check = await contentCheck(handle, size);
    events.uploadStarted?.(plan, 1);
    const fileName = plan.fileName;
    await link.send(
      options.flags
        ? { code: RequestCode.UPLOAD_BEGIN_FLAGS, fileName, size, check, flags: options.flags }
        : { code: RequestCode.UPLOAD_BEGIN, fileName, size, check },
    );
    const what = `the upload of ${plan.fileName}`;
    const { offset } = expect(
      link.remote,
      what,
      await link.receive(what),
      ResponseCode.UPLOAD_OFFSET,
    );
    if (offset > size) {
      throw clientError(ClientErrorCode.PROTOCOL_VIOLATION, `server offset ${offset} > ${size}`);
    }
    // SHA-256 is the end-to-end check; the server's cksum is reported as it is (v3 continuity).
    const sha = createHash('sha256');
    let position = 0;
    while (position < offset) {
      const chunk = await readAt(handle, position, Math.min(chunkSize, offset - position));
      if (chunk.length === 0) throw fileChanged(plan);
      sha.update(chunk);
      position += chunk.length;
    }
    const sentBefore = link.dataBytesSent;
    const readFrom = (at: number): Promise<Buffer> | undefined => {
      if (at >= size) return undefined;
      const read = readAt(handle, at, Math.min(chunkSize, size - at));
      // Handled here too: a read left pending when sending fails must not go unhandled.
      read.catch(() => undefined);
      return read;
    };
    // One read ahead: the disk works on the next chunk while this one is sent.
    let next = readFrom(position);
    while (next !== undefined) {
      const chunk = await next;
      if (chunk.length === 0) throw fileChanged(plan);
      next = readFrom(position + chunk.length);
      sha.update(chunk);
      await sendChunk(link, chunk, options);
      position += chunk.length;
      events.uploadProgress?.(plan, position);
      // An ERROR the server sent meanwhile (disk full, …) stops us early.
      if (link.hasResponse) break;
    }
    let ours: Buffer | undefined;
    if (position === size) {
      if ((await handle.stat()).size !== size) throw fileChanged(plan);
      ours = sha.digest();
      await link.send({ code: RequestCode.UPLOAD_END, sha256: ours });
    }
    const stored = expect(link.remote, what, await link.receive(what), ResponseCode.STORED);
    if (ours === undefined || stored.size !== size || !stored.sha256.equals(ours)) {
      throw clientError(
        ClientErrorCode.CHECKSUM_FAILED,
        `the server stored ${plan.fileName} with SHA-256 ${stored.sha256.toString('hex')}, ` +
          `ours is ${ours?.toString('hex') ?? 'not computed'}`,
      );
    }
    return {
      file: plan.path,
      fileName: plan.fileName,
      bytes: size,
      cksum: stored.cksum,
      verified: true,
      uploads: 1,
      seconds: (Date.now() - started) / 1000,
      sha256: stored.sha256.toString('hex'),
      resumedFrom: offset,
      bytesSent: link.dataBytesSent - sentBefore,
    };
  } finally {
    await handle.close().catch(() => undefined);
  }
}
