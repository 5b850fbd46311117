/**
 * Decrypt failures are evidence of an attack (docs/protocol.md §9): every known client encrypts
 * with the key it was given and produces valid PKCS#7 padding, so a 1028 upload that fails to
 * decrypt (bad padding, or sizes that do not add up) means someone is guessing. After
 * `maxFailures` such uploads for one client id from one address within `windowMs`, further
 * 1027/1028 for that id from that address are refused for `lockMs`.
 *
 * Keyed by (id, address) so an attacker cannot lock the real client out from elsewhere. The
 * table is bounded: past `maxEntries` the entry touched longest ago is forgotten.
 */
export interface LockoutPolicy {
  /** Decrypt failures within the window that trigger a lockout (0 = never lock out). */
  readonly maxFailures: number;
  readonly windowMs: number;
  readonly lockMs: number;
  /** Tracked (id, address) pairs; the oldest is dropped beyond this. */
  readonly maxEntries: number;
}

export const DEFAULT_LOCKOUT: LockoutPolicy = {
  maxFailures: 3,
  windowMs: 10 * 60 * 1000,
  lockMs: 15 * 60 * 1000,
  maxEntries: 100_000,
};

interface Entry {
  /** Times of failures inside the window, oldest first. */
  failures: number[];
  lockedUntil: number;
}

export type FailureVerdict = 'counted' | 'locked';

export class DecryptLockout {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly policy: LockoutPolicy,
    private readonly now: () => number,
  ) {}

  /** Milliseconds left on a lockout of `clientIdHex` from `address`, or 0. */
  lockedFor(clientIdHex: string, address: string): number {
    const entry = this.entries.get(key(clientIdHex, address));
    if (entry === undefined) return 0;
    return Math.max(0, entry.lockedUntil - this.now());
  }

  /** Records one decrypt failure; 'locked' when this one starts a lockout. */
  recordFailure(clientIdHex: string, address: string): FailureVerdict {
    if (this.policy.maxFailures <= 0) return 'counted';
    const k = key(clientIdHex, address);
    const now = this.now();
    const entry = this.entries.get(k) ?? { failures: [], lockedUntil: 0 };
    // Re-inserted so the Map's order is least recently touched first.
    this.entries.delete(k);
    this.entries.set(k, entry);
    entry.failures = entry.failures.filter((t) => now - t < this.policy.windowMs);
    entry.failures.push(now);
    this.prune();
    if (entry.failures.length >= this.policy.maxFailures) {
      entry.failures = [];
      entry.lockedUntil = now + this.policy.lockMs;
      return 'locked';
    }
    return 'counted';
  }

  /** Pairs tracked now (bounded by `maxEntries`). */
  get size(): number {
    return this.entries.size;
  }

  private prune(): void {
    while (this.entries.size > this.policy.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }
}

function key(clientIdHex: string, address: string): string {
  return `${clientIdHex} ${address}`;
}
