/**
 * Encoders: every message to an exact-size buffer. The 1028 prefix encoder writes header and
 * fixed fields only, so a sender can place ciphertext after it without an extra copy.
 */
import {
  PROTOCOL_VERSION,
  RequestCode,
  RequestHeaderAt,
  ResponseCode,
  ResponseHeaderAt,
  SendFileAt,
  Size,
} from './constants';
import { assertNever, protocolError, ProtocolErrorCode } from '../errors';
import { encodeString255 } from './fields';
import type { Request, Response, SendFileFields } from './messages';

function checkClientId(clientId: Buffer): void {
  if (clientId.length !== Size.CLIENT_ID) {
    throw protocolError(
      ProtocolErrorCode.BAD_SIZE,
      `client id must be ${Size.CLIENT_ID} bytes, got ${clientId.length}`,
    );
  }
}

/** Writes a 23-byte request header (§1) at `offset`. */
export function encodeRequestHeader(
  clientId: Buffer,
  code: number,
  payloadSize: number,
  target: Buffer = Buffer.allocUnsafe(Size.REQUEST_HEADER),
  offset = 0,
  version: number = PROTOCOL_VERSION,
): Buffer {
  checkClientId(clientId);
  clientId.copy(target, offset);
  target.writeUInt8(version, offset + RequestHeaderAt.VERSION);
  target.writeUInt16LE(code, offset + RequestHeaderAt.CODE);
  target.writeUInt32LE(payloadSize, offset + RequestHeaderAt.PAYLOAD_SIZE);
  return target;
}

/** Bytes of a 1028 before its content: header plus the fixed fields (§3). */
export const SEND_FILE_PREFIX_SIZE = Size.REQUEST_HEADER + Size.SEND_FILE_FIXED;

/**
 * Writes the header and fixed fields of a 1028 carrying `contentLength` content bytes into
 * `target` at `offset` (SEND_FILE_PREFIX_SIZE bytes). The caller writes the content after it.
 */
export function encodeSendFilePrefix(
  clientId: Buffer,
  fields: SendFileFields,
  contentLength: number,
  target: Buffer = Buffer.allocUnsafe(SEND_FILE_PREFIX_SIZE),
  offset = 0,
): Buffer {
  encodeRequestHeader(
    clientId,
    RequestCode.SEND_FILE,
    Size.SEND_FILE_FIXED + contentLength,
    target,
    offset,
  );
  const at = offset + Size.REQUEST_HEADER;
  target.writeUInt32LE(fields.contentSize, at + SendFileAt.CONTENT_SIZE);
  target.writeUInt32LE(fields.origSize, at + SendFileAt.ORIG_SIZE);
  target.writeUInt16LE(fields.packetNumber, at + SendFileAt.PACKET_NUMBER);
  target.writeUInt16LE(fields.totalPackets, at + SendFileAt.TOTAL_PACKETS);
  encodeString255(fields.fileName, target, at + SendFileAt.FILE_NAME, RequestCode.SEND_FILE);
  return target;
}

/**
 * Rewrites the packet number of the 1028 frame whose header starts at `offset` of `target`:
 * a sender copies one encoded prefix per packet and changes only this field.
 */
export function encodeSendFilePacketNumber(
  target: Buffer,
  offset: number,
  packetNumber: number,
): void {
  target.writeUInt16LE(packetNumber, offset + Size.REQUEST_HEADER + SendFileAt.PACKET_NUMBER);
}

