/**
 * Encoders and decoders of the file messages of version 4 (docs/protocol-v4.md §4.8–§4.13).
 * encode.ts and decode.ts hand these codes here, so each layout is written once.
 */
import { assertNever, ProtocolErrorCode, protocolError } from '../errors';
import { CLIENT_UPLOAD_FLAGS, LIST_PAGE_SIZE, RequestCode, ResponseCode, Size } from './constants';
import { checkFileName, FieldReader, textField, u64Bytes } from './fields';
import type { FileEntry, FileRequest, FileResponse } from './file-messages';

type FileRequestCode = FileRequest['code'];
type FileResponseCode = FileResponse['code'];

export const FILE_REQUEST_CODES: ReadonlySet<number> = new Set<FileRequestCode>([
  RequestCode.UPLOAD_DATA_DEFLATE,
  RequestCode.UPLOAD_BEGIN_FLAGS,
  RequestCode.LIST,
  RequestCode.GET,
  RequestCode.READ,
  RequestCode.DELETE,
]);

export const FILE_RESPONSE_CODES: ReadonlySet<number> = new Set<FileResponseCode>([
  ResponseCode.FILE_LIST,
  ResponseCode.FILE_INFO,
  ResponseCode.FILE_DATA,
  ResponseCode.DELETED,
]);

function u32(value: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32LE(value, 0);
  return out;
}

function sha(value: Buffer, code: number): Buffer {
  if (value.length !== Size.SHA256) {
    throw protocolError(ProtocolErrorCode.BAD_SIZE, 'SHA-256 must be 32 bytes', code);
  }
  return value;
}

function flagsByte(flags: number, allowed: number, code: number): Buffer {
  if (!Number.isInteger(flags) || (flags & ~allowed) !== 0) {
    throw protocolError(ProtocolErrorCode.BAD_SIZE, `flags 0x${flags.toString(16)}`, code);
  }
  return Buffer.from([flags]);
}

function nonEmpty(data: Buffer, code: number): Buffer {
  if (data.length === 0) throw protocolError(ProtocolErrorCode.BAD_SIZE, 'empty data', code);
  return data;
}

/** The payload parts of a file request. */
export function fileRequestParts(message: FileRequest): Buffer[] {
  switch (message.code) {
    case RequestCode.UPLOAD_DATA_DEFLATE:
      return [nonEmpty(message.data, message.code)];
    case RequestCode.UPLOAD_BEGIN_FLAGS:
      return [
        u64Bytes(message.size),
        sha(message.check, message.code),
        textField(checkFileName(message.fileName, message.code), message.code),
        flagsByte(message.flags, CLIENT_UPLOAD_FLAGS, message.code),
      ];
    case RequestCode.LIST:
      return [u32(message.start)];
    case RequestCode.GET:
      return [
        textField(checkFileName(message.fileName, message.code), message.code),
        u64Bytes(message.offset),
      ];
    case RequestCode.READ:
      return [];
    case RequestCode.DELETE:
      return [textField(checkFileName(message.fileName, message.code), message.code)];
    default:
      return assertNever(message, 'file request');
  }
}

function entryParts(entry: FileEntry, code: number): Buffer[] {
  return [
    textField(entry.fileName, code),
    u64Bytes(entry.size),
    u64Bytes(entry.storedAt),
    sha(entry.sha256, code),
    flagsByte(entry.flags, 0xff, code),
  ];
}

/** The payload parts of a file response. */
export function fileResponseParts(message: FileResponse): Buffer[] {
  switch (message.code) {
    case ResponseCode.FILE_LIST: {
      if (message.files.length > LIST_PAGE_SIZE) {
        throw protocolError(ProtocolErrorCode.BAD_SIZE, 'too many files in one page', message.code);
      }
      return [
        u32(message.total),
        Buffer.from([message.files.length]),
        ...message.files.flatMap((entry) => entryParts(entry, message.code)),
      ];
    }
    case ResponseCode.FILE_INFO:
      return [
        u64Bytes(message.size),
        sha(message.sha256, message.code),
        u64Bytes(message.storedAt),
        flagsByte(message.flags, 0xff, message.code),
      ];
    case ResponseCode.FILE_DATA:
      return [nonEmpty(message.data, message.code)];
    case ResponseCode.DELETED:
      return [u64Bytes(message.size)];
    default:
      return assertNever(message, 'file response');
  }
}

/** Decodes a file request. The data of deflated DATA is copied (the payload is a view). */
export function decodeFileRequest(code: FileRequestCode, payload: Buffer): FileRequest {
  const reader = new FieldReader(payload, code);
  let message: FileRequest;
  switch (code) {
    case RequestCode.UPLOAD_DATA_DEFLATE:
      return { code, data: Buffer.from(nonEmpty(payload, code)) };
    case RequestCode.UPLOAD_BEGIN_FLAGS: {
      const size = reader.u64();
      const check = reader.bytes(Size.SHA256);
      const fileName = checkFileName(reader.text(), code);
      const flags = reader.u8();
      flagsByte(flags, CLIENT_UPLOAD_FLAGS, code);
      message = { code, size, check, fileName, flags };
      break;
    }
    case RequestCode.LIST:
      message = { code, start: reader.u32() };
      break;
    case RequestCode.GET: {
      const fileName = checkFileName(reader.text(), code);
      message = { code, fileName, offset: reader.u64() };
      break;
    }
    case RequestCode.READ:
      message = { code };
      break;
    case RequestCode.DELETE:
      message = { code, fileName: checkFileName(reader.text(), code) };
      break;
    default:
      return assertNever(code, 'file request code');
  }
  reader.end();
  return message;
}

function readEntry(reader: FieldReader, code: number): FileEntry {
  return {
    fileName: checkFileName(reader.text(), code),
    size: reader.u64(),
    storedAt: reader.u64(),
    sha256: reader.bytes(Size.SHA256),
    flags: reader.u8(),
  };
}

export function decodeFileResponse(code: FileResponseCode, payload: Buffer): FileResponse {
  const reader = new FieldReader(payload, code);
  let message: FileResponse;
  switch (code) {
    case ResponseCode.FILE_LIST: {
      const total = reader.u32();
      const count = reader.u8();
      if (count > LIST_PAGE_SIZE) {
        throw protocolError(ProtocolErrorCode.BAD_SIZE, `${count} files in one page`, code);
      }
      const files: FileEntry[] = [];
      for (let i = 0; i < count; i++) files.push(readEntry(reader, code));
      message = { code, total, files };
      break;
    }
    case ResponseCode.FILE_INFO:
      message = {
        code,
        size: reader.u64(),
        sha256: reader.bytes(Size.SHA256),
        storedAt: reader.u64(),
        flags: reader.u8(),
      };
      break;
    case ResponseCode.FILE_DATA:
      // A copy: the client keeps it past the frame callback.
      return { code, data: Buffer.from(nonEmpty(payload, code)) };
    case ResponseCode.DELETED:
      message = { code, size: reader.u64() };
      break;
    default:
      return assertNever(code, 'file response code');
  }
  reader.end();
  return message;
}
