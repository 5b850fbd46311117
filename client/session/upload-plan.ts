/**
 * Upload planning (docs/protocol.md §5, §9 client rules): every file is checked before the
 * client connects (a readable regular file, a name the protocol can carry, a size under the
 * u32 ciphertext limit), and the packet layout is fixed per file.
 */
import { closeSync, constants as fsConstants, openSync, statSync } from 'node:fs';
import { basename } from 'node:path';
// The modules, not the protocol/ barrel: a v4 run plans its files here and loads no more of v3.
import { MAX_PACKETS, MAX_U32, Size } from '../../protocol/v3/constants';
import { fileNameProblem, paddedLength, string255Bytes } from '../../protocol/v3/fields';
import { errnoCode } from '../../shared/errno';
import { filePathProblem } from '../../shared/validators';
import { CLIENT_CHUNK_SIZE } from '../../shared/limits';
import type { FileArgument } from '../config/transfer-info';
import {
  ClientErrorCode,
  clientError,
  configError,
  isClientError,
  type ClientError,
  type ConfigLocation,
} from '../errors';

export interface UploadPlan {
  /** Absolute path of the file to read. */
  readonly path: string;
  /** Base name sent in every packet (§9: a plain base name). */
  readonly fileName: string;
  /** Plaintext bytes (orig size). */
  readonly size: number;
  /** Ciphertext bytes: the PKCS#7 length of `size` (§5). */
  readonly contentSize: number;
  /** Ciphertext bytes per packet; the last packet holds the rest. */
  readonly chunkSize: number;
  readonly totalPackets: number;
}

/**
 * Packet layout for a file of `size` bytes (§5): 1024-byte packets, N = ceil(content / 1024);
 * above 65535 packets, the smallest multiple of 16 that fits. Throws when the ciphertext would
 * not fit the u32 content size, or the name cannot travel in a string255.
 */
export function planUpload(
  path: string,
  size: number,
  location?: ConfigLocation,
  fileName: string = basename(path),
): UploadPlan {
  const where = location ?? { file: path };
  // Only a version-4 plan has folders in its name (FileArgument.name).
  const nameProblem = fileName.includes('/')
    ? filePathProblem(fileName)
    : fileNameProblem(fileName);
  let nameBytes = 0;
  try {
    nameBytes = string255Bytes(fileName).length;
  } catch {
    nameBytes = -1;
  }
  if (nameProblem !== undefined || nameBytes < 0) {
    throw configError(
      ClientErrorCode.BAD_FILE_NAME,
      where,
      `the file name "${fileName}" cannot be sent: ` +
        (nameProblem ?? 'it must be 1–254 bytes of UTF-8 without control characters'),
      'rename the file or send a copy with a shorter, plain name',
    );
  }
  const contentSize = paddedLength(size);
  if (contentSize > MAX_U32) {
    throw configError(
      ClientErrorCode.FILE_TOO_LARGE,
      where,
      `${path} is ${size} bytes; its ciphertext (${contentSize} bytes) exceeds the protocol's ` +
        `limit of ${MAX_U32} bytes`,
      'split the file into parts under 4 GiB and send them one by one',
    );
  }
  let chunkSize = CLIENT_CHUNK_SIZE;
  if (Math.ceil(contentSize / chunkSize) > MAX_PACKETS) {
    const minimum = Math.ceil(contentSize / MAX_PACKETS);
    chunkSize = Math.ceil(minimum / Size.AES_BLOCK) * Size.AES_BLOCK;
  }
  return {
    path,
    fileName,
    size,
    contentSize,
    chunkSize,
    totalPackets: Math.ceil(contentSize / chunkSize),
  };
}

function unreadable(file: FileArgument, why: string, hint?: string): ClientError {
  const message = `cannot send ${file.path}: ${why}`;
  return file.location
    ? configError(ClientErrorCode.FILE_UNREADABLE, file.location, message, hint)
    : clientError(ClientErrorCode.FILE_UNREADABLE, message, { hint });
}

