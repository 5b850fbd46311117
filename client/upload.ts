/**
 * Upload planning and the streaming sender (docs/protocol.md §5, §9 client rules).
 *
 * The file is read in large blocks into two reused buffers (the next read runs while this block
 * is processed); each block is checksummed and encrypted once, and all of its packets are built
 * in ONE output buffer (prefix + content per packet) that is written with one socket write.
 * Two output buffers alternate, so at most about four blocks are in memory whatever the size
 * of the file.
 */
import { constants as fsConstants } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import {
  MAX_PACKETS,
  MAX_U32,
  SEND_FILE_PREFIX_SIZE,
  Size,
  encodeSendFilePrefix,
  fileNameProblem,
  paddedLength,
  string255Bytes,
  type SendFileFields,
} from '../protocol';
import { Cksum } from '../shared/cksum';
import { createFileCipher } from '../shared/crypto';
import { errnoCode, errnoText } from '../shared/errno';
import { CLIENT_CHUNK_SIZE } from '../shared/limits';
import type { FileArgument } from './config';
import {
  ClientErrorCode,
  clientError,
  configError,
  isClientError,
  type ClientError,
  type ConfigLocation,
} from './errors';

/** Plaintext bytes read, checksummed and encrypted per step; a multiple of the chunk size. */
export const DEFAULT_BLOCK_SIZE = 1024 * 1024;
/** Offset of the u16 packet number inside a 1028 prefix (§3: header, content size, orig size). */
const PACKET_NUMBER_OFFSET = Size.REQUEST_HEADER + 4 + 4;
const noop = (): void => undefined;
const EMPTY = Buffer.alloc(0);
/** Files checked at the same time by prepareUploads (each holds a descriptor briefly). */
const CHECK_CONCURRENCY = 16;

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
  const nameProblem = fileNameProblem(fileName);
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

