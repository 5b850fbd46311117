/**
 * Wire constants of protocol version 4 (docs/protocol-v4.md §3, §4). Version 4 runs inside
 * TLS 1.3 with ALPN `sft/4`; these frames are the bytes of the TLS application data.
 */

/** The ALPN protocol name both sides offer; a handshake without it is refused. */
export const ALPN_V4 = 'sft/4' as const;

/** The version number HELLO carries and WELCOME answers with. */
export const PROTOCOL_VERSION_4 = 4 as const;

/** Frame header: code u16, payload size u32, little-endian (docs/protocol-v4.md §3.1). */
export const FRAME_HEADER_SIZE = 6 as const;

/** Largest DATA payload either side may negotiate (1 MiB, docs/protocol-v4.md §4.1). */
export const MAX_CHUNK_SIZE = 1024 * 1024;
/** Smallest chunk size a peer may propose, so a transfer cannot be made of 1-byte frames. */
export const MIN_CHUNK_SIZE = 4096;

export const Size = {
  CLIENT_ID: 16,
  SHA256: 32,
  CHALLENGE: 32,
  /** Longest name or file name in bytes (u8 length prefix, docs/protocol-v4.md §3.2). */
  MAX_NAME: 255,
  /** Longest migration signature (RSA up to 4096 bits). */
  MAX_SIGNATURE: 512,
  /** Longest error text in bytes. */
  MAX_ERROR_TEXT: 1024,
} as const;

/** Client → server message codes. */
export const RequestCode = {
  HELLO: 0x0001,
  REGISTER: 0x0002,
  MIGRATE: 0x0003,
  /** Asks for the server's signed key set (docs/protocol-v4.md §4.14). */
  KEYS: 0x0004,
  UPLOAD_BEGIN: 0x0010,
  UPLOAD_DATA: 0x0011,
  UPLOAD_END: 0x0012,
  /** DATA whose payload is a raw deflate stream of one chunk (docs/protocol-v4.md §4.12). */
  UPLOAD_DATA_DEFLATE: 0x0013,
  /** UPLOAD_BEGIN with a flags byte (docs/protocol-v4.md §4.13). */
  UPLOAD_BEGIN_FLAGS: 0x0014,
  LIST: 0x0020,
  GET: 0x0021,
  READ: 0x0022,
  DELETE: 0x0023,
} as const;
export type RequestCode = (typeof RequestCode)[keyof typeof RequestCode];

/** Server → client message codes. */
export const ResponseCode = {
  WELCOME: 0x8001,
  REGISTERED: 0x8002,
  KEY_SET: 0x8004,
  UPLOAD_OFFSET: 0x8010,
  STORED: 0x8011,
  FILE_LIST: 0x8020,
  FILE_INFO: 0x8021,
  FILE_DATA: 0x8022,
  DELETED: 0x8023,
  ERROR: 0x80ff,
} as const;
export type ResponseCode = (typeof ResponseCode)[keyof typeof ResponseCode];

/** Whether WELCOME found the client's certificate bound to a client id. */
export const IdentityStatus = {
  UNKNOWN: 0,
  KNOWN: 1,
} as const;
export type IdentityStatus = (typeof IdentityStatus)[keyof typeof IdentityStatus];

/** Error codes of the ERROR message (docs/protocol-v4.md §6). */
export const WireErrorCode = {
  /** A message that does not parse, or a field out of range. */
  BAD_MESSAGE: 1,
  /** A message that is valid but not allowed in this state (e.g. DATA before UPLOAD_BEGIN). */
  UNEXPECTED: 2,
  /** The request needs a client certificate bound to a client id. */
  NOT_AUTHENTICATED: 3,
  NAME_TAKEN: 4,
  INVALID_NAME: 5,
  RATE_LIMITED: 6,
  /** The v3 client, name or signature of MIGRATE did not check out. */
  MIGRATION_REFUSED: 7,
  /** The certificate is already bound to a client id. */
  ALREADY_REGISTERED: 8,
  BAD_FILE_NAME: 9,
  FILE_TOO_LARGE: 10,
  QUOTA_EXCEEDED: 11,
  /** DATA past the announced size, or END before it. */
  SIZE_MISMATCH: 12,
  /** The SHA-256 in UPLOAD_END differs from the bytes received; nothing is stored. */
  DIGEST_MISMATCH: 13,
  /** The server failed to store (disk, database); try again later. */
  STORAGE: 14,
  UNSUPPORTED_VERSION: 15,
  /** Another connection of the same client is uploading the same file name. */
  BUSY: 16,
  /** A frame over its size limit or an unknown code: the connection closes after this. */
  FRAMING: 17,
  /** GET or DELETE of a file name this client does not have. */
  NOT_FOUND: 18,
} as const;
export type WireErrorCode = (typeof WireErrorCode)[keyof typeof WireErrorCode];

const WIRE_ERROR_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(WireErrorCode).map(([name, code]) => [code, name]),
);

export function wireErrorName(code: number): string {
  return WIRE_ERROR_NAMES.get(code) ?? `UNKNOWN_${code}`;
}

export function isWireErrorCode(code: number): code is WireErrorCode {
  return WIRE_ERROR_NAMES.has(code);
}

/**
 * Fixed part of each payload and its largest size (docs/protocol-v4.md §4); checked when a
 * frame header completes, before any payload byte is buffered. DATA's limit is the negotiated
 * chunk size and is supplied per connection.
 */
