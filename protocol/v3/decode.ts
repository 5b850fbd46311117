/**
 * Request and response decoders: frames (frame-decoder.ts) turned into validated messages.
 * A bad message inside a well-framed packet fails that message only; a framing error fails
 * the decoder (§9).
 */
import {
  DEFAULT_MAX_CHUNK,
  DEFAULT_RESPONSE_PAYLOAD_LIMIT,
  DEFAULT_UNKNOWN_PAYLOAD_LIMIT,
  MAX_U32,
  REQUEST_PAYLOAD_SIZE,
  RESPONSE_PAYLOAD_SIZE,
  RequestCode,
  ResponseCode,
  Size,
  isRequestCode,
  isResponseCode,
} from './constants';
import {
  ProtocolError,
  ProtocolErrorCode,
  assertNever,
  isProtocolError,
  protocolError,
} from '../errors';
import { decodeFileName, decodeString255, paddedLength } from './fields';
import { FrameDecoder, type FrameLayout } from '../frame-decoder';
import type {
  Request,
  RequestFrame,
  RequestHeader,
  Response,
  ResponseFrame,
  ResponseHeader,
  SendFileRequest,
} from './messages';

// ---------------------------------------------------------------- requests

export interface RequestLimits {
  /** Largest 1028 content (bytes after the 267 fixed bytes) accepted. Default 64 KiB. */
  readonly maxChunk: number;
  /** Largest payload an unknown code may declare and still be skipped with 1607. */
  readonly unknownPayload: number;
}

export const DEFAULT_REQUEST_LIMITS: RequestLimits = {
  maxChunk: DEFAULT_MAX_CHUNK,
  unknownPayload: DEFAULT_UNKNOWN_PAYLOAD_LIMIT,
};

/** Per-code payload limit: fixed-size requests their exact size, 1028 fixed part plus a chunk. */
export function requestPayloadLimit(code: number, limits: RequestLimits): number {
  if (!isRequestCode(code)) return limits.unknownPayload;
  if (code === RequestCode.SEND_FILE) return Size.SEND_FILE_FIXED + limits.maxChunk;
  return REQUEST_PAYLOAD_SIZE[code];
}

function readRequestHeader(buf: Buffer, offset: number): RequestHeader {
  return {
    clientId: buf.subarray(offset, offset + Size.CLIENT_ID),
    version: buf.readUInt8(offset + Size.CLIENT_ID),
    code: buf.readUInt16LE(offset + Size.CLIENT_ID + Size.VERSION),
    payloadSize: buf.readUInt32LE(offset + Size.CLIENT_ID + Size.VERSION + Size.CODE),
  };
}

function checkPayloadSize(frame: { code: number; payload: Buffer }, expected: number): void {
  if (frame.payload.length !== expected) {
    throw protocolError(
      ProtocolErrorCode.BAD_SIZE,
      `payload of code ${frame.code} must be ${expected} bytes, got ${frame.payload.length}`,
      frame.code,
    );
  }
}

function decodeSendFile(frame: RequestFrame): SendFileRequest {
  const code = RequestCode.SEND_FILE;
  const p = frame.payload;
  if (p.length < Size.SEND_FILE_FIXED) {
    throw protocolError(
      ProtocolErrorCode.BAD_SIZE,
      `payload of 1028 must be at least ${Size.SEND_FILE_FIXED} bytes, got ${p.length}`,
      code,
    );
  }
  const contentSize = p.readUInt32LE(0);
  const origSize = p.readUInt32LE(4);
  const packetNumber = p.readUInt16LE(8);
  const totalPackets = p.readUInt16LE(10);
  const fileName = decodeFileName(p, 12, code);
  const expectedContent = paddedLength(origSize);
  if (expectedContent > MAX_U32 || contentSize !== expectedContent) {
    throw protocolError(
      ProtocolErrorCode.BAD_CONTENT_SIZE,
      `content size ${contentSize} is not the PKCS#7 length of orig size ${origSize}`,
      code,
    );
  }
  if (totalPackets === 0 || packetNumber === 0 || packetNumber > totalPackets) {
    throw protocolError(
      ProtocolErrorCode.BAD_PACKET_NUMBER,
      `packet ${packetNumber} of ${totalPackets} is out of range`,
      code,
    );
  }
  return {
    code,
    clientId: frame.clientId,
    contentSize,
    origSize,
    packetNumber,
    totalPackets,
    fileName,
    content: p.subarray(Size.SEND_FILE_FIXED),
  };
}