/**
 * Checks one file: a readable regular file; returns its size. Synchronous on purpose: it runs
 * before anything is connected, and a stat and an open of a local file take microseconds, less
 * than the thread-pool round trip each would cost asynchronously (hundreds of files add up).
 */
function checkReadable(file: FileArgument): number {
  try {
    const info = statSync(file.path);
    if (info.isDirectory()) {
      throw unreadable(file, 'it is a directory', 'add -r to send the files below it');
    }
    if (!info.isFile()) throw unreadable(file, 'it is not a regular file');
    closeSync(openSync(file.path, fsConstants.O_RDONLY));
    return info.size;
  } catch (err) {
    if (isClientError(err)) throw err;
    const sys = errnoCode(err);
    throw sys === 'ENOENT'
      ? unreadable(file, 'no such file')
      : sys === 'EACCES'
        ? unreadable(file, 'permission denied', 'check the file permissions')
        : unreadable(file, sys ?? String(err));
  }
}

/**
 * Checks every file before connecting: readable regular file, sendable name and size; the
 * first problem in argument order is the one reported. Then names: a v3 server stores base
 * names only (§7), so two files of one name would overwrite each other; every such clash is
 * listed.
 */
export function prepareUploads(files: readonly FileArgument[]): UploadPlan[] {
  const plans = files.map((file) => planUpload(file.path, checkReadable(file), file.location));
  refuseClashes(plans);
  return plans;
}

/**
 * The plan of one file for a version-4 upload: named by its path below a directory argument
 * (FileArgument.name) when it has one, and not bound by v3's size limit (64-bit sizes,
 * docs/protocol-v4.md §4.4).
 */
export function planV4Upload(file: FileArgument): { path: string; fileName: string; size: number } {
  const size = checkReadable(file);
  const fileName = file.name ?? basename(file.path);
  try {
    return planUpload(file.path, size, file.location, fileName);
  } catch (err) {
    if (!isClientError(err) || err.code !== ClientErrorCode.FILE_TOO_LARGE) throw err;
    return { path: file.path, fileName, size };
  }
}

/** Refuses, before anything is sent, files that would be stored under one name. */
export function refuseClashes(plans: readonly { fileName: string; path: string }[]): void {
  const clashes = nameClashes(plans);
  if (clashes.length === 1 && clashes[0].paths.length === 2) {
    const [{ fileName, paths }] = clashes;
    throw clientError(
      ClientErrorCode.DUPLICATE_FILE_NAME,
      `${paths[0]} and ${paths[1]} have the same name "${fileName}"; the server keeps ` +
        'one file per name, so the second would replace the first',
      { hint: 'send them in separate runs or rename one' },
    );
  }
  if (clashes.length > 0) {
    const lines = clashes.map((c) => `\n  same name "${c.fileName}": ${c.paths.join(', ')}`);
    throw clientError(
      ClientErrorCode.DUPLICATE_FILE_NAME,
      `${clashes.length} names are shared by several files; the server keeps one file per ` +
        `name, so nothing was sent:${lines.join('')}`,
      { hint: 'send them in separate runs or rename them' },
    );
  }
}

export interface NameClash {
  readonly fileName: string;
  /** Every path with that name, in argument order. */
  readonly paths: readonly string[];
}

/** Names that more than one plan would be stored under, in order of first appearance. */
export function nameClashes(plans: readonly { fileName: string; path: string }[]): NameClash[] {
  const byName = new Map<string, string[]>();
  for (const plan of plans) {
    const paths = byName.get(plan.fileName);
    if (paths) paths.push(plan.path);
    else byName.set(plan.fileName, [plan.path]);
  }
  return [...byName]
    .filter(([, paths]) => paths.length > 1)
    .map(([fileName, paths]) => ({ fileName, paths }));
}