/** Checks one file: a readable regular file; returns its size. */
async function checkReadable(file: FileArgument): Promise<number> {
  try {
    const info = await stat(file.path);
    if (info.isDirectory()) throw unreadable(file, 'it is a directory');
    if (!info.isFile()) throw unreadable(file, 'it is not a regular file');
    const fh = await open(file.path, fsConstants.O_RDONLY);
    await fh.close();
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
 * Checks every file before connecting: readable regular file, sendable name and size. Files
 * are checked several at a time (one by one, each would wait for its own thread-pool round trip;
 * all at once could run out of file descriptors); the first problem in argument order is the
 * one reported.
 */
export async function prepareUploads(files: readonly FileArgument[]): Promise<UploadPlan[]> {
  const sizes: PromiseSettledResult<number>[] = [];
  for (let at = 0; at < files.length; at += CHECK_CONCURRENCY) {
    sizes.push(
      ...(await Promise.allSettled(files.slice(at, at + CHECK_CONCURRENCY).map(checkReadable))),
    );
  }
  const plans: UploadPlan[] = [];
  const byName = new Map<string, string>();
  files.forEach((file, i) => {
    const size = sizes[i];
    if (size.status === 'rejected') throw size.reason;
    const plan = planUpload(file.path, size.value, file.location);
    const earlier = byName.get(plan.fileName);
    if (earlier !== undefined) {
      throw clientError(
        ClientErrorCode.DUPLICATE_FILE_NAME,
        `${earlier} and ${file.path} have the same name "${plan.fileName}"; the server keeps ` +
          'one file per name, so the second would replace the first',
        { hint: 'send them in separate runs or rename one' },
      );
    }
    byName.set(plan.fileName, file.path);
    plans.push(plan);
  });
  return plans;
}

/** Where packets go: a Transport satisfies this. */
export interface PacketSink {
  /** Resolves when `data` is written out and its buffer may be reused. */
  write(data: Buffer): Promise<void>;
  /** True when the server answered while we were still sending: stop. */
  readonly interrupted: boolean;
}

export interface SendResult {
  /** cksum (§6) of the plaintext read. */
  readonly cksum: number;
  /** False when sending stopped early because the server answered already. */
  readonly complete: boolean;
}

export interface SendOptions {
  /** Plaintext bytes per step (rounded down to whole packets, at least one). */
  readonly blockSize?: number;
  /** Called after each block with the plaintext bytes sent so far. */
  readonly onProgress?: (bytesSent: number) => void;
}

/**
 * Cuts a ciphertext stream into 1028 packets. The prefix is encoded once per upload and copied
 * per packet with only its packet number patched: encoding the string255 file name for every
 * packet costs more than the AES work at 1 KiB packets.
 */
export class Packetizer {
  private nextPacket = 1;
  private readonly carry: Buffer;
  private carryLength = 0;
  private readonly template: Buffer;
  private readonly fields: SendFileFields;

  constructor(
    private readonly plan: UploadPlan,
    private readonly clientId: Buffer,
  ) {
    this.fields = {
      contentSize: plan.contentSize,
      origSize: plan.size,
      packetNumber: 1,
      totalPackets: plan.totalPackets,
      fileName: plan.fileName,
    };
    this.template = encodeSendFilePrefix(clientId, this.fields, plan.chunkSize);
    this.carry = Buffer.allocUnsafe(plan.chunkSize);
  }

  /** Output bytes for `packets` packets whose content totals `content` bytes. */
  static outputSize(packets: number, content: number): number {
    return packets * SEND_FILE_PREFIX_SIZE + content;
  }

  /**
   * Packs the ciphertext `pieces` (after any carried bytes) into packets written to `target`;
   * returns the used part of `target`. Without `final`, a partial packet is carried over.
   */
  pack(pieces: readonly Buffer[], final: boolean, target: Buffer): Buffer {
    const chunk = this.plan.chunkSize;
    let total = this.carryLength;
    for (const p of pieces) total += p.length;
    const full = Math.floor(total / chunk);
    const rest = total - full * chunk;
    const packets = final && rest > 0 ? full + 1 : full;
    const content = final ? total : full * chunk;
    if (this.nextPacket + packets - 1 > this.plan.totalPackets) {
      throw new Error('more ciphertext than the upload plan allows');
    }
    if (packets === 0) {
      for (const p of pieces) this.carryLength += p.copy(this.carry, this.carryLength);
      return target.subarray(0, 0);
    }
    const out = target.subarray(0, Packetizer.outputSize(packets, content));
    // Source cursor over [carry, ...pieces].
    const sources =
      this.carryLength > 0 ? [this.carry.subarray(0, this.carryLength), ...pieces] : pieces;
    let src = 0;
    let srcOffset = 0;
    let at = 0;
    for (let i = 0; i < packets; i++) {
      const length = i < full ? chunk : rest;
      if (length === chunk) {
        this.template.copy(out, at);
        out.writeUInt16LE(this.nextPacket, at + PACKET_NUMBER_OFFSET);
      } else {
        encodeSendFilePrefix(
          this.clientId,
          { ...this.fields, packetNumber: this.nextPacket },
          length,
          out,
          at,
        );
      }
      at += SEND_FILE_PREFIX_SIZE;
      let need = length;
      while (need > 0) {
        const source = sources[src];
        const n = Math.min(need, source.length - srcOffset);
        source.copy(out, at, srcOffset, srcOffset + n);
        at += n;
        need -= n;
        srcOffset += n;
        if (srcOffset === source.length) {
          src++;
          srcOffset = 0;
        }
      }
      this.nextPacket++;
    }
    // Carry what is left (only without `final`); carry itself was consumed by the first packet.
    this.carryLength = 0;
    for (; src < sources.length; src++, srcOffset = 0) {
      this.carryLength += sources[src].copy(this.carry, this.carryLength, srcOffset);
    }
    if (final && this.nextPacket - 1 !== this.plan.totalPackets) {
      throw new Error('ciphertext ended before the planned number of packets');
    }
    return out;
  }
}

/** Reads exactly `length` bytes at `position`; FILE_CHANGED if the file is shorter now. */
async function readExactly(
  fh: FileHandle,
  buffer: Buffer,
  length: number,
  position: number,
  path: string,
): Promise<Buffer> {
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buffer, got, length - got, position + got);
    if (bytesRead === 0) {
      throw clientError(
        ClientErrorCode.FILE_CHANGED,
        `${path} became shorter while it was being sent`,
        { hint: 'send the file again once nothing is writing to it' },
      );
    }
    got += bytesRead;
  }
  return buffer.subarray(0, length);
}

