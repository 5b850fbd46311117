/**
 * What version-4 sessions share (docs/protocol-v4.md): the server-wide v3 context (stores,
 * limits, rate limiter, file locks, quota ledger: every v3 limit applies to v4 too), plus the
 * bindings of certificate fingerprints to client ids and the resumable partial uploads.
 */
import { CodedError } from '../../../shared/coded-error';
import { WireErrorCode } from '../../../protocol/v4/constants';
import type { SessionContext } from '../context';
import type { V4FileAccess } from './file-meta';
import type { KeySet } from '../../../protocol/v4/messages';

/** A client certificate's fingerprint bound to a client id: the client's v4 credential. */
export interface V4Identity {
  readonly clientId: Buffer;
  readonly fingerprint: string;
  /** Milliseconds since the epoch. */
  readonly boundAt: number;
  /** 'register': a new v4 client; 'migrate': a v3 client that proved its RSA key. */
  readonly via: 'register' | 'migrate';
}

/** Fingerprint bindings. Backends: storage/disk/v4-identities.ts, storage/memory/v4-store.ts. */
export interface V4Store {
  findByFingerprint(fingerprint: string): Promise<V4Identity | undefined>;
  findByClientId(clientId: Buffer): Promise<V4Identity | undefined>;
  /** False when the fingerprint or the client id is bound already (a client moves once). */
  bind(identity: V4Identity): Promise<boolean>;
  unbind(fingerprint: string): Promise<void>;
  listIdentities(): Promise<V4Identity[]>;
  close(): Promise<void>;
}

/** Which upload a partial belongs to: the same client, name, size and content check resume. */
export interface PartialKey {
  readonly clientIdHex: string;
  readonly fileName: string;
  readonly size: number;
  /** 32 bytes from UPLOAD_BEGIN (docs/protocol-v4.md §5.5). */
  readonly check: Buffer;
  /** Start at 0 even when a recorded partial matches: a pipelined upload (§5.10). */
  readonly fresh?: boolean;
}

/** One upload's received bytes, kept across connections and restarts until done or too old. */
export interface PartialUpload {
  /** Durable bytes present when opened: the upload continues from here. */
  readonly offset: number;
  /** The local file holding the bytes, when the file store may adopt it whole (disk). */
  readonly localPath?: string;
  /** Bytes [0, end) as they were written. */
  contents(end: number): AsyncIterable<Buffer>;
  write(data: Buffer): Promise<void>;
  /** Makes everything written durable and records it; returns the durable offset. */
  checkpoint(): Promise<number>;
  /** Checkpoints and lets go of the file; it stays for a later resume. */
  close(): Promise<void>;
  /** Deletes the partial (done, or its bytes were wrong). */
  remove(): Promise<void>;
}

export interface PartialStore {
  /**
   * Opens the partial of `key`: the recorded one when name, size and check match (cut back to
   * its durable offset), else a new empty one replacing any other partial of that name.
   */
  open(key: PartialKey): Promise<PartialUpload>;
  /** Removes partials not written since `olderThan` (ms since the epoch); returns how many. */
  sweep(olderThan: number): Promise<number>;
}

export interface V4Context {
  readonly base: SessionContext;
  readonly identities: V4Store;
  readonly partials: PartialStore;
  /** Random bytes for challenges and ids' retries. */
  readonly random: (size: number) => Buffer;
  /** Largest DATA payload this server accepts (at most 1 MiB). */
  readonly maxChunk: number;
  /** Shortest time between two checkpoints of a partial while data streams in. */
  readonly checkpointIntervalMs: number;
  /** Uploads in progress on any v4 connection, by `<client hex>/<file name>`. */
  readonly activeUploads: Set<string>;
  /** List, download and delete (docs/protocol-v4.md §5.6, §5.7); absent: refused as STORAGE. */
  readonly files?: V4FileAccess;
  /** The signed key set answered to KEYS (docs/protocol-v4.md §2.5); absent: none published. */
  readonly keySet?: () => KeySet | undefined;
}

export type V4ErrorName = keyof typeof WireErrorCode;

/** A refusal of the v4 session, named like its wire code; `fatal` closes the connection. */
export class V4SessionError extends CodedError<V4ErrorName> {
  override readonly name = 'V4SessionError';

  constructor(
    code: V4ErrorName,
    message: string,
    readonly fatal = false,
  ) {
    super(code, message);
  }

  get wire(): WireErrorCode {
    return WireErrorCode[this.code];
  }
}

export function v4Error(code: V4ErrorName, message: string, fatal = false): V4SessionError {
  return new V4SessionError(code, message, fatal);
}
