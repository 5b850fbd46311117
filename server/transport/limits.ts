/**
 * Connection-level and storage limits of the server, with the defaults the CLI uses.
 * Every limit is an option so tests and benchmarks can raise them; the defaults stay strict.
 */
import { DEFAULT_MAX_CHUNK } from '../../protocol/v3/constants';
import { DEFAULT_LOCKOUT, type LockoutPolicy } from '../session/lockout';

export interface RateLimit {
  /** Tokens added per second. */
  readonly perSecond: number;
  /** Bucket size: requests allowed at once after a quiet period. */
  readonly burst: number;
}

export interface ServerLimits {
  /** Open connections in total; at the limit the longest-idle one makes room. */
  readonly maxConnections: number;
  /** Open connections per remote address. */
  readonly maxConnectionsPerIp: number;
  /** A connection that completes no request for this long is closed. */
  readonly idleTimeoutMs: number;
  /** Largest 1028 content per packet (docs/protocol.md §9: any packet size up to the limit). */
  readonly maxChunk: number;
  /** Largest plaintext (orig size) of one file; checked on packet 1. */
  readonly maxFileSize: number;
  /** Plaintext bytes one client may have stored; checked on packet 1. */
  readonly quota: number;
  /** Registrations (1025) per remote address. */
  readonly registerRate: RateLimit;
  /**
   * Slowest acceptable arrival of a started request, in bytes per second, enforced once the
   * request has been arriving for `slowRequestGraceMs` (slowloris defence).
   */
  readonly minRequestRate: number;
  readonly slowRequestGraceMs: number;
  /** On shutdown, how long uploads in flight may take to finish. */
  readonly shutdownGraceMs: number;
  /** Server-wide upload bytes held in memory before reads pause (docs/protocol.md §9). */
  readonly maxBufferedBytes: number;
  /** Refusal of 1027/1028 after repeated decrypt failures per id and address (§9). */
  readonly lockout: LockoutPolicy;
}

const SECOND = 1000;

export const DEFAULT_LIMITS: ServerLimits = {
  maxConnections: 1000,
  maxConnectionsPerIp: 50,
  idleTimeoutMs: 60 * SECOND,
  maxChunk: DEFAULT_MAX_CHUNK,
  maxFileSize: Number.MAX_SAFE_INTEGER,
  quota: Number.MAX_SAFE_INTEGER,
  registerRate: { perSecond: 10, burst: 20 },
  // A 1024-byte packet in about a second: far below any real link, far above a trickle.
  minRequestRate: 1024,
  slowRequestGraceMs: 10 * SECOND,
  shutdownGraceMs: 5 * SECOND,
  maxBufferedBytes: 256 * 1024 * 1024,
  lockout: DEFAULT_LOCKOUT,
};

export function resolveLimits(partial: Partial<ServerLimits> = {}): ServerLimits {
  const limits = { ...DEFAULT_LIMITS, ...partial };
  const positive: Array<keyof ServerLimits> = [
    'maxConnections',
    'maxConnectionsPerIp',
    'idleTimeoutMs',
    'maxChunk',
    'maxBufferedBytes',
  ];
  for (const key of positive) {
    const value = limits[key];
    if (typeof value !== 'number' || !(value > 0)) {
      throw new RangeError(`limit ${key} must be a positive number, got ${String(value)}`);
    }
  }
  if (!(limits.registerRate.perSecond > 0) || !(limits.registerRate.burst >= 1)) {
    throw new RangeError('register rate needs a positive rate and a burst of at least 1');
  }
  return limits;
}

const MS_PER_SECOND = 1000;

/** The request a connection is receiving now: when it started and the bytes of it so far. */
export interface ArrivingRequest {
  readonly startedAt: number;
  readonly bytes: number;
}

/**
 * The periodic sweep's verdict on a connection whose peer is the one to act (the server is not
 * busy with it): 'slow' when the request arriving has trickled in below `minRequestRate` for
 * longer than the grace, 'idle' when no complete request came for `idleTimeoutMs` (an open
 * upload whose client stopped sending is idle too). One rule for every protocol version.
 */
export function sweepVerdict(
  now: number,
  lastRequestAt: number,
  arriving: ArrivingRequest | undefined,
  idleTimeoutMs: number,
  minRate: number,
  graceMs: number,
): 'slow' | 'idle' | undefined {
  if (arriving !== undefined) {
    const took = now - arriving.startedAt;
    if (took >= graceMs && (arriving.bytes * MS_PER_SECOND) / took < minRate) return 'slow';
  }
  if (now - lastRequestAt >= idleTimeoutMs) return 'idle';
  return undefined;
}
