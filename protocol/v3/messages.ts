/**
 * Every request (§3) and response (§4) as a readonly plain object, discriminated on `code`.
 * Buffers in decoded requests are copies, except `SendFileRequest.content`, which is a view
 * into the decoder's input and is valid only until the frame callback returns.
 */
import { RequestCode, ResponseCode } from './constants';

interface RequestBase {
  /** 16 raw bytes from the header; meaningless in 1025 (§1). */
  readonly clientId: Buffer;
}

export interface RegisterRequest extends RequestBase {
  readonly code: typeof RequestCode.REGISTER;
  readonly name: string;
}

export interface SendPublicKeyRequest extends RequestBase {
  readonly code: typeof RequestCode.SEND_PUBLIC_KEY;
  readonly name: string;
  /** The raw 160-byte field: SPKI DER then zero padding (§2). Parsed by the server's crypto. */
  readonly publicKey: Buffer;
}

export interface ReconnectRequest extends RequestBase {
  readonly code: typeof RequestCode.RECONNECT;
  readonly name: string;
}

/** The fields every packet of one upload repeats (§5). */
export interface SendFileFields {
  readonly contentSize: number;
  readonly origSize: number;
  readonly packetNumber: number;
  readonly totalPackets: number;
  readonly fileName: string;
}

export interface SendFileRequest extends RequestBase, SendFileFields {
  readonly code: typeof RequestCode.SEND_FILE;
  /** Ciphertext bytes of this packet; may run past content size when the sender pads (§9). */
  readonly content: Buffer;
}

export interface ChecksumRequest extends RequestBase {
  readonly code:
    | typeof RequestCode.CHECKSUM_OK
    | typeof RequestCode.CHECKSUM_RETRY
    | typeof RequestCode.CHECKSUM_ABORT;
  readonly fileName: string;
}

export type Request =
  RegisterRequest | SendPublicKeyRequest | ReconnectRequest | SendFileRequest | ChecksumRequest;

export interface RegisteredResponse {
  readonly code: typeof ResponseCode.REGISTERED;
  readonly clientId: Buffer;
}

export interface RegistrationFailedResponse {
  readonly code: typeof ResponseCode.REGISTRATION_FAILED;
}

export interface KeyAcceptedResponse {
  readonly code: typeof ResponseCode.KEY_ACCEPTED;
  readonly clientId: Buffer;
  readonly wrappedKey: Buffer;
}

export interface FileReceivedResponse {
  readonly code: typeof ResponseCode.FILE_RECEIVED;
  readonly clientId: Buffer;
  readonly contentSize: number;
  readonly fileName: string;
  readonly cksum: number;
}

export interface AcknowledgedResponse {
  readonly code: typeof ResponseCode.ACKNOWLEDGED;
  readonly clientId: Buffer;
}

export interface ReconnectedResponse {
  readonly code: typeof ResponseCode.RECONNECTED;
  readonly clientId: Buffer;
  readonly wrappedKey: Buffer;
}

export interface ReconnectRefusedResponse {
  readonly code: typeof ResponseCode.RECONNECT_REFUSED;
  readonly clientId: Buffer;
}

export interface GeneralErrorResponse {
  readonly code: typeof ResponseCode.GENERAL_ERROR;
}

export type Response =
  | RegisteredResponse
  | RegistrationFailedResponse
  | KeyAcceptedResponse
  | FileReceivedResponse
  | AcknowledgedResponse
  | ReconnectedResponse
  | ReconnectRefusedResponse
  | GeneralErrorResponse;

/** A request header as read off the wire (§1). `clientId` is a view. */
export interface RequestHeader {
  readonly clientId: Buffer;
  readonly version: number;
  readonly code: number;
  readonly payloadSize: number;
}

/** A whole request frame: header plus a view of its payload. */
export interface RequestFrame extends RequestHeader {
  readonly payload: Buffer;
}

export interface ResponseHeader {
  readonly version: number;
  readonly code: number;
  readonly payloadSize: number;
}

export interface ResponseFrame extends ResponseHeader {
  readonly payload: Buffer;
}
