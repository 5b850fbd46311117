/**
 * The streaming sender (docs/protocol.md §5, §9 client rules).
 *
 * The file is read in large blocks into two reused buffers (the next read runs while this block
 * is processed); each block is checksummed and encrypted once, and all of its packets are built
 * in ONE output buffer (prefix + content per packet) that is written with one socket write.
 * Two output buffers alternate, so at most about four blocks are in memory whatever the size
 * of the file.
 */
import { constants as fsConstants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Size, string255Bytes } from '../../protocol';
import { Cksum } from '../../shared/cksum';
import { crcUpdateNative } from '../../shared/cksum-native';
import { createFileCipher } from '../../shared/crypto';
import { errnoText } from '../../shared/errno';
import { ClientErrorCode, clientError } from '../errors';
import { Packetizer } from './packetizer';
import { readAtOnce, type ReadAtOnce } from './read-at-once';
import type { UploadPlan } from './upload-plan';

/** Plaintext bytes read, checksummed and encrypted per step; a multiple of the chunk size. */
export const DEFAULT_BLOCK_SIZE = 1024 * 1024;
const noop = (): void => undefined;
const EMPTY = Buffer.alloc(0);

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

/** Reads exactly `length` bytes at `position`; FILE_CHANGED if the file is shorter now. */
async function readExactly(
  fh: FileHandle,
  buffer: Buffer,
  length: number,
  position: number,
  plan: UploadPlan,
): Promise<Buffer> {
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buffer, got, length - got, position + got);
    if (bytesRead === 0) throw becameShorter(plan);
    got += bytesRead;
  }
  return buffer.subarray(0, length);
}

function cannotRead(plan: UploadPlan, err: unknown): Error {
  return clientError(
    ClientErrorCode.FILE_UNREADABLE,
    `cannot read ${plan.path} (${errnoText(err)})`,
    { cause: err },
  );
}

function becameShorter(plan: UploadPlan): Error {
  return clientError(
    ClientErrorCode.FILE_CHANGED,
    `${plan.path} became shorter while it was being sent`,
    { hint: 'send the file again once nothing is writing to it' },
  );
}

/** The whole of a file that fits in one block, read at once (read-at-once.ts). */
function readSmallFile(plan: UploadPlan, into: Buffer): Buffer {
  const whole = into.subarray(0, plan.size);
  let read: ReadAtOnce;
  try {
    read = readAtOnce(plan.path, whole);
  } catch (err) {
    throw cannotRead(plan, err);
  }
  if (read.bytesRead < plan.size) throw becameShorter(plan);
  return whole;
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
  // A file of one block is read at once, synchronously (readSmallFile); no handle stays open.
  let fh: FileHandle | undefined;
  if (plan.size > blockBytes) {
    try {
      fh = await open(plan.path, fsConstants.O_RDONLY);
    } catch (err) {
      throw cannotRead(plan, err);
    }
  }
  // A file of one block needs one slot; the second is made only when a second block comes.
  const inputs = [Buffer.allocUnsafe(blockBytes), EMPTY];
  const outputs = [Buffer.allocUnsafe(outCapacity), EMPTY];
  const flushed: Promise<void>[] = [Promise.resolve(), Promise.resolve()];
  let reading: Promise<Buffer> = Promise.resolve(inputs[0].subarray(0, 0));
  try {
    const cipher = createFileCipher(aesKey);
    // The checksum of a large file is on the way to its answer: the faster native path.
    const sum = new Cksum(crcUpdateNative);
    const packer = new Packetizer(plan, clientId);
    const startRead = (slot: number, position: number): Promise<Buffer> => {
      const length = Math.min(blockBytes, plan.size - position);
      if (inputs[slot].length < length) inputs[slot] = Buffer.allocUnsafe(blockBytes);
      if (fh === undefined) return Promise.resolve(readSmallFile(plan, inputs[slot]));
      const p = readExactly(fh, inputs[slot], length, position, plan);
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
    await fh?.close().catch(noop);
    await reading.catch(noop);
  }
}

/** The string255 file-name field of `plan`, as some servers echo it after 1604 (§9). */
export function fileNameField(fileName: string): Buffer {
  const field = Buffer.alloc(Size.STRING255);
  string255Bytes(fileName).copy(field);
  return field;
}
