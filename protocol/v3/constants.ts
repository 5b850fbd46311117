/**
 * Wire constants of protocol version 3 (docs/protocol.md §1–§4). Plain objects `as const`, so the
 * codes are real values at run time and literal types at compile time.
 */

/** The version byte we write; any version byte is accepted on input (§1). */
export const PROTOCOL_VERSION = 3 as const;

export const RequestCode = {
  REGISTER: 1025,
  SEND_PUBLIC_KEY: 1026,
  RECONNECT: 1027,
  SEND_FILE: 1028,
  CHECKSUM_OK: 1029,
  CHECKSUM_RETRY: 1030,
  CHECKSUM_ABORT: 1031,
} as const;
export type RequestCode = (typeof RequestCode)[keyof typeof RequestCode];

export const ResponseCode = {
  REGISTERED: 1600,
  REGISTRATION_FAILED: 1601,
  KEY_ACCEPTED: 1602,
  FILE_RECEIVED: 1603,
  ACKNOWLEDGED: 1604,
  RECONNECTED: 1605,
  RECONNECT_REFUSED: 1606,
  GENERAL_ERROR: 1607,
} as const;
export type ResponseCode = (typeof ResponseCode)[keyof typeof ResponseCode];

const REQUEST_CODES: ReadonlySet<number> = new Set(Object.values(RequestCode));
const RESPONSE_CODES: ReadonlySet<number> = new Set(Object.values(ResponseCode));

export function isRequestCode(code: number): code is RequestCode {
  return REQUEST_CODES.has(code);
}

export function isResponseCode(code: number): code is ResponseCode {
  return RESPONSE_CODES.has(code);
}

/** Field sizes in bytes (§1, §2). */
export const Size = {
  CLIENT_ID: 16,
  VERSION: 1,
  CODE: 2,
  PAYLOAD_SIZE: 4,
  /** client id + version + code + payload size (§1). */
  REQUEST_HEADER: 23,
  /** version + code + payload size (§1). */
  RESPONSE_HEADER: 7,
  STRING255: 255,
  PUBLIC_KEY: 160,
  WRAPPED_KEY: 128,
  AES_KEY: 32,
  AES_BLOCK: 16,
  /** content size u32, orig size u32, packet u16, total u16, file name (§3 1028). */
  SEND_FILE_FIXED: 4 + 4 + 2 + 2 + 255,
} as const;

/** Byte offsets inside a request header (§1). */
export const RequestHeaderAt = {
  CLIENT_ID: 0,
  VERSION: Size.CLIENT_ID,
  CODE: Size.CLIENT_ID + Size.VERSION,
  PAYLOAD_SIZE: Size.CLIENT_ID + Size.VERSION + Size.CODE,
} as const;

/** Byte offsets inside a response header (§1). */
export const ResponseHeaderAt = {
  VERSION: 0,
  CODE: Size.VERSION,
  PAYLOAD_SIZE: Size.VERSION + Size.CODE,
} as const;

/** Byte offsets of the fixed 1028 fields inside its payload (§3). */
export const SendFileAt = {
  CONTENT_SIZE: 0,
  ORIG_SIZE: 4,
  PACKET_NUMBER: 8,
  TOTAL_PACKETS: 10,
  FILE_NAME: 12,
  CONTENT: Size.SEND_FILE_FIXED,
} as const;

/** Exact payload sizes of the fixed-size requests (§3). */
export const REQUEST_PAYLOAD_SIZE = {
  [RequestCode.REGISTER]: Size.STRING255,
  [RequestCode.SEND_PUBLIC_KEY]: Size.STRING255 + Size.PUBLIC_KEY,
  [RequestCode.RECONNECT]: Size.STRING255,
  [RequestCode.CHECKSUM_OK]: Size.STRING255,
  [RequestCode.CHECKSUM_RETRY]: Size.STRING255,
  [RequestCode.CHECKSUM_ABORT]: Size.STRING255,
} as const;

/** Exact payload sizes of every response (§4). */
export const RESPONSE_PAYLOAD_SIZE = {
  [ResponseCode.REGISTERED]: Size.CLIENT_ID,
  [ResponseCode.REGISTRATION_FAILED]: 0,
  [ResponseCode.KEY_ACCEPTED]: Size.CLIENT_ID + Size.WRAPPED_KEY,
  [ResponseCode.FILE_RECEIVED]: Size.CLIENT_ID + 4 + Size.STRING255 + 4,
  [ResponseCode.ACKNOWLEDGED]: Size.CLIENT_ID,
  [ResponseCode.RECONNECTED]: Size.CLIENT_ID + Size.WRAPPED_KEY,
  [ResponseCode.RECONNECT_REFUSED]: Size.CLIENT_ID,
  [ResponseCode.GENERAL_ERROR]: 0,
} as const;

/** Packet numbers and totals are u16 (§3). */
export const MAX_PACKETS = 0xffff;
/** Content and orig sizes are u32 (§3). */
export const MAX_U32 = 0xffffffff;

/**
 * Content bytes per 1028 that the decoder accepts unless told otherwise. 65552 is the chunk of
 * the largest legal upload: 2^32 ciphertext bytes (orig size is a u32) in at most 65535 packets,
 * rounded up to a multiple of 16 (§5.4). It also covers 64 KiB chunks and client-b's 65536-byte
 * padded payloads (§9).
 */
export const DEFAULT_MAX_CHUNK = 65552;
/** Payload an unknown request code may declare and still be skipped rather than fail framing. */
export const DEFAULT_UNKNOWN_PAYLOAD_LIMIT = 1024;
/** Payload a response may declare before the client treats the stream as broken. */
export const DEFAULT_RESPONSE_PAYLOAD_LIMIT = 1024;
