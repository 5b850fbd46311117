/**
 * Frames turned into validated messages (§2, §3, §4). A bad message inside a well-framed packet
 * fails that message only (§9); framing itself is protocol/framer.ts with the layouts of
 * frame-layouts.ts, and the incremental decoders are request-decoder.ts and response-decoder.ts.
 */
import {
  MAX_U32,
  REQUEST_PAYLOAD_SIZE,
  RESPONSE_PAYLOAD_SIZE,
  RequestCode,
  ResponseCode,
  SendFileAt,
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
  const contentSize = p.readUInt32LE(SendFileAt.CONTENT_SIZE);
  const origSize = p.readUInt32LE(SendFileAt.ORIG_SIZE);
  const packetNumber = p.readUInt16LE(SendFileAt.PACKET_NUMBER);
  const totalPackets = p.readUInt16LE(SendFileAt.TOTAL_PACKETS);
  const fileName = decodeFileName(p, SendFileAt.FILE_NAME, code);
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
    content: p.subarray(SendFileAt.CONTENT),
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

// ---------------------------------------------------------------- responses

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

/** Decodes one complete response frame, like `decodeRequestFrame`. */
export function decodeResponseFrame(header: ResponseHeader, payload: Buffer): DecodedResponse {
  const decoded = attempt(() => decodeResponse({ ...header, payload }));
  return decoded.ok
    ? { ok: true, header, response: decoded.value }
    : { ok: false, header, error: decoded.error };
}
