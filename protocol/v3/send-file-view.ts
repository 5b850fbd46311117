/**
 * Zero-copy reading of 1028 frames (§3), so no code outside protocol/ knows a byte offset.
 *
 * Usage, in the request sink's fast path (one view per session, nothing allocated per packet):
 *
 *   private readonly packet = new SendFileView();
 *   fast(buf, offset, code, payloadSize) {
 *     if (code !== RequestCode.SEND_FILE || !this.packet.wrap(buf, offset, payloadSize)) {
 *       return false;
 *     }
 *     if (this.packet.packetNumber !== expected || !matcher.matches(buf, offset, payloadSize)) {
 *       return false;
 *     }
 *     sink.acceptRange(buf, this.packet.contentStart, this.packet.contentEnd);
 *     return true;
 *   }
 *
 * `SendFileFrameMatcher` compares a raw packet with packet 1 of an upload in one native compare.
 * `readSendFileFrame(payload)` reads the fixed fields of a 1028 that failed to decode (its
 * name need not decode: `nameKey` is the identity of "the same upload", §9).
 * `readRequestHeader(buf, offset)` (frame-layouts.ts) reads any request header.
 * A view is valid only while `buf` is: inside the sink call that handed it out.
 */
import { RequestCode, RequestHeaderAt, SendFileAt, Size } from './constants';
import { encodeSendFilePrefix } from './encode';
import { decodeFileName } from './fields';

const EMPTY = Buffer.alloc(0);
const NUL = 0x00;

/** The raw file-name field up to its first NUL (all 255 bytes without one), as latin1. */
function nameKeyAt(buf: Buffer, start: number): string {
  const end = start + Size.STRING255;
  const nul = buf.indexOf(NUL, start);
  return buf.toString('latin1', start, nul < 0 || nul > end ? end : nul);
}

/** A reusable view over one 1028 frame: header offset in a buffer, typed getters. */
export class SendFileView {
  private buf: Buffer = EMPTY;
  /** Where the frame's header starts in `buf`. */
  private at = 0;
  private size = 0;

  /**
   * Points the view at the 1028 frame whose header starts at `offset` of `buf`, with
   * `payloadSize` payload bytes following it. False, and the view unusable, when the payload is
   * too short for the fixed fields or `buf` does not hold the whole frame.
   */
  wrap(
    buf: Buffer,
    offset: number,
    payloadSize = buf.readUInt32LE(offset + RequestHeaderAt.PAYLOAD_SIZE),
  ): boolean {
    if (
      payloadSize < Size.SEND_FILE_FIXED ||
      buf.length - offset < Size.REQUEST_HEADER + payloadSize
    ) {
      this.buf = EMPTY;
      return false;
    }
    this.buf = buf;
    this.at = offset;
    this.size = payloadSize;
    return true;
  }

  private get payloadAt(): number {
    return this.at + Size.REQUEST_HEADER;
  }

  /** The header's client id, a view. */
  get clientId(): Buffer {
    return this.buf.subarray(this.at, this.at + Size.CLIENT_ID);
  }

  /** True when the header's client id is `id`, without making a view. */
  hasClientId(id: Buffer): boolean {
    return id.compare(this.buf, this.at, this.at + Size.CLIENT_ID) === 0;
  }

  get version(): number {
    return this.buf[this.at + RequestHeaderAt.VERSION];
  }

  /** Payload bytes after the header, as declared (fixed fields plus content). */
  get payloadSize(): number {
    return this.size;
  }

  get contentSize(): number {
    return this.buf.readUInt32LE(this.payloadAt + SendFileAt.CONTENT_SIZE);
  }

  get origSize(): number {
    return this.buf.readUInt32LE(this.payloadAt + SendFileAt.ORIG_SIZE);
  }

  get packetNumber(): number {
    return this.buf.readUInt16LE(this.payloadAt + SendFileAt.PACKET_NUMBER);
  }

  get totalPackets(): number {
    return this.buf.readUInt16LE(this.payloadAt + SendFileAt.TOTAL_PACKETS);
  }

  /** The raw 255-byte file-name field, a view; it may not decode. */
  get fileNameField(): Buffer {
    const start = this.payloadAt + SendFileAt.FILE_NAME;
    return this.buf.subarray(start, start + Size.STRING255);
  }

  /**
   * The name bytes up to the first NUL as latin1: the identity of "the same upload", also for a
   * name that does not decode (§9).
   */
  nameKey(): string {
    return nameKeyAt(this.buf, this.payloadAt + SendFileAt.FILE_NAME);
  }

