/**
 * One upload in progress (docs/protocol.md §5.4): ciphertext in, through one streaming AES-CBC
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
import { SendFileFrameMatcher, type SendFileFrameFields } from '../../protocol/v3/send-file-view';
import { sessionError, SessionErrorCode } from './session-error';
import type { UploadSink } from '../storage/types';
import type { BufferBudget } from '../transport/buffer-budget';
import type { MemoryNudge } from '../transport/gc-nudge';

/** The fields of a packet that decide whether it continues this upload (§5.4). */
export type UploadFrameFields = SendFileFrameFields;

/**
 * Ciphertext gathered before one decipher update: per-packet updates of 1 KiB cost several
 * times more. Not larger: every plaintext buffer is garbage once written, so bigger batches
 * raise peak memory without saving much more (writes are grouped below anyway).
 */
export const BATCH_BYTES = 64 * 1024;
/**
 * Plaintext handed to the sink at once: every write handed to the thread pool wakes a worker
 * that competes with this thread for a core, so small writes cost more than the AES.
 */
const WRITE_GROUP_BYTES = 1024 * 1024;
/**
 * The write group while the server-wide buffer budget is under pressure (many uploads open):
 * plaintext goes to the disk in small groups instead of piling up per upload.
 */
const SMALL_WRITE_GROUP_BYTES = 64 * 1024;

const EMPTY = Buffer.alloc(0);

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
  /** Takes the publish back when the row cannot be written (Published.unpublish). */
  readonly unpublish: () => Promise<void>;
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
  private batch: Buffer = EMPTY;
  /** Size of the batch while it exists: no more than the upload's ciphertext. */
  private readonly batchSize: number;
  private readonly matcher: SendFileFrameMatcher;
  private readonly nameKey: string;

  constructor(
    readonly id: UploadIdentity,
    aesKey: Buffer,
    private readonly sink: UploadSink,
    readonly startedAt: number,
    private readonly budget?: BufferBudget,
    private readonly memory?: MemoryNudge,
  ) {
    // Small files get a small batch: no more than their ciphertext.
    this.batchSize = Math.min(BATCH_BYTES, id.contentSize);
    this.decipher = createFileDecipher(aesKey);
    this.matcher = new SendFileFrameMatcher(id);
    this.nameKey = Buffer.from(id.fileName, 'utf8').toString('latin1');
  }

  /** True when `fields` (and the sender) are those of this upload's packet 1 (§9). */
  matches(clientId: Buffer, fields: UploadFrameFields): boolean {
    const id = this.id;
    return (
      fields.contentSize === id.contentSize &&
      fields.origSize === id.origSize &&
      fields.totalPackets === id.totalPackets &&
      fields.nameKey === this.nameKey &&
      clientId.equals(id.clientId)
    );
  }

  /**
   * THE predicate: does a packet continue this upload? Same sender, the next packet number,
   * every repeated field equal to packet 1's (§5.4, §9). `continuesFrame` is the same test on a
   * raw frame, for the fast path.
   */
  continues(clientId: Buffer, fields: UploadFrameFields): boolean {
    return fields.packetNumber === this.nextPacket && this.matches(clientId, fields);
  }

  /** True for the packet that completes the upload (it is answered, so it leaves the fast path). */
  isLast(fields: UploadFrameFields): boolean {
    return fields.packetNumber >= this.id.totalPackets;
  }

  /**
   * `continues` on a raw 1028 frame whose header starts at `frame` of `buf`, for the packets
   * that are not the last: true for the next packet of this upload that is not its last.
   */
  continuesFrame(buf: Buffer, frame: number, payloadSize: number): boolean {
    if (!this.matcher.matches(buf, frame, payloadSize)) return false;
    const packet = this.matcher.packetNumberAt(buf, frame);
    return packet === this.nextPacket && packet < this.id.totalPackets;
  }

  /** Takes the content of a raw frame `continuesFrame` accepted, without making a view. */
  acceptFrameContent(buf: Buffer, frame: number, payloadSize: number): void {
    const m = this.matcher;
    this.acceptRange(buf, m.contentStart(frame), m.frameEnd(frame, payloadSize));
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
    if (take > this.batchSize - this.batchLength) this.flush();
    if (take >= this.batchSize) {
      this.decipherChunk(source.subarray(start, start + take));
      return;
    }
    // Allocated on demand: `relieve` drops it, so a stalled upload holds no batch.
    if (this.batch.length === 0) this.batch = Buffer.allocUnsafe(this.batchSize);
    source.copy(this.batch, this.batchLength, start, start + take);
    this.batchLength += take;
  }

  /** Deciphers what the batch holds and queues the plaintext for the sink. */
  private flush(): void {
    if (this.batchLength === 0) return;
    const length = this.batchLength;
    this.batchLength = 0;
    this.decipherChunk(this.batch.subarray(0, length));
  }

  /**
   * The server holds many uploads' data: hand what this one gathered to the disk now instead of
   * keeping it until a write group fills (a stalled upload would keep it indefinitely).
   */
  relieve(): void {
    if (this.finished || this.failure !== undefined) return;
    this.flush();
    this.batch = EMPTY;
    this.writeGathered();
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
    const published = await this.sink.commit();
    this.finished = true;
    return {
      pathName: published.objectKey,
      unpublish: () => published.unpublish(),
      cksum: this.cksum.digest(),
      plaintextBytes: this.plaintextBytes,
    };
  }

  /** Drops the upload: waits for writes in flight, removes the temp file. Safe to repeat. */
  async abort(): Promise<void> {
    if (this.finished) return;
    this.failure ??= new Error('upload aborted');
    this.budget?.remove(this.gatheredBytes);
    this.gathered = [];
    this.gatheredBytes = 0;
    await this.drain().catch(() => undefined);
    await this.sink.abort();
  }

  private decipherChunk(ciphertext: Buffer): void {
    this.consumePlaintext(this.decipher.update(ciphertext));
    this.memory?.note(ciphertext.length);
  }

  private consumePlaintext(plaintext: Buffer): void {
    if (plaintext.length === 0) return;
    this.cksum.update(plaintext);
    this.plaintextBytes += plaintext.length;
    if (this.failure !== undefined) return;
    this.gathered.push(plaintext);
    this.gatheredBytes += plaintext.length;
    this.budget?.add(plaintext.length);
    const group = this.budget?.underPressure ? SMALL_WRITE_GROUP_BYTES : WRITE_GROUP_BYTES;
    if (this.gatheredBytes >= group) this.writeGathered();
  }

  /** Hands the gathered plaintext to the sink in one go (it writes them with one writev). */
  private writeGathered(): void {
    if (this.gathered.length === 0) return;
    const buffers = this.gathered;
    this.gathered = [];
    this.gatheredBytes = 0;
    if (this.failure !== undefined) {
      for (const plaintext of buffers) this.budget?.remove(plaintext.length);
      return;
    }
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
    this.budget?.remove(length);
    this.inFlight--;
    if (this.inFlight === 0) for (const wake of this.idleWaiters.splice(0)) wake();
  }
}
