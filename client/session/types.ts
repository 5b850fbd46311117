/** What a client session reports and returns; shared by the flows, the runner and the output. */
import type { Identity } from '../config/identity';
import type { UploadPlan } from './upload-plan';

/** Debug logging; pino's Logger fits. */
export interface ClientLog {
  debug(fields: Record<string, unknown>, message: string): void;
}

export const silentLog: ClientLog = { debug: () => undefined };

/** What a session reports as it goes; the output turns these into text. All optional. */
export interface SessionEvents {
  /** A request got 1607 or an unusable answer and will be repeated (or has failed for good). */
  serverError(what: string, reason: string): void;
  registered(identity: Identity): void;
  reconnected(identity: Identity): void;
  /** 1606: the server does not know us (any more); registering anew as `name`. */
  reconnectRefused(name: string): void;
  uploadStarted(plan: UploadPlan, attempt: number): void;
  uploadProgress(plan: UploadPlan, bytesSent: number): void;
  checksumMismatch(plan: UploadPlan, ours: number, theirs: number, resend: number): void;
}

export interface UploadResult {
  /** Path the file was read from. */
  readonly file: string;
  /** Name it was sent and stored under. */
  readonly fileName: string;
  readonly bytes: number;
  /** cksum of the plaintext (§6). */
  readonly cksum: number;
  /** True when the server's cksum matched and it acknowledged 1029. */
  readonly verified: boolean;
  /** Whole uploads sent: 1 when the first one matched. */
  readonly uploads: number;
  readonly seconds: number;
}
