/** Version-4 messages as readonly tagged objects (docs/protocol-v4.md §4). */
import type { IdentityStatus, RequestCode, ResponseCode, WireErrorCode } from './constants';
import type { FileRequest, FileResponse } from './file-messages';
import type { Keys, KeySet } from './key-set';

export type * from './file-messages';
export type { KeyEntry, Keys, KeySet } from './key-set';

type Code<C extends number> = { readonly code: C };

export type Hello = Code<typeof RequestCode.HELLO> & {
  readonly version: number;
  /** Largest DATA payload the client will send (the server may lower it). */
  readonly maxChunk: number;
};
export type Register = Code<typeof RequestCode.REGISTER> & { readonly name: string };
export type Migrate = Code<typeof RequestCode.MIGRATE> & {
  readonly clientId: Buffer;
  readonly name: string;
  /** RSA PKCS#1 v1.5 SHA-256 signature over the migration statement (§5.3). */
  readonly signature: Buffer;
};
export type UploadBegin = Code<typeof RequestCode.UPLOAD_BEGIN> & {
  readonly fileName: string;
  /** Plaintext bytes; up to 2^53 - 1. */
  readonly size: number;
  /** 32 opaque bytes the client derives from the file's content; a change restarts (§5.5). */
  readonly check: Buffer;
};
export type UploadData = Code<typeof RequestCode.UPLOAD_DATA> & { readonly data: Buffer };
export type UploadEnd = Code<typeof RequestCode.UPLOAD_END> & { readonly sha256: Buffer };

export type Request =
  Hello | Register | Migrate | Keys | UploadBegin | UploadData | UploadEnd | FileRequest;

export type Welcome = Code<typeof ResponseCode.WELCOME> & {
  readonly version: number;
  /** Negotiated chunk size: DATA payloads never exceed it. */
  readonly chunkSize: number;
  /** Fresh random bytes, signed in MIGRATE (§5.3). */
  readonly challenge: Buffer;
  readonly status: IdentityStatus;
  /** Zero bytes when status is UNKNOWN. */
  readonly clientId: Buffer;
  /** Empty when status is UNKNOWN. */
  readonly name: string;
};
export type Registered = Code<typeof ResponseCode.REGISTERED> & { readonly clientId: Buffer };
export type UploadOffset = Code<typeof ResponseCode.UPLOAD_OFFSET> & {
  /** Bytes the server holds durably: the client sends from here. */
  readonly offset: number;
};
export type Stored = Code<typeof ResponseCode.STORED> & {
  readonly size: number;
  readonly sha256: Buffer;
  /** POSIX cksum of the plaintext, as version 3 reports it. */
  readonly cksum: number;
};
export type ErrorMessage = Code<typeof ResponseCode.ERROR> & {
  readonly error: WireErrorCode;
  /** The connection is closed after this message. */
  readonly fatal: boolean;
  readonly text: string;
};

export type Response =
  Welcome | Registered | KeySet | UploadOffset | Stored | ErrorMessage | FileResponse;
