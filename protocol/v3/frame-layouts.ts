/**
 * Version-3 headers (§1) for the framer: the 23-byte request header, the 7-byte response header
 * with the §9 quirks, per-code payload limits, and readers of a header at (buffer, offset).
 */
import type { FrameLayout } from '../framer';
import {
  DEFAULT_MAX_CHUNK,
  DEFAULT_UNKNOWN_PAYLOAD_LIMIT,
  REQUEST_PAYLOAD_SIZE,
  RequestCode,
  RequestHeaderAt,
  ResponseCode,
  ResponseHeaderAt,
  Size,
  isRequestCode,
} from './constants';
import type { RequestHeader, ResponseHeader } from './messages';

export interface RequestLimits {
  /** Largest 1028 content (bytes after the 267 fixed bytes) accepted. */
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

/** The request header at `offset`; `clientId` is a view into `buf`. */
export function readRequestHeader(buf: Buffer, offset: number): RequestHeader {
  return {
    clientId: buf.subarray(offset, offset + Size.CLIENT_ID),
    version: buf[offset + RequestHeaderAt.VERSION],
    code: buf.readUInt16LE(offset + RequestHeaderAt.CODE),
    payloadSize: buf.readUInt32LE(offset + RequestHeaderAt.PAYLOAD_SIZE),
  };
}

/** The response header at `offset`, with the payload size as declared. */
export function readResponseHeader(buf: Buffer, offset: number): ResponseHeader {
  return {
    version: buf[offset + ResponseHeaderAt.VERSION],
    code: buf.readUInt16LE(offset + ResponseHeaderAt.CODE),
    payloadSize: buf.readUInt32LE(offset + ResponseHeaderAt.PAYLOAD_SIZE),
  };
}

/** Request framing (§1) under `limits`. */
export function requestFrameLayout(limits: RequestLimits = DEFAULT_REQUEST_LIMITS): FrameLayout {
  // The code of the bulk of the traffic gets its limit without a lookup.
  const sendFileLimit = requestPayloadLimit(RequestCode.SEND_FILE, limits);
  return {
    headerSize: Size.REQUEST_HEADER,
    readCode: (buf, offset) => buf.readUInt16LE(offset + RequestHeaderAt.CODE),
    readPayloadSize: (buf, offset) => buf.readUInt32LE(offset + RequestHeaderAt.PAYLOAD_SIZE),
    payloadLimit: (code) =>
      code === RequestCode.SEND_FILE ? sendFileLimit : requestPayloadLimit(code, limits),
  };
}

/**
 * Response framing (§1) with the §9 quirks of deployed servers: a 1600 that declares payload 0
 * still sends its 16-byte id, and `skipBetweenFrames` (the decoder's junk skipping after a 1604)
 * runs at every frame boundary. Every code shares one payload limit.
 */
export function responseFrameLayout(
  maxPayload: number,
  skipBetweenFrames?: (buf: Buffer, offset: number) => number,
): FrameLayout {
  return {
    headerSize: Size.RESPONSE_HEADER,
    readCode: (buf, offset) => buf.readUInt16LE(offset + ResponseHeaderAt.CODE),
    readPayloadSize: (buf, offset) => buf.readUInt32LE(offset + ResponseHeaderAt.PAYLOAD_SIZE),
    payloadLimit: () => maxPayload,
    wirePayloadSize: (code, payloadSize) =>
      code === ResponseCode.REGISTERED && payloadSize === 0 ? Size.CLIENT_ID : payloadSize,
    ...(skipBetweenFrames === undefined ? {} : { skipBetweenFrames }),
  };
}
