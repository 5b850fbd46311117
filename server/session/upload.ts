/**
 * One upload in progress (PROTOCOL.md §5.4): ciphertext in, through one streaming AES-CBC
 * decipher and a streaming cksum of the plaintext, into an UploadSink (a temp file).
 *
 * Ciphertext of consecutive packets is gathered in a batch buffer and deciphered with one
 * `update` per batch: per-packet updates of 1 KiB cost several times more. The plaintext goes
 * to the sink in groups of about 1 MiB (a small file in one group, at its end); `pendingBytes`
 * lets the connection stop reading while the disk is behind, so memory per upload stays
 * bounded.
 */
import type { Decipher } from 'node:crypto';
import { Cksum } from '../../shared/cksum';
import { CryptoError, CryptoErrorCode, createFileDecipher } from '../../shared/crypto';
import { Size } from '../../protocol/v3/constants';
import type { SendFileFields } from '../../protocol/v3/messages';
import { sessionError, SessionErrorCode } from './session-error';
import type { UploadSink } from '../storage/types';
import { noNudge, type MemoryNudge } from '../gc-nudge';

/** Offsets of the 1028 fixed fields in its payload (§3). */
const ORIG_SIZE_AT = 4;
const TOTAL_AT = 10;
const NAME_AT = 12;
const PACKET_AT = 8;
const SEND_FILE_FIXED = Size.SEND_FILE_FIXED;
/** Frame bytes `matchesRaw` takes from the frame: version, code, payload size (§1). */
const FRAME_VARIABLE_START = Size.CLIENT_ID;
const FRAME_VARIABLE_END = Size.REQUEST_HEADER;
const FRAME_PACKET_AT = Size.REQUEST_HEADER + PACKET_AT;
/**
 * Ciphertext gathered before one decipher update: per-packet updates of 1 KiB cost several
 * times more (issue 5). Not larger: every plaintext buffer is garbage once written, and V8
 * collects young buffers only every 32 MiB, so bigger ones raised the server's peak RSS without
 * saving much more (writes are grouped below anyway).
 */
export const BATCH_BYTES = 64 * 1024;
/**
 * Plaintext handed to the sink at once: every write handed to the thread pool wakes a worker
 * that competes with this thread for a core, so 64 KiB writes cost more than the AES.
 */
const WRITE_GROUP_BYTES = 1024 * 1024;

export interface UploadIdentity {
  readonly clientId: Buffer;
  readonly clientIdHex: string;
  readonly fileName: string;
  readonly contentSize: number;
  readonly origSize: number;
  readonly totalPackets: number;
}

export interface CompletedUpload {
  readonly pathName: string;
  readonly cksum: number;
  readonly plaintextBytes: number;
}

export class Upload {
  /** The packet number expected next (§5.4: 1..N in order). */
  nextPacket = 1;
  private received = 0;
  private plaintextBytes = 0;
  private readonly decipher: Decipher;
  private readonly cksum = new Cksum();
  private batchLength = 0;
  /** Plaintext not yet handed to the sink: it goes in groups of WRITE_GROUP_BYTES. */
  private gathered: Buffer[] = [];
  private gatheredBytes = 0;
  /** Writes handed to the sink and not settled. */
  private inFlight = 0;
  private readonly idleWaiters: Array<() => void> = [];
  private queued = 0;
  private failure: unknown;
  private finished = false;

  /** Gathers ciphertext of consecutive packets for one decipher update. */
  private readonly batch: Buffer;
  /**
   * Packet 1's header and fixed fields as a canonical sender encodes them (name NUL-padded,
   * §2); `matchesRaw` overwrites its variable bytes on each call.
   */
  private readonly frameTemplate: Buffer;

  constructor(
    readonly id: UploadIdentity,
    aesKey: Buffer,
    private readonly sink: UploadSink,
    readonly startedAt: number,
    private readonly memory: MemoryNudge = noNudge,
  ) {
    // Small files get a small batch: no more than their ciphertext.
    this.batch = Buffer.allocUnsafe(Math.min(BATCH_BYTES, id.contentSize));
    this.decipher = createFileDecipher(aesKey);
    const t = Buffer.alloc(Size.REQUEST_HEADER + SEND_FILE_FIXED);
    id.clientId.copy(t, 0);
    const fields = Size.REQUEST_HEADER;
    t.writeUInt32LE(id.contentSize, fields);
    t.writeUInt32LE(id.origSize, fields + ORIG_SIZE_AT);
    t.writeUInt16LE(id.totalPackets, fields + TOTAL_AT);
    t.write(id.fileName, fields + NAME_AT, 'utf8');
    this.frameTemplate = t;
  }

  /** True when `fields` (and the sender) are those of this upload's packet 1 (§9). */
  matches(clientId: Buffer, fields: SendFileFields): boolean {
    const id = this.id;
    return (
      fields.contentSize === id.contentSize &&
      fields.origSize === id.origSize &&
      fields.totalPackets === id.totalPackets &&
      fields.fileName === id.fileName &&
      clientId.equals(id.clientId)
    );
  }

  /** Ciphertext bytes accepted so far (bytes past content size are not counted). */
  get ciphertextBytes(): number {
    return this.received;
  }