/**
 * Sends one whole upload of `plan` (every packet, §5) to `sink`, computing the cksum of the
 * plaintext on the way. Stops early (complete: false) if the server answers meanwhile.
 */
export async function sendFile(
  plan: UploadPlan,
  clientId: Buffer,
  aesKey: Buffer,
  sink: PacketSink,
  options: SendOptions = {},
): Promise<SendResult> {
  const chunk = plan.chunkSize;
  const blockPackets = Math.max(1, Math.floor((options.blockSize ?? DEFAULT_BLOCK_SIZE) / chunk));
  const blockBytes = Math.min(blockPackets * chunk, plan.size);
  // Largest step: a full block plus the carried remainder and the padding block.
  const outCapacity = Math.min(
    Packetizer.outputSize(blockPackets + 2, (blockPackets + 2) * chunk),
    Packetizer.outputSize(plan.totalPackets, plan.contentSize),
  );
  let fh: FileHandle;
  try {
    fh = await open(plan.path, fsConstants.O_RDONLY);
  } catch (err) {
    throw clientError(
      ClientErrorCode.FILE_UNREADABLE,
      `cannot read ${plan.path} (${errnoText(err)})`,
      { cause: err },
    );
  }
  // A file of one block needs one slot; the second is made only when a second block comes.
  const inputs = [Buffer.allocUnsafe(blockBytes), EMPTY];
  const outputs = [Buffer.allocUnsafe(outCapacity), EMPTY];
  const flushed: Promise<void>[] = [Promise.resolve(), Promise.resolve()];
  let reading: Promise<Buffer> = Promise.resolve(inputs[0].subarray(0, 0));
  try {
    const cipher = createFileCipher(aesKey);
    const sum = new Cksum();
    const packer = new Packetizer(plan, clientId);
    const startRead = (slot: number, position: number): Promise<Buffer> => {
      const length = Math.min(blockBytes, plan.size - position);
      if (inputs[slot].length < length) inputs[slot] = Buffer.allocUnsafe(blockBytes);
      const p = readExactly(fh, inputs[slot], length, position, plan.path);
      p.catch(noop); // awaited below; this only marks it handled while it waits
      return p;
    };
    /**
     * Waits for a write. A write that failed because the server answered and closed (it may
     * reject an upload with 1607, then hang up) is not an error here: the caller reads that
     * answer next. Other failures propagate.
     */
    const written = async (p: Promise<void>): Promise<boolean> => {
      try {
        await p;
        return true;
      } catch (err) {
        if (sink.interrupted) return false;
        throw err;
      }
    };
    const stop = async (): Promise<SendResult> => {
      await Promise.allSettled(flushed);
      return { cksum: sum.digest(), complete: false };
    };
    let readPosition = 0;
    reading = startRead(0, 0);
    for (let step = 0; ; step++) {
      const slot = step % 2;
      const data = await reading;
      readPosition += data.length;
      const last = readPosition >= plan.size;
      // Read the next block while this one is checksummed, encrypted and sent.
      if (!last) reading = startRead(1 - slot, readPosition);
      sum.update(data);
      const ciphertext = cipher.update(data);
      const pieces = last ? [ciphertext, cipher.final()] : [ciphertext];
      if (!(await written(flushed[slot]))) return await stop();
      if (outputs[slot].length === 0) outputs[slot] = Buffer.allocUnsafe(outCapacity);
      const out = packer.pack(pieces, last, outputs[slot]);
      if (out.length > 0) {
        flushed[slot] = sink.write(out);
        flushed[slot].catch(noop);
      }
      options.onProgress?.(readPosition);
      if (last) break;
      if (sink.interrupted) return await stop();
    }
    for (const p of flushed) if (!(await written(p))) return await stop();
    return { cksum: sum.digest(), complete: true };
  } finally {
    // FileHandle.close waits for a read still in flight.
    await fh.close().catch(noop);
    await reading.catch(noop);
  }
}

/** The string255 file-name field of `plan`, as some servers echo it after 1604 (§9). */
export function fileNameField(fileName: string): Buffer {
  const field = Buffer.alloc(Size.STRING255);
  string255Bytes(fileName).copy(field);
  return field;
}
