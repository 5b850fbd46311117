/**
 * One download over version 4 (docs/protocol-v4.md §5.6). The bytes go to a hidden temp file
 * beside the target; only after their SHA-256 equals the server's (and, for an end-to-end
 * encrypted file, after every segment decrypted) does the file appear under its name, by
 * rename, so the target never holds half a file. A cut download keeps its temp file and a
 * record of the SHA-256 it belongs to; the next run continues from the temp file's length when
 * the server still has that content, and starts again otherwise.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, lstat, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { FileFlag, RequestCode, ResponseCode, type FileInfo } from '../../protocol/v4';
import { syncDirectory, writeFileAtomic } from '../../shared/atomic-file';
import { E2E_MAGIC } from '../../shared/e2e-stream';
import { ClientErrorCode, clientError } from '../errors';
import { expect } from './errors';
import type { V4Link } from './link';

/** READs sent ahead of the answers: keeps the pipe full without buffering much. */
const READ_WINDOW = 8;
const PRIVATE_FILE = 0o600;

export interface DownloadOptions {
  readonly fileName: string;
  /** Where the file appears. */
  readonly outPath: string;
  /** Replace an existing file at `outPath`. */
  readonly force: boolean;
  /**
   * Turns the verified ciphertext of an end-to-end encrypted file into its plaintext file;
   * throws (and writes nothing at `to`) when it does not decrypt.
   */
  readonly decrypt?: (from: string, to: string) => Promise<void>;
  readonly onProgress?: (received: number, size: number) => void;
}

export interface DownloadResult {
  readonly fileName: string;
  readonly path: string;
  /** Bytes of the file as written (the plaintext of an e2e file). */
  readonly bytes: number;
  /** SHA-256 of the bytes the server holds. */
  readonly sha256: string;
  /** Bytes the temp file already held: the download continued from there. */
  readonly resumedFrom: number;
  readonly e2e: boolean;
  readonly seconds: number;
}

interface PartRecord {
  readonly fileName: string;
  readonly size: number;
  readonly sha256: string;
}

/** The temp file and its record, hidden beside the target. */
export function downloadTempPaths(outPath: string): {
  part: string;
  record: string;
  plain: string;
} {
  const base = join(dirname(outPath), `.${basename(outPath)}.sft-get`);
  return { part: base, record: `${base}.json`, plain: `${base}.plain` };
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

export async function refuseExisting(outPath: string, force: boolean): Promise<void> {
  if (!force && (await exists(outPath))) {
    throw clientError(ClientErrorCode.OUTPUT_EXISTS, `${outPath} exists; nothing was downloaded`, {
      hint: 'give --force to replace it, or -o PATH to write elsewhere',
    });
  }
}

async function readRecord(path: string): Promise<PartRecord | undefined> {
  try {
    const record = JSON.parse(await readFile(path, 'utf8')) as Partial<PartRecord>;
    if (
      typeof record.fileName === 'string' &&
      typeof record.size === 'number' &&
      typeof record.sha256 === 'string'
    ) {
      return { fileName: record.fileName, size: record.size, sha256: record.sha256 };
    }
  } catch {
    // No record (or a torn one): start from the beginning.
  }
  return undefined;
}

async function startsWithE2eMagic(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(E2E_MAGIC.length);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    return bytesRead === head.length && head.equals(E2E_MAGIC);
  } finally {
    await handle.close();
  }
}

async function removeQuietly(...paths: string[]): Promise<void> {
  await Promise.all(paths.map((p) => unlink(p).catch(() => undefined)));
}

async function hashPrefix(path: string, end: number, hash: Hash): Promise<void> {
  if (end === 0) return;
  for await (const chunk of createReadStream(path, { start: 0, end: end - 1 })) {
    hash.update(chunk as Buffer);
  }
}

async function begin(link: V4Link, fileName: string, offset: number): Promise<FileInfo> {
  await link.send({ code: RequestCode.GET, fileName, offset });
  const what = `the download of ${fileName}`;
  return expect(link.remote, what, await link.receive(what), ResponseCode.FILE_INFO);
}

