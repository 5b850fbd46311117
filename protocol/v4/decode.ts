/**
 * Decoders of version-4 frames (docs/protocol-v4.md §3, §4) and the frame layouts that feed
 * them. Payload size limits are checked when a frame header completes (FrameDecoder), so a
 * peer cannot make the other side buffer more than one legal frame.
 */
import { assertNever, ProtocolErrorCode, protocolError } from '../errors';
import type { FrameLayout } from '../framer';
import {
  FRAME_HEADER_SIZE,
  IdentityStatus,
  isWireErrorCode,
  RequestCode,
  RequestPayloadLimit,
  ResponseCode,
  ResponsePayloadLimit,
  Size,
  WireErrorCode,
} from './constants';
import { checkFileName, FieldReader } from './fields';
import { decodeFileRequest, decodeFileResponse } from './file-codec';
import { decodeKeys, decodeKeySet } from './key-set';
import type { Request, Response } from './messages';

function readCode(buf: Buffer, offset: number): number {
  return buf.readUInt16LE(offset);
}

function readPayloadSize(buf: Buffer, offset: number): number {
  return buf.readUInt32LE(offset + 2);
}

const REQUEST_CODES: ReadonlySet<number> = new Set(Object.values(RequestCode));
const RESPONSE_CODES: ReadonlySet<number> = new Set(Object.values(ResponseCode));

function unknownCode(code: number): never {
  throw protocolError(ProtocolErrorCode.UNKNOWN_CODE, `unknown code 0x${code.toString(16)}`, code);
}

/**
 * The server's layout. `chunkSize()` is the DATA limit negotiated on this connection (0 before
 * HELLO, so DATA before it is a framing error). An unknown code is refused at its header too:
 * its size means nothing, so the stream cannot be followed past it.
 */
export function requestFrameLayout(chunkSize: () => number): FrameLayout {
  return {
    headerSize: FRAME_HEADER_SIZE,
    readCode,
    readPayloadSize,
    payloadLimit(code) {
      if (!REQUEST_CODES.has(code)) return unknownCode(code);
      if (code === RequestCode.UPLOAD_DATA || code === RequestCode.UPLOAD_DATA_DEFLATE) {
        return chunkSize();
      }
      return RequestPayloadLimit[code as keyof typeof RequestPayloadLimit];
    },
  };
}

export function responseFrameLayout(): FrameLayout {
  return {
    headerSize: FRAME_HEADER_SIZE,
    readCode,
    readPayloadSize,
    payloadLimit(code) {
      if (!RESPONSE_CODES.has(code)) return unknownCode(code);
      return ResponsePayloadLimit[code as keyof typeof ResponsePayloadLimit];
    },
  };
}

/** The payload of the frame a FrameSink was handed. */
export function framePayload(buf: Buffer, offset: number, payloadSize: number): Buffer {
  return buf.subarray(offset + FRAME_HEADER_SIZE, offset + FRAME_HEADER_SIZE + payloadSize);
}

/**
 * Decodes a request payload. DATA keeps a view (no copy): the caller copies it if it keeps the
 * bytes past the frame callback.
 */
export function decodeRequest(messageCode: number, payload: Buffer): Request {
  if (!REQUEST_CODES.has(messageCode)) return unknownCode(messageCode);
  const code = messageCode as RequestCode;
  const reader = new FieldReader(payload, code);
  let message: Request;
  switch (code) {
    case RequestCode.HELLO:
      message = { code, version: reader.u16(), maxChunk: reader.u32() };
      break;
    case RequestCode.REGISTER:
      message = { code, name: reader.text() };
      break;
    case RequestCode.MIGRATE:
      message = {
        code,
        clientId: reader.bytes(Size.CLIENT_ID),
        name: reader.text(),
        signature: reader.sizedBytes(Size.MAX_SIGNATURE),
      };
      break;
    case RequestCode.UPLOAD_BEGIN: {
      const size = reader.u64();
      const check = reader.bytes(Size.SHA256);
      message = { code, size, check, fileName: checkFileName(reader.text(), code) };
      break;
    }
    case RequestCode.UPLOAD_DATA:
      if (payload.length === 0) {
        throw protocolError(ProtocolErrorCode.BAD_SIZE, 'empty DATA frame', code);
      }
      return { code, data: payload };
    case RequestCode.UPLOAD_END:
      message = { code, sha256: reader.bytes(Size.SHA256) };
      break;
    case RequestCode.KEYS:
      return decodeKeys(payload);
    case RequestCode.UPLOAD_DATA_DEFLATE:
    case RequestCode.UPLOAD_BEGIN_FLAGS:
    case RequestCode.LIST:
    case RequestCode.GET:
    case RequestCode.READ:
    case RequestCode.DELETE:
      return decodeFileRequest(code, payload);
    default:
      return assertNever(code, 'request code');
  }
  reader.end();
  return message;
}

export function decodeResponse(messageCode: number, payload: Buffer): Response {
  if (!RESPONSE_CODES.has(messageCode)) return unknownCode(messageCode);
  const code = messageCode as ResponseCode;
  const reader = new FieldReader(payload, code);
  let message: Response;
  switch (code) {
    case ResponseCode.WELCOME: {
      const version = reader.u16();
      const chunkSize = reader.u32();
      const challenge = reader.bytes(Size.CHALLENGE);
      const status = reader.u8();
      if (status !== IdentityStatus.UNKNOWN && status !== IdentityStatus.KNOWN) {
        throw protocolError(ProtocolErrorCode.BAD_SIZE, `identity status ${status}`, code);
      }
      const clientId = reader.bytes(Size.CLIENT_ID);
      const name = reader.text({ allowEmpty: true });
      message = { code, version, chunkSize, challenge, status, clientId, name };
      break;
    }
    case ResponseCode.REGISTERED:
      message = { code, clientId: reader.bytes(Size.CLIENT_ID) };
      break;
    case ResponseCode.UPLOAD_OFFSET:
      message = { code, offset: reader.u64() };
      break;
    case ResponseCode.STORED:
      message = {
        code,
        size: reader.u64(),
        sha256: reader.bytes(Size.SHA256),
        cksum: reader.u32(),
      };
      break;
    case ResponseCode.KEY_SET:
      return decodeKeySet(payload);
    case ResponseCode.FILE_LIST:
    case ResponseCode.FILE_INFO:
    case ResponseCode.FILE_DATA:
    case ResponseCode.DELETED:
      return decodeFileResponse(code, payload);
    case ResponseCode.ERROR: {
      const error = reader.u16();
      const fatal = reader.u8() !== 0;
      const text = reader.longText(Size.MAX_ERROR_TEXT);
      message = {
        code,
        error: isWireErrorCode(error) ? error : WireErrorCode.BAD_MESSAGE,
        fatal,
        text: isWireErrorCode(error) ? text : `(unknown error ${error}) ${text}`,
      };
      break;
    }
    default:
      return assertNever(code, 'response code');
  }
  reader.end();
  return message;
}
