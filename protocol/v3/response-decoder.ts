/**
 * The client's response decoder: the framer (protocol/framer.ts) under the response layout,
 * tolerating the server quirks of §9: a 1600 that declares payload 0 and sends the 16-byte id
 * anyway, and undeclared bytes after a 1604 (see `skipIfNext`).
 */
import { Framer, type FrameSink } from '../framer';
import { DEFAULT_RESPONSE_PAYLOAD_LIMIT, Size } from './constants';
import { decodeResponseFrame, type DecodedResponse } from './decode';
import { readResponseHeader, responseFrameLayout } from './frame-layouts';

export interface ResponseDecoderOptions {
  /** Largest payload any response may declare; past it the stream is treated as broken. */
  readonly maxPayload?: number;
}

export type ResponseCallback = (result: DecodedResponse) => void;

/** The callback before the first push; frames reach a callback only inside push. */
const NO_CALLBACK: ResponseCallback = () => undefined;

export class ResponseDecoder {
  private readonly framer: Framer;
  private junk: Buffer | undefined;
  private junkMatched = 0;
  /** The callback of the push running now. */
  private onResponse: ResponseCallback = NO_CALLBACK;
  private readonly frames: FrameSink = {
    frame: (buf, offset, _code, payloadSize) => {
      const start = offset + Size.RESPONSE_HEADER;
      const payload = buf.subarray(start, start + payloadSize);
      this.onResponse(decodeResponseFrame(readResponseHeader(buf, offset), payload));
    },
  };

  constructor(options: ResponseDecoderOptions = {}) {
    this.framer = new Framer(
      responseFrameLayout(options.maxPayload ?? DEFAULT_RESPONSE_PAYLOAD_LIMIT, (buf, offset) =>
        this.skipJunk(buf, offset),
      ),
    );
  }

  get failed(): boolean {
    return this.framer.failed;
  }

  get inFrame(): boolean {
    return this.framer.inFrame;
  }

  /** Bytes held for an incomplete response (at most one frame). */
  get bufferedBytes(): number {
    return this.framer.bufferedBytes;
  }

  /**
   * Some servers follow a 1604 with an undeclared copy of the request's file-name field (§9).
   * Call this from the 1604's callback (or after it, before the next push): from the next frame
   * boundary on, bytes equal to a prefix of `bytes` are dropped, also when they arrived in the
   * same chunk as the 1604 or are split over later chunks; the first byte that differs ends the
   * skipping. A real header starts with the version byte, which no file name can start with
   * (control character), so real responses are never eaten.
   */
  skipIfNext(bytes: Buffer): void {
    this.junk = bytes;
    this.junkMatched = 0;
  }

  /**
   * Feeds one chunk; `onResponse` gets every response in order, valid or not. Throws a fatal
   * ProtocolError (PAYLOAD_TOO_LARGE, DECODER_FAILED) on a framing error.
   */
  push(chunk: Buffer, onResponse: ResponseCallback): void {
    this.onResponse = onResponse;
    this.framer.push(chunk, this.frames);
  }

  /** Drops the expected junk at `offset` (called at frame boundaries); returns where to go on. */
  private skipJunk(buf: Buffer, offset: number): number {
    const junk = this.junk;
    if (!junk) return offset;
    let i = offset;
    while (i < buf.length && this.junkMatched < junk.length && buf[i] === junk[this.junkMatched]) {
      i++;
      this.junkMatched++;
    }
    // Keep skipping into the next chunk only if this one ended while still matching.
    if (this.junkMatched >= junk.length || i < buf.length) this.junk = undefined;
    return i;
  }
}