  /** Plaintext bytes handed to the sink but not yet written. */
  get pendingBytes(): number {
    return this.queued;
  }

  /** A write to the sink failed; the upload cannot complete. */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  /**
   * Takes one packet's ciphertext. `content` may be a view that dies after this call: it is
   * consumed or copied here. Bytes past content size are dropped (§9: padded packets).
   */
  accept(content: Buffer): void {
    this.acceptRange(content, 0, content.length);
  }

  /** `accept` for the bytes of `source` from `start` to `end`, without making a view. */
  acceptRange(source: Buffer, start: number, end: number): void {
    const take = Math.min(end - start, this.id.contentSize - this.received);
    if (take <= 0) return;
    this.received += take;
    if (take > this.batch.length - this.batchLength) this.flush();
    if (take >= this.batch.length) {
      this.decipherChunk(source.subarray(start, start + take));
      return;
    }
    source.copy(this.batch, this.batchLength, start, start + take);
    this.batchLength += take;
  }

  /**
   * The fast-path test of `matches`, on a raw frame whose header starts at `frame` of `buf`:
   * the sender's id and the 267 fixed payload bytes equal to packet 1's (§5.4). The bytes that
   * may differ (version, code and size, checked by the caller, and the packet number) are
   * copied from the frame into the template first, so ONE native compare covers the rest: a
   * 1 KiB packet costs one call into C++ here, not eight.
   */
  matchesRaw(buf: Buffer, frame: number): boolean {
    const t = this.frameTemplate;
    for (let i = FRAME_VARIABLE_START; i < FRAME_VARIABLE_END; i++) t[i] = buf[frame + i];
    t[FRAME_PACKET_AT] = buf[frame + FRAME_PACKET_AT];
    t[FRAME_PACKET_AT + 1] = buf[frame + FRAME_PACKET_AT + 1];
    return t.compare(buf, frame, frame + t.length) === 0;
  }

  /** Deciphers what the batch holds and queues the plaintext for the sink. */
  private flush(): void {
    if (this.batchLength === 0) return;
    const length = this.batchLength;
    this.batchLength = 0;
    this.decipherChunk(this.batch.subarray(0, length));
  }

  /** Resolves when every queued write is done; rejects with the first write failure. */
  async drain(): Promise<void> {
    this.writeGathered();
    if (this.inFlight > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    if (this.failure !== undefined) throw this.failure;
  }

  /**
   * Packet N arrived: checks sizes and padding (§9), makes the file visible (fsync + rename)
   * and returns its path and cksum. The caller records the row.
   */
  async finish(): Promise<CompletedUpload> {
    this.flush();
    if (this.received !== this.id.contentSize) {
      throw sessionError(
        SessionErrorCode.SIZE_MISMATCH,
        `received ${this.received} ciphertext bytes, content size is ${this.id.contentSize}`,
      );
    }
    let tail: Buffer;
    try {
      tail = this.decipher.final();
    } catch {
      throw new CryptoError(CryptoErrorCode.BAD_PADDING, 'ciphertext has bad PKCS#7 padding');
    }
    this.consumePlaintext(tail);
    await this.drain();
    if (this.plaintextBytes !== this.id.origSize) {
      throw sessionError(
        SessionErrorCode.SIZE_MISMATCH,
        `decrypted ${this.plaintextBytes} bytes, orig size is ${this.id.origSize}`,
      );
    }
    const pathName = await this.sink.commit();
    this.finished = true;
    return { pathName, cksum: this.cksum.digest(), plaintextBytes: this.plaintextBytes };
  }

  /** Drops the upload: waits for writes in flight, removes the temp file. Safe to repeat. */
  async abort(): Promise<void> {
    if (this.finished) return;
    this.failure ??= new Error('upload aborted');
    this.gathered = [];
    this.gatheredBytes = 0;
    await this.drain().catch(() => undefined);
    await this.sink.abort();
  }

  private decipherChunk(ciphertext: Buffer): void {
    this.consumePlaintext(this.decipher.update(ciphertext));
    this.memory.note(ciphertext.length);
  }

  private consumePlaintext(plaintext: Buffer): void {
    if (plaintext.length === 0) return;
    this.cksum.update(plaintext);
    this.plaintextBytes += plaintext.length;
    if (this.failure !== undefined) return;
    this.gathered.push(plaintext);
    this.gatheredBytes += plaintext.length;
    if (this.gatheredBytes >= WRITE_GROUP_BYTES) this.writeGathered();
  }

  /** Hands the gathered plaintext to the sink in one go (it writes them with one writev). */
  private writeGathered(): void {
    if (this.gathered.length === 0) return;
    const buffers = this.gathered;
    this.gathered = [];
    this.gatheredBytes = 0;
    if (this.failure !== undefined) return;
    for (const plaintext of buffers) {
      const length = plaintext.length;
      this.queued += length;
      this.inFlight++;
      this.sink.write(plaintext).then(
        () => this.settled(length),
        (err: unknown) => {
          this.failure ??= err;
          this.settled(length);
        },
      );
    }
  }

  private settled(length: number): void {
    this.queued -= length;
    this.inFlight--;
    if (this.inFlight === 0) for (const wake of this.idleWaiters.splice(0)) wake();
  }
}
