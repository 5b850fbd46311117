/** Encoders of version-4 frames (docs/protocol-v4.md §3, §4): a message in, frame bytes out. */
import { assertNever, ProtocolErrorCode, protocolError } from '../errors';
import {
  FRAME_HEADER_SIZE,
  RequestCode,
  ResponseCode,
  Size,
  type RequestCode as RequestCodeT,
  type ResponseCode as ResponseCodeT,
} from './constants';
import { checkFileName, textField, u64Bytes } from './fields';
import { fileRequestParts, fileResponseParts } from './file-codec';
import { keySetParts } from './key-set';
import type { Request, Response } from './messages';

/** The 6-byte frame header for a payload of `payloadSize` bytes. */
export function encodeFrameHeader(code: RequestCodeT | ResponseCodeT, payloadSize: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_SIZE);
  header.writeUInt16LE(code, 0);
  header.writeUInt32LE(payloadSize, 2);
  return header;
}

function frame(code: RequestCodeT | ResponseCodeT, parts: readonly Buffer[]): Buffer {
  const size = parts.reduce((sum, part) => sum + part.length, 0);
  return Buffer.concat([encodeFrameHeader(code, size), ...parts], FRAME_HEADER_SIZE + size);
}

function fixed(value: Buffer, length: number, what: string, code: number): Buffer {
  if (value.length !== length) {
    throw protocolError(ProtocolErrorCode.BAD_SIZE, `${what} must be ${length} bytes`, code);
  }
  return value;
}

function u16(value: number): Buffer {
  const out = Buffer.allocUnsafe(2);
  out.writeUInt16LE(value, 0);
  return out;
}

function u32(value: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32LE(value, 0);
  return out;
}

function sized(value: Buffer, max: number, code: number): Buffer {
  if (value.length > max) {
    throw protocolError(ProtocolErrorCode.BAD_SIZE, `field of ${value.length} > ${max}`, code);
  }
  return Buffer.concat([u16(value.length), value]);
}

export function encodeRequest(message: Request): Buffer {
  switch (message.code) {
    case RequestCode.HELLO:
      return frame(message.code, [u16(message.version), u32(message.maxChunk)]);
    case RequestCode.REGISTER:
      return frame(message.code, [textField(message.name, message.code)]);
    case RequestCode.MIGRATE:
      return frame(message.code, [
        fixed(message.clientId, Size.CLIENT_ID, 'client id', message.code),
        textField(message.name, message.code),
        sized(message.signature, Size.MAX_SIGNATURE, message.code),
      ]);
    case RequestCode.UPLOAD_BEGIN:
      return frame(message.code, [
        u64Bytes(message.size),
        fixed(message.check, Size.SHA256, 'content check', message.code),
        textField(checkFileName(message.fileName, message.code), message.code),
      ]);
    case RequestCode.UPLOAD_DATA:
      return frame(message.code, [message.data]);
    case RequestCode.UPLOAD_END:
      return frame(message.code, [fixed(message.sha256, Size.SHA256, 'SHA-256', message.code)]);
    case RequestCode.KEYS:
      return frame(message.code, []);
    case RequestCode.UPLOAD_DATA_DEFLATE:
    case RequestCode.UPLOAD_BEGIN_FLAGS:
    case RequestCode.LIST:
    case RequestCode.GET:
    case RequestCode.READ:
    case RequestCode.DELETE:
      return frame(message.code, fileRequestParts(message));
    default:
      return assertNever(message, 'request');
  }
}

export function encodeResponse(message: Response): Buffer {
  switch (message.code) {
    case ResponseCode.WELCOME:
      return frame(message.code, [
        u16(message.version),
        u32(message.chunkSize),
        fixed(message.challenge, Size.CHALLENGE, 'challenge', message.code),
        Buffer.from([message.status]),
        fixed(message.clientId, Size.CLIENT_ID, 'client id', message.code),
        textField(message.name, message.code, true),
      ]);
    case ResponseCode.REGISTERED:
      return frame(message.code, [fixed(message.clientId, Size.CLIENT_ID, 'id', message.code)]);
    case ResponseCode.UPLOAD_OFFSET:
      return frame(message.code, [u64Bytes(message.offset)]);
    case ResponseCode.STORED:
      return frame(message.code, [
        u64Bytes(message.size),
        fixed(message.sha256, Size.SHA256, 'SHA-256', message.code),
        u32(message.cksum),
      ]);
    case ResponseCode.KEY_SET:
      return frame(message.code, keySetParts(message));
    case ResponseCode.FILE_LIST:
    case ResponseCode.FILE_INFO:
    case ResponseCode.FILE_DATA:
    case ResponseCode.DELETED:
      return frame(message.code, fileResponseParts(message));
    case ResponseCode.ERROR: {
      const text = Buffer.from(message.text, 'utf8').subarray(0, Size.MAX_ERROR_TEXT);
      return frame(message.code, [
        u16(message.error),
        Buffer.from([message.fatal ? 1 : 0]),
        sized(text, Size.MAX_ERROR_TEXT, message.code),
      ]);
    }
    default:
      return assertNever(message, 'response');
  }
}

/**
 * The header of a DATA frame carrying `length` bytes: the sender writes it and then the file
 * bytes themselves, so a chunk is never copied into a frame buffer.
 */
export function encodeDataHeader(length: number): Buffer {
  return encodeFrameHeader(RequestCode.UPLOAD_DATA, length);
}