/**
 * Validates a request frame (§2, §3, §9). Throws a non-fatal ProtocolError for a bad message.
 * The 1028 `clientId` and `content` are views into the frame; other buffers are copies.
 */
export function decodeRequest(frame: RequestFrame): Request {
  const { code } = frame;
  if (!isRequestCode(code)) {
    throw protocolError(ProtocolErrorCode.UNKNOWN_CODE, `unknown request code ${code}`, code);
  }
  if (code === RequestCode.SEND_FILE) return decodeSendFile(frame);
  checkPayloadSize(frame, REQUEST_PAYLOAD_SIZE[code]);
  const clientId = Buffer.from(frame.clientId);
  switch (code) {
    case RequestCode.REGISTER:
    case RequestCode.RECONNECT:
      return { code, clientId, name: decodeString255(frame.payload, 0, code) };
    case RequestCode.SEND_PUBLIC_KEY:
      return {
        code,
        clientId,
        name: decodeString255(frame.payload, 0, code),
        publicKey: Buffer.from(frame.payload.subarray(Size.STRING255)),
      };
    case RequestCode.CHECKSUM_OK:
    case RequestCode.CHECKSUM_RETRY:
    case RequestCode.CHECKSUM_ABORT:
      return { code, clientId, fileName: decodeFileName(frame.payload, 0, code) };
    default:
      return assertNever(code, 'request code');
  }
}

export type DecodedRequest =
  | { readonly ok: true; readonly header: RequestHeader; readonly request: Request }
  | {
      readonly ok: false;
      readonly header: RequestHeader;
      readonly error: ProtocolError;
      /** View of the refused frame's payload (valid only in the callback), for diagnostics. */
      readonly payload: Buffer;
    };

/** Runs `decode`, turning a ProtocolError into a failed result; anything else propagates. */
function attempt<M>(decode: () => M): { ok: true; value: M } | { ok: false; error: ProtocolError } {
  try {
    return { ok: true, value: decode() };
  } catch (err) {
    if (isProtocolError(err)) return { ok: false, error: err };
    throw err;
  }
}

/**
 * Decodes one complete frame: the request, or the ProtocolError of a bad message inside a
 * well-framed packet (§9: it fails that message only). Anything else propagates.
 */
export function decodeRequestFrame(header: RequestHeader, payload: Buffer): DecodedRequest {
  const decoded = attempt(() => decodeRequest({ ...header, payload }));
  return decoded.ok
    ? { ok: true, header, request: decoded.value }
    : { ok: false, header, error: decoded.error, payload };
}

/** Server-side incremental decoder: TCP chunks in, validated requests out, in order. */
export class RequestDecoder {
  private readonly frames: FrameDecoder<RequestHeader>;

  constructor(limits: Partial<RequestLimits> = {}) {
    const full: RequestLimits = { ...DEFAULT_REQUEST_LIMITS, ...limits };
    const layout: FrameLayout<RequestHeader> = {
      headerSize: Size.REQUEST_HEADER,
      readHeader: readRequestHeader,
      payloadLimit: (code) => requestPayloadLimit(code, full),
    };
    this.frames = new FrameDecoder(layout);
  }

  get failed(): boolean {
    return this.frames.failed;
  }

  /** True while a request has started arriving but is not complete. */
  get inFrame(): boolean {
    return this.frames.inFrame;
  }

  get bufferedBytes(): number {
    return this.frames.bufferedBytes;
  }

  /**
   * Feeds one chunk; `onRequest` gets every request in order, valid or not. Throws a fatal
   * ProtocolError (PAYLOAD_TOO_LARGE) on a framing error. Views die when `onRequest` returns.
   */
  push(chunk: Buffer, onRequest: (result: DecodedRequest) => void): void {
    this.frames.push(chunk, (header, payload) => onRequest(decodeRequestFrame(header, payload)));
  }
}

