/**
 * Version-4 messages for a client's own files (docs/protocol-v4.md §4.8–§4.13): list, download,
 * delete, deflated DATA and UPLOAD_BEGIN with flags. Readonly objects tagged by `code`.
 */
import type { RequestCode, ResponseCode } from './constants';

type Code<C extends number> = { readonly code: C };

/** DATA whose payload is one chunk deflated (RFC 1951); the server stores the inflated bytes. */
export type UploadDataDeflate = Code<typeof RequestCode.UPLOAD_DATA_DEFLATE> & {
  readonly data: Buffer;
};
export type UploadBeginFlags = Code<typeof RequestCode.UPLOAD_BEGIN_FLAGS> & {
  readonly fileName: string;
  readonly size: number;
  readonly check: Buffer;
  /** FileFlag bits the client may set (CLIENT_FILE_FLAGS) and UploadFlag bits. */
  readonly flags: number;
};
/** Asks for the page of files starting at `start` (0 = the newest). */
export type List = Code<typeof RequestCode.LIST> & { readonly start: number };
/** Starts (or restarts) the download of `fileName` at byte `offset`. */
export type Get = Code<typeof RequestCode.GET> & {
  readonly fileName: string;
  readonly offset: number;
};
/** The next bytes of the download in progress. */
export type Read = Code<typeof RequestCode.READ>;
export type Delete = Code<typeof RequestCode.DELETE> & { readonly fileName: string };

export type FileRequest = UploadDataDeflate | UploadBeginFlags | List | Get | Read | Delete;

export interface FileEntry {
  readonly fileName: string;
  readonly size: number;
  /** When the file was stored, ms since the epoch. */
  readonly storedAt: number;
  /** Zeros when the server does not know it (a file stored over version 3). */
  readonly sha256: Buffer;
  readonly flags: number;
}

export type FileList = Code<typeof ResponseCode.FILE_LIST> & {
  /** Files this client has in all. */
  readonly total: number;
  readonly files: readonly FileEntry[];
};
export type FileInfo = Code<typeof ResponseCode.FILE_INFO> & {
  readonly size: number;
  readonly sha256: Buffer;
  readonly storedAt: number;
  readonly flags: number;
};
export type FileData = Code<typeof ResponseCode.FILE_DATA> & { readonly data: Buffer };
export type Deleted = Code<typeof ResponseCode.DELETED> & {
  /** Bytes the deleted file held. */
  readonly size: number;
};

export type FileResponse = FileList | FileInfo | FileData | Deleted;