/** Where to continue: the temp file's length if it holds a prefix of the same content. */
async function resumeOffset(
  paths: ReturnType<typeof downloadTempPaths>,
  fileName: string,
): Promise<{ offset: number; record: PartRecord | undefined }> {
  const record = await readRecord(paths.record);
  if (record === undefined || record.fileName !== fileName) return { offset: 0, record: undefined };
  const length = await stat(paths.part).then(
    (s) => s.size,
    () => -1,
  );
  if (length < 0 || length > record.size) return { offset: 0, record: undefined };
  return { offset: length, record };
}

export async function downloadFile(
  link: V4Link,
  chunkSize: number,
  options: DownloadOptions,
): Promise<DownloadResult> {
  const started = Date.now();
  const { fileName, outPath } = options;
  await refuseExisting(outPath, options.force);
  const paths = downloadTempPaths(outPath);
  const resume = await resumeOffset(paths, fileName);
  let info = await begin(link, fileName, resume.offset);
  let offset = resume.offset;
  const same =
    resume.record !== undefined &&
    resume.record.size === info.size &&
    resume.record.sha256 === info.sha256.toString('hex');
  if (!same && offset > 0) {
    // The server's file changed since the cut: what the temp file holds is of no use.
    info = await begin(link, fileName, 0);
    offset = 0;
  }
  const sha256 = info.sha256.toString('hex');
  if (!same) {
    const record: PartRecord = { fileName, size: info.size, sha256 };
    await writeFileAtomic(paths.record, JSON.stringify(record), { mode: PRIVATE_FILE });
  }
  const hash = createHash('sha256');
  const handle = await open(paths.part, offset === 0 ? 'w' : 'r+', PRIVATE_FILE);
  try {
    await handle.truncate(offset);
    await hashPrefix(paths.part, offset, hash);
    let received = offset;
    let requested = offset;
    let outstanding = 0;
    while (received < info.size) {
      while (outstanding < READ_WINDOW && requested < info.size) {
        await link.send({ code: RequestCode.READ });
        requested += Math.min(chunkSize, info.size - requested);
        outstanding++;
      }
      const what = `the download of ${fileName}`;
      const { data } = expect(link.remote, what, await link.receive(what), ResponseCode.FILE_DATA);
      outstanding--;
      if (received + data.length > info.size) {
        throw clientError(ClientErrorCode.PROTOCOL_VIOLATION, `${fileName}: data past its size`);
      }
      await handle.write(data, 0, data.length, received);
      hash.update(data);
      received += data.length;
      options.onProgress?.(received, info.size);
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  if (hash.digest('hex') !== sha256) {
    await removeQuietly(paths.part, paths.record);
    throw clientError(
      ClientErrorCode.CHECKSUM_FAILED,
      `${fileName}: the SHA-256 of the downloaded bytes is not the server's ${sha256}; ` +
        'nothing was written',
      { hint: 'run again; if it fails again the stored file is damaged' },
    );
  }
  // The flag is the server's word; the format's magic is checked too, so a server that drops
  // the flag still cannot make us publish ciphertext, or unauthenticated bytes, as the file.
  const e2e = (info.flags & FileFlag.E2E) !== 0 || (await startsWithE2eMagic(paths.part));
  let source = paths.part;
  if (e2e) {
    if (options.decrypt === undefined) {
      throw clientError(ClientErrorCode.INTERNAL, `${fileName} is end-to-end encrypted`);
    }
    try {
      await options.decrypt(paths.part, paths.plain);
    } catch (err) {
      await removeQuietly(paths.part, paths.record, paths.plain);
      throw err;
    }
    source = paths.plain;
  }
  const bytes = (await stat(source)).size;
  await publish(source, outPath, options.force);
  await removeQuietly(paths.part, paths.record);
  return {
    fileName,
    path: outPath,
    bytes,
    sha256,
    resumedFrom: offset,
    e2e,
    seconds: (Date.now() - started) / 1000,
  };
}

/**
 * Moves the verified file into place. Without --force a hard link publishes it only if nothing
 * is there (atomically); where links are not allowed, a check then a rename.
 */
async function publish(source: string, outPath: string, force: boolean): Promise<void> {
  if (force) {
    await rename(source, outPath);
  } else {
    try {
      await link(source, outPath);
      await unlink(source);
    } catch {
      // EEXIST (a file appeared meanwhile) is refused here; other errors mean no hard links.
      await refuseExisting(outPath, false);
      await rename(source, outPath);
    }
  }
  await syncDirectory(dirname(outPath), { followSymlink: true }).catch(() => undefined);
}