// ---------------------------------------------------------------- responses

function readResponseHeader(buf: Buffer, offset: number): ResponseHeader {
  return {
    version: buf.readUInt8(offset),
    code: buf.readUInt16LE(offset + Size.VERSION),
    payloadSize: buf.readUInt32LE(offset + Size.VERSION + Size.CODE),
  };
}

/** Validates a response frame (§4). Throws a non-fatal ProtocolError for a bad message. */
export function decodeResponse(frame: ResponseFrame): Response {
  const { code, payload } = frame;
  if (!isResponseCode(code)) {
    throw protocolError(ProtocolErrorCode.UNKNOWN_CODE, `unknown response code ${code}`, code);
  }
  checkPayloadSize(frame, RESPONSE_PAYLOAD_SIZE[code]);
  const id = (): Buffer => Buffer.from(payload.subarray(0, Size.CLIENT_ID));
  switch (code) {
    case ResponseCode.REGISTERED:
    case ResponseCode.ACKNOWLEDGED:
    case ResponseCode.RECONNECT_REFUSED:
      return { code, clientId: id() };
    case ResponseCode.REGISTRATION_FAILED:
    case ResponseCode.GENERAL_ERROR:
      return { code };
    case ResponseCode.KEY_ACCEPTED:
    case ResponseCode.RECONNECTED:
      return { code, clientId: id(), wrappedKey: Buffer.from(payload.subarray(Size.CLIENT_ID)) };
    case ResponseCode.FILE_RECEIVED: {
      const at = Size.CLIENT_ID;
      return {
        code,
        clientId: id(),
        contentSize: payload.readUInt32LE(at),
        fileName: decodeString255(payload, at + 4, code),
        cksum: payload.readUInt32LE(at + 4 + Size.STRING255),
      };
    }
    default:
      return assertNever(code, 'response code');
  }
}

export type DecodedResponse =
  | { readonly ok: true; readonly header: ResponseHeader; readonly response: Response }
  | { readonly ok: false; readonly header: ResponseHeader; readonly error: ProtocolError };

export interface ResponseDecoderOptions {
  /** Largest payload any response may declare; past it the stream is treated as broken. */
  readonly maxPayload?: number;
}

/**
 * Client-side incremental decoder. Tolerates the server quirks of §9: a 1600 that declares
 * payload 0 and sends the 16-byte id anyway, and undeclared bytes after a 1604 (see
 * `skipIfNext`).
 */
export class ResponseDecoder {
  private readonly frames: FrameDecoder<ResponseHeader>;
  private junk: Buffer | undefined;
  private junkMatched = 0;

  constructor(options: ResponseDecoderOptions = {}) {
    const maxPayload = options.maxPayload ?? DEFAULT_RESPONSE_PAYLOAD_LIMIT;
    this.frames = new FrameDecoder<ResponseHeader>({
      headerSize: Size.RESPONSE_HEADER,
      readHeader: readResponseHeader,
      payloadLimit: () => maxPayload,
      wirePayloadSize: (h) =>
        h.code === ResponseCode.REGISTERED && h.payloadSize === 0 ? Size.CLIENT_ID : h.payloadSize,
      skipBetweenFrames: (buf, offset) => this.skipJunk(buf, offset),
    });
  }

  get failed(): boolean {
    return this.frames.failed;
  }

  get inFrame(): boolean {
    return this.frames.inFrame;
  }

  /** Bytes held for an incomplete response (at most one frame). */
  get bufferedBytes(): number {
    return this.frames.bufferedBytes;
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

  push(chunk: Buffer, onResponse: (result: DecodedResponse) => void): void {
    this.frames.push(chunk, (header, payload) => {
      const decoded = attempt(() => decodeResponse({ ...header, payload }));
      onResponse(
        decoded.ok
          ? { ok: true, header, response: decoded.value }
          : { ok: false, header, error: decoded.error },
      );
    });
  }
}
