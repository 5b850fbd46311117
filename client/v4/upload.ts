/**
 * One v4 upload (docs/protocol-v4.md §5.4, §5.5): UPLOAD_BEGIN with the size and a content
 * check, DATA from the offset the server holds, UPLOAD_END with the SHA-256 of the whole
 * plaintext, and the server's STORED compared with ours. Bytes before the offset are read and
 * hashed here but not sent: that is the resume.
 *
 * A file that fits one chunk is read once, whole, and its check, SHA-256 and DATA all come from
 * that buffer; a larger one is read chunk by chunk, one read ahead of the sending.
 */
import { createHash, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { RequestCode, ResponseCode, type Stored } from '../../protocol/v4';
import { errnoText } from '../../shared/errno';
import { ClientErrorCode, clientError } from '../errors';
import { readAtOnce, type ReadAtOnce } from '../session/read-at-once';
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
 * The whole file in one buffer, or undefined when it does not hold exactly `size` bytes. One
 * byte more is asked for, so a file that grew since its stat is caught here.
 */
export async function readWhole(handle: FileHandle, size: number): Promise<Buffer | undefined> {
  const bytes = await readAt(handle, 0, size + 1);
  return bytes.length === size ? bytes : undefined;
}

/** Where the check's tail starts, or undefined when the first 64 KiB hold the whole file. */
function tailStart(size: number): number | undefined {
  return size > CHECK_EDGE ? Math.max(CHECK_EDGE, size - CHECK_EDGE) : undefined;
}

function checkOf(size: number, mtimeMs: number, head: Buffer, tail: Buffer | undefined): Buffer {
  const hash = createHash('sha256').update(CHECK_CONTEXT, 'latin1');
  const sizeBytes = Buffer.alloc(8);
  sizeBytes.writeBigUInt64LE(BigInt(size));
  hash.update(sizeBytes).update(String(mtimeMs), 'latin1').update(head);
  if (tail !== undefined) hash.update(tail);
  return hash.digest();
}

/**
 * 32 bytes that change when the file does (size, modification time, first and last 64 KiB):
 * a resumed upload must continue the same content (docs/protocol-v4.md §5.5). The SHA-256 at
 * the end still checks every byte.
 */
export async function contentCheck(handle: FileHandle, size: number): Promise<Buffer> {
  const stats = await handle.stat();
  const head = await readAt(handle, 0, Math.min(CHECK_EDGE, size));
  const start = tailStart(size);
  const tail = start === undefined ? undefined : await readAt(handle, start, size - start);
  return checkOf(size, stats.mtimeMs, head, tail);
}

/** The same check for a file held whole in `bytes`, modified at `mtimeMs`. */
export function contentCheckOfBytes(bytes: Buffer, mtimeMs: number): Buffer {
  const size = bytes.length;
  const start = tailStart(size);
  const head = bytes.subarray(0, Math.min(CHECK_EDGE, size));
  return checkOf(size, mtimeMs, head, start === undefined ? undefined : bytes.subarray(start));
}

/** What sending the bytes of one upload needs. */
interface Sending {
  readonly link: V4Link;
  readonly plan: V4Plan;
  readonly chunkSize: number;
  readonly events: V4UploadEvents;
  readonly options: UploadOptions;
  readonly sha: Hash;
}

/**
 * Sends one chunk and reports it; false once the server answered meanwhile (an ERROR: disk
 * full, …), which stops the upload early.
 */
async function sendAndReport(s: Sending, chunk: Buffer, position: number): Promise<boolean> {
  await sendChunk(s.link, chunk, s.options);
  s.events.uploadProgress?.(s.plan, position + chunk.length);
  return !s.link.hasResponse;
}

/** Sends a file held whole in `bytes` from `offset`; returns the position reached. */
async function sendHeld(s: Sending, bytes: Buffer, offset: number): Promise<number> {
  s.sha.update(bytes);
  let position = offset;
  while (position < bytes.length) {
    const chunk = bytes.subarray(position, position + s.chunkSize);
    const goOn = await sendAndReport(s, chunk, position);
    position += chunk.length;
    if (!goOn) break;
  }
  return position;
}

/**
 * Reads the file of `size` bytes chunk by chunk and sends it from `offset` (the bytes before
 * it read and hashed, not sent); returns the position reached.
 */
async function sendRead(
  s: Sending,
  handle: FileHandle,
  size: number,
  offset: number,
): Promise<number> {
  let position = 0;
  while (position < offset) {
    const chunk = await readAt(handle, position, Math.min(s.chunkSize, offset - position));
    if (chunk.length === 0) throw fileChanged(s.plan);
    s.sha.update(chunk);
    position += chunk.length;
  }
  const readFrom = (at: number): Promise<Buffer> | undefined => {
    if (at >= size) return undefined;
    const read = readAt(handle, at, Math.min(s.chunkSize, size - at));
    // Handled here too: a read left pending when sending fails must not go unhandled.
    read.catch(() => undefined);
    return read;
  };
  // One read ahead: the disk works on the next chunk while this one is sent.
  let next = readFrom(position);
  while (next !== undefined) {
    const chunk = await next;
    if (chunk.length === 0) throw fileChanged(s.plan);
    next = readFrom(position + chunk.length);
    s.sha.update(chunk);
    const goOn = await sendAndReport(s, chunk, position);
    position += chunk.length;
    if (!goOn) break;
  }
  // The chunks were read at different times: a file that grew meanwhile changed.
  if (position === size && (await handle.stat()).size !== size) throw fileChanged(s.plan);
  return position;
}

function openPlan(plan: V4Plan): Promise<FileHandle> {
  return open(plan.path, 'r').catch((err: unknown) => {
    throw clientError(ClientErrorCode.FILE_UNREADABLE, `cannot open ${plan.path}`, { cause: err });
  });
}

/** A file that fits one chunk, read once: its bytes and content check. */
export interface HeldFile {
  readonly bytes: Buffer;
  readonly check: Buffer;
}

/**
 * Reads a file that fits one chunk whole, at once (read-at-once.ts); FILE_CHANGED when it is
 * not of the planned size. One byte more is asked for, so a file that grew is caught too.
 */
export function readHeld(plan: V4Plan): HeldFile {
  const buf = Buffer.allocUnsafe(plan.size + 1);
  let read: ReadAtOnce;
  try {
    read = readAtOnce(plan.path, buf);
  } catch (err) {
    throw clientError(
      ClientErrorCode.FILE_UNREADABLE,
      `cannot read ${plan.path} (${errnoText(err)})`,
      { cause: err },
    );
  }
  if (read.size !== plan.size || read.bytesRead !== plan.size) throw fileChanged(plan);
  const bytes = buf.subarray(0, plan.size);
  return { bytes, check: contentCheckOfBytes(bytes, read.mtimeMs) };
}

/** What came of an upload the server answered with STORED. */
export interface StoredUpload {
  readonly plan: V4Plan;
  readonly stored: Stored;
  /** Our SHA-256 of the file; undefined when the upload stopped before UPLOAD_END. */
  readonly ours: Buffer | undefined;
  readonly started: number;
  readonly resumedFrom: number;
  readonly bytesSent: number;
}

/** The result of a STORED upload, or CHECKSUM_FAILED when it is not the file we sent. */
export function storedResult(upload: StoredUpload): V4UploadResult {
  const { plan, stored, ours } = upload;
  if (ours === undefined || stored.size !== plan.size || !stored.sha256.equals(ours)) {
    throw clientError(
      ClientErrorCode.CHECKSUM_FAILED,
      `the server stored ${plan.fileName} with SHA-256 ${stored.sha256.toString('hex')}, ` +
        `ours is ${ours?.toString('hex') ?? 'not computed'}`,
    );
  }
  return {
    file: plan.path,
    fileName: plan.fileName,
    bytes: plan.size,
    cksum: stored.cksum,
    verified: true,
    uploads: 1,
    seconds: (Date.now() - upload.started) / 1000,
    sha256: stored.sha256.toString('hex'),
    resumedFrom: upload.resumedFrom,
    bytesSent: upload.bytesSent,
  };
}

export async function uploadFile(
  link: V4Link,
  plan: V4Plan,
  chunkSize: number,
  events: V4UploadEvents,
  options: UploadOptions = {},
): Promise<V4UploadResult> {
  const started = Date.now();
  const handle = await openPlan(plan);
  try {
    const size = plan.size;
    const stats = await handle.stat();
    if (stats.size !== size) throw fileChanged(plan);
    let whole: Buffer | undefined;
    if (size <= chunkSize) {
      whole = await readWhole(handle, size);
      if (whole === undefined) throw fileChanged(plan);
    }
    const check =
      whole === undefined
        ? await contentCheck(handle, size)
        : contentCheckOfBytes(whole, stats.mtimeMs);
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
    const sending: Sending = { link, plan, chunkSize, events, options, sha: createHash('sha256') };
    const sentBefore = link.dataBytesSent;
    const position =
      whole === undefined
        ? await sendRead(sending, handle, size, offset)
        : await sendHeld(sending, whole, offset);
    let ours: Buffer | undefined;
    if (position === size) {
      ours = sending.sha.digest();
      await link.send({ code: RequestCode.UPLOAD_END, sha256: ours });
    }
    const stored = expect(link.remote, what, await link.receive(what), ResponseCode.STORED);
    return storedResult({
      plan,
      stored,
      ours,
      started,
      resumedFrom: offset,
      bytesSent: link.dataBytesSent - sentBefore,
    });
  } finally {
    await handle.close().catch(() => undefined);
  }
}