/** Encodes a whole request (§3) into a new buffer of exactly its size. */
export function encodeRequest(request: Request): Buffer {
  const { clientId } = request;
  const h = Size.REQUEST_HEADER;
  switch (request.code) {
    case RequestCode.REGISTER:
    case RequestCode.RECONNECT: {
      const out = encodeRequestHeader(
        clientId,
        request.code,
        Size.STRING255,
        Buffer.alloc(h + Size.STRING255),
      );
      encodeString255(request.name, out, h, request.code);
      return out;
    }
    case RequestCode.SEND_PUBLIC_KEY: {
      if (request.publicKey.length > Size.PUBLIC_KEY) {
        throw protocolError(
          ProtocolErrorCode.BAD_SIZE,
          `public key must fit ${Size.PUBLIC_KEY} bytes, got ${request.publicKey.length}`,
          request.code,
        );
      }
      const size = Size.STRING255 + Size.PUBLIC_KEY;
      const out = encodeRequestHeader(clientId, request.code, size, Buffer.alloc(h + size));
      encodeString255(request.name, out, h, request.code);
      request.publicKey.copy(out, h + Size.STRING255);
      return out;
    }
    case RequestCode.SEND_FILE: {
      const out = Buffer.allocUnsafe(SEND_FILE_PREFIX_SIZE + request.content.length);
      encodeSendFilePrefix(clientId, request, request.content.length, out, 0);
      request.content.copy(out, SEND_FILE_PREFIX_SIZE);
      return out;
    }
    case RequestCode.CHECKSUM_OK:
    case RequestCode.CHECKSUM_RETRY:
    case RequestCode.CHECKSUM_ABORT: {
      const out = encodeRequestHeader(
        clientId,
        request.code,
        Size.STRING255,
        Buffer.alloc(h + Size.STRING255),
      );
      encodeString255(request.fileName, out, h, request.code);
      return out;
    }
    default:
      return assertNever(request, 'request');
  }
}

function responseBuffer(code: ResponseCode, payloadSize: number): Buffer {
  const out = Buffer.alloc(Size.RESPONSE_HEADER + payloadSize);
  out.writeUInt8(PROTOCOL_VERSION, ResponseHeaderAt.VERSION);
  out.writeUInt16LE(code, ResponseHeaderAt.CODE);
  out.writeUInt32LE(payloadSize, ResponseHeaderAt.PAYLOAD_SIZE);
  return out;
}

/** Encodes a response (§4) into a new buffer of exactly its size; the version byte is 3. */
export function encodeResponse(response: Response): Buffer {
  const h = Size.RESPONSE_HEADER;
  switch (response.code) {
    case ResponseCode.REGISTERED:
    case ResponseCode.ACKNOWLEDGED:
    case ResponseCode.RECONNECT_REFUSED: {
      checkClientId(response.clientId);
      const out = responseBuffer(response.code, Size.CLIENT_ID);
      response.clientId.copy(out, h);
      return out;
    }
    case ResponseCode.REGISTRATION_FAILED:
    case ResponseCode.GENERAL_ERROR:
      return responseBuffer(response.code, 0);
    case ResponseCode.KEY_ACCEPTED:
    case ResponseCode.RECONNECTED: {
      checkClientId(response.clientId);
      if (response.wrappedKey.length !== Size.WRAPPED_KEY) {
        throw protocolError(
          ProtocolErrorCode.BAD_SIZE,
          `wrapped key must be ${Size.WRAPPED_KEY} bytes, got ${response.wrappedKey.length}`,
          response.code,
        );
      }
      const out = responseBuffer(response.code, Size.CLIENT_ID + Size.WRAPPED_KEY);
      response.clientId.copy(out, h);
      response.wrappedKey.copy(out, h + Size.CLIENT_ID);
      return out;
    }
    case ResponseCode.FILE_RECEIVED: {
      checkClientId(response.clientId);
      const out = responseBuffer(response.code, Size.CLIENT_ID + 4 + Size.STRING255 + 4);
      let at: number = h;
      at += response.clientId.copy(out, at);
      at = out.writeUInt32LE(response.contentSize, at);
      encodeString255(response.fileName, out, at, response.code);
      out.writeUInt32LE(response.cksum >>> 0, at + Size.STRING255);
      return out;
    }
    default:
      return assertNever(response, 'response');
  }
}