export const RequestPayloadLimit = {
  [RequestCode.HELLO]: 6,
  [RequestCode.REGISTER]: 1 + Size.MAX_NAME,
  [RequestCode.MIGRATE]: Size.CLIENT_ID + 1 + Size.MAX_NAME + 2 + Size.MAX_SIGNATURE,
  [RequestCode.UPLOAD_BEGIN]: 8 + Size.SHA256 + 1 + Size.MAX_NAME,
  [RequestCode.UPLOAD_END]: Size.SHA256,
  [RequestCode.UPLOAD_BEGIN_FLAGS]: 8 + Size.SHA256 + 1 + Size.MAX_NAME + 1,
  [RequestCode.KEYS]: 0,
  [RequestCode.LIST]: 4,
  [RequestCode.GET]: 1 + Size.MAX_NAME + 8,
  [RequestCode.READ]: 0,
  [RequestCode.DELETE]: 1 + Size.MAX_NAME,
} as const;

/** Keys in one KEY_SET at most (docs/protocol-v4.md §4.14). */
export const MAX_KEYS_IN_SET = 8;
/** Longest public key (SPKI DER) and signature of a key set. */
export const MAX_SET_PUBLIC_KEY = 512;
export const MAX_KEY_SET_SIGNATURE = 512;
/** key id, algorithm, not-before, not-after, status, public key. */
const KEY_ENTRY_MAX = 1 + Size.MAX_NAME + 1 + Size.MAX_NAME + 8 + 8 + 1 + 2 + MAX_SET_PUBLIC_KEY;

/** The status of a key in the set: what the server presents, will present, never will again. */
export const KeyStatus = {
  CURRENT: 1,
  NEXT: 2,
  RETIRED: 3,
} as const;
export type KeyStatus = (typeof KeyStatus)[keyof typeof KeyStatus];

/** Domain separation of the key set's signature (docs/protocol-v4.md §4.14). */
export const KEY_SET_CONTEXT = 'sft/4 key set\0' as const;

/** Files per FILE_LIST page (docs/protocol-v4.md §4.8). */
export const LIST_PAGE_SIZE = 32;
/** One FILE_LIST entry at most: name, size, stored time, SHA-256, flags. */
const LIST_ENTRY_MAX = 1 + Size.MAX_NAME + 8 + 8 + Size.SHA256 + 1;

/** Bits of the flags byte of FILE_LIST, FILE_INFO and UPLOAD_BEGIN_FLAGS. */
export const FileFlag = {
  /** The server checked the SHA-256 of the upload before publishing it. */
  VERIFIED: 0x01,
  /** The bytes are end-to-end encrypted by the client; the server holds only ciphertext. */
  E2E: 0x02,
  /** Some chunks of the upload came deflated (the stored bytes are the original ones). */
  COMPRESSED: 0x04,
} as const;
/** File flags a client may set in UPLOAD_BEGIN_FLAGS; the others are the server's to say. */
export const CLIENT_FILE_FLAGS = FileFlag.E2E;
/**
 * Bits of UPLOAD_BEGIN_FLAGS that are about the transfer, not the file: never stored or
 * reported (docs/protocol-v4.md §4.13, §5.10).
 */
export const UploadFlag = {
  /** The whole file follows from byte 0 without waiting for UPLOAD_OFFSET (§5.10). */
  PIPELINED: 0x80,
} as const;
/** Every bit a client may set in UPLOAD_BEGIN_FLAGS. */
export const CLIENT_UPLOAD_FLAGS = CLIENT_FILE_FLAGS | UploadFlag.PIPELINED;

export const ResponsePayloadLimit = {
  [ResponseCode.WELCOME]: 2 + 4 + Size.CHALLENGE + 1 + Size.CLIENT_ID + 1 + Size.MAX_NAME,
  [ResponseCode.REGISTERED]: Size.CLIENT_ID,
  [ResponseCode.UPLOAD_OFFSET]: 8,
  [ResponseCode.STORED]: 8 + Size.SHA256 + 4,
  [ResponseCode.FILE_LIST]: 4 + 1 + LIST_PAGE_SIZE * LIST_ENTRY_MAX,
  [ResponseCode.FILE_INFO]: 8 + Size.SHA256 + 8 + 1,
  // A client cannot lower this limit before WELCOME; the chunk it negotiated bounds the server.
  [ResponseCode.FILE_DATA]: MAX_CHUNK_SIZE,
  [ResponseCode.DELETED]: 8,
  [ResponseCode.KEY_SET]: 1 + MAX_KEYS_IN_SET * KEY_ENTRY_MAX + 8 + 2 + MAX_KEY_SET_SIGNATURE,
  [ResponseCode.ERROR]: 2 + 1 + 2 + Size.MAX_ERROR_TEXT,
} as const;

/** Label of the TLS exporter (RFC 8446, section 7.5) that binds a migration signature to the channel. */
export const MIGRATION_EXPORTER_LABEL = 'EXPORTER-sft4-migrate' as const;
export const MIGRATION_EXPORTER_LENGTH = 32;
/** Domain separation prefix of the signed migration statement (docs/protocol-v4.md §5.3). */
export const MIGRATION_CONTEXT = 'sft/4 migrate v3 client\0' as const;
