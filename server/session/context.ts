/**
 * What the flows of one connection's session share: the server-wide context (stores, limits,
 * locks, randomness and clock) and the per-connection state, including the binding of the
 * connection to one client (docs/protocol.md §9, sessions are per connection).
 */
import type { Logger } from 'pino';
import type { ServerLimits } from '../transport/limits';
import type { BufferBudget } from '../transport/buffer-budget';
import type { MemoryNudge } from '../transport/gc-nudge';
import type { Auditor } from './audit';
import type { DecryptLockout } from './lockout';
import type { QuotaLedger } from './quota-ledger';
import type { Sources } from './sources';
import type { Upload } from './upload';
import type { SpaceReserve } from '../storage/space-reserve';
import type { ClientStore, FileCatalog, FileStore } from '../storage/types';

/** What every session of one server shares. */
export interface SessionContext {
  /** Client records, file metadata and the audit trail. */
  readonly store: ClientStore & FileCatalog;
  readonly files: FileStore;
  readonly sources: Sources;
  readonly limits: ServerLimits;
  /** Registration rate limit per remote address. */
  readonly registerLimiter: { take(key: string): boolean };
  /** Serializes changes to one stored file (`<client hex>/<name>`) across connections. */
  readonly fileLocks: { run<T>(key: string, work: () => Promise<T>): Promise<T> };
  /** Bytes of uploads in progress per client, for `--quota`. */
  readonly quotaLedger: QuotaLedger;
  /** Refuses 1027/1028 after repeated decrypt failures for one id from one address. */
  readonly lockout: DecryptLockout;
  /** Server-wide bound on plaintext gathered by uploads before it reaches the disk. */
  readonly budget?: BufferBudget;
  /** `--gc-nudge`: collects young garbage every few MiB of transfer data (v3 and v4). */
  readonly memory?: MemoryNudge;
  /** `--disk-reserve`: admits uploads, and is told of storage failures (a full disk). */
  readonly space?: SpaceReserve;
}

/**
 * The client this connection speaks for, set only by a successful 1026 or 1027 on this
 * connection (§9). `aesKey` is this connection's own session key: uploads on the connection
 * are deciphered with it, never with whatever key another connection stored since.
 */
export interface Binding {
  readonly clientId: Buffer;
  readonly clientIdHex: string;
  readonly name: string;
  readonly aesKey: Buffer;
}

/**
 * An upload that was answered with 1607: its remaining packets are dropped without an answer,
 * so a client that sends all packets before reading sees one 1607 per attempt (§9).
 */
export interface BrokenUpload {
  readonly clientId: Buffer;
  /** Raw file-name bytes up to the NUL, as latin1 (the name may not decode). */
  readonly nameKey: string;
  readonly contentSize: number;
  readonly origSize: number;
  readonly totalPackets: number;
  lastPacket: number;
}

/** The mutable state of one connection's session. */
export class SessionState {
  binding: Binding | undefined;
  upload: Upload | undefined;
  broken: BrokenUpload | undefined;
  /**
   * Files this connection stored (answered 1603) and the client has not yet confirmed or
   * given up: the only names 1029/1030/1031 on this connection may refer to (§9).
   */
  readonly storedHere = new Set<string>();
  disposed = false;
  /** Gives back the `--quota` reservation of the upload in progress. */
  private releaseQuota: () => void = () => undefined;

  setQuotaRelease(release: () => void): void {
    this.releaseQuota = release;
  }

  /** The quota release of the upload in progress, leaving a no-op in its place. */
  takeQuotaRelease(): () => void {
    const release = this.releaseQuota;
    this.releaseQuota = () => undefined;
    return release;
  }
}

/** Everything a flow handler needs: shared context, this connection's state, its log. */
export interface Flow {
  readonly ctx: SessionContext;
  readonly state: SessionState;
  readonly remoteAddress: string;
  readonly log: Logger;
  readonly audit: Auditor;
}