  /** The decoded file name; throws a ProtocolError (BAD_STRING, BAD_FILE_NAME) if it is bad. */
  fileName(): string {
    return decodeFileName(this.buf, this.payloadAt + SendFileAt.FILE_NAME, RequestCode.SEND_FILE);
  }

  /** Offset in the buffer of the packet's first content byte. */
  get contentStart(): number {
    return this.payloadAt + SendFileAt.CONTENT;
  }

  /** Offset in the buffer after the content, clipped to content size (§9: padding dropped). */
  get contentEnd(): number {
    const start = this.contentStart;
    return start + Math.min(this.size - Size.SEND_FILE_FIXED, this.contentSize);
  }

  /** The packet's content, a view clipped to content size (§9: padding dropped). */
  content(): Buffer {
    return this.buf.subarray(this.contentStart, this.contentEnd);
  }
}

/** The fixed fields of a 1028, read without validation. */
export interface SendFileFrameFields {
  readonly contentSize: number;
  readonly origSize: number;
  readonly packetNumber: number;
  readonly totalPackets: number;
  /** See `SendFileView.nameKey`. */
  readonly nameKey: string;
}

/**
 * The fixed fields of a 1028 payload (for instance one that failed to decode), unvalidated;
 * undefined when the payload is too short to hold them.
 */
export function readSendFileFrame(payload: Buffer): SendFileFrameFields | undefined {
  if (payload.length < Size.SEND_FILE_FIXED) return undefined;
  return {
    contentSize: payload.readUInt32LE(SendFileAt.CONTENT_SIZE),
    origSize: payload.readUInt32LE(SendFileAt.ORIG_SIZE),
    packetNumber: payload.readUInt16LE(SendFileAt.PACKET_NUMBER),
    totalPackets: payload.readUInt16LE(SendFileAt.TOTAL_PACKETS),
    nameKey: nameKeyAt(payload, SendFileAt.FILE_NAME),
  };
}

/** What every packet of one upload repeats (§5), with the sender's client id. */
export interface SendFileIdentity {
  readonly clientId: Buffer;
  /** A valid string255 text: it came from a decoded packet 1. */
  readonly fileName: string;
  readonly contentSize: number;
  readonly origSize: number;
  readonly totalPackets: number;
}

/** Header and fixed-field bytes a matcher compares or copies. */
const PREFIX = Size.REQUEST_HEADER + Size.SEND_FILE_FIXED;
const PACKET_AT = Size.REQUEST_HEADER + SendFileAt.PACKET_NUMBER;

/**
 * Recognises later packets of one upload on raw frames (header at `frame` of `buf`): same client
 * id, content size, orig size, total packets and file-name field, byte for byte as a canonical
 * sender writes them (name NUL padded, §2). Version, code, payload size and packet number are
 * not compared: the bytes that vary are copied from the frame into the template first, so one
 * native compare covers the rest. A sender that leaves stale bytes after the name's NUL does not
 * match; its packets take the decoding path instead.
 */
export class SendFileFrameMatcher {
  private readonly template: Buffer;

  constructor(identity: SendFileIdentity) {
    this.template = encodeSendFilePrefix(identity.clientId, { ...identity, packetNumber: 0 }, 0);
  }

  /** The packet number of the 1028 frame at `frame`. */
  packetNumberAt(buf: Buffer, frame: number): number {
    return buf.readUInt16LE(frame + PACKET_AT);
  }

  /** True when the 1028 frame at `frame`, with `payloadSize`, belongs to the upload. */
  matches(buf: Buffer, frame: number, payloadSize: number): boolean {
    if (payloadSize < Size.SEND_FILE_FIXED) return false;
    const t = this.template;
    for (let i = RequestHeaderAt.VERSION; i < Size.REQUEST_HEADER; i++) t[i] = buf[frame + i];
    t[PACKET_AT] = buf[frame + PACKET_AT];
    t[PACKET_AT + 1] = buf[frame + PACKET_AT + 1];
    return t.compare(buf, frame, frame + PREFIX) === 0;
  }

  /** Offset of the first content byte of the frame at `frame`. */
  contentStart(frame: number): number {
    return frame + PREFIX;
  }

  /** Offset after the frame at `frame` (its content may run past content size, §9). */
  frameEnd(frame: number, payloadSize: number): number {
    return frame + Size.REQUEST_HEADER + payloadSize;
  }
}
