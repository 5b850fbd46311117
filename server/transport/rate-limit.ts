/**
 * Token buckets keyed by remote address (the registration rate limit, `--register-rate`). The clock is
 * passed in, so tests drive time; buckets that have refilled completely are forgotten, which
 * keeps the map bounded by the addresses active in the last `burst / perSecond` seconds.
 */
import type { RateLimit } from './limits';

interface Bucket {
  tokens: number;
  updatedAt: number;
}

const MS_PER_SECOND = 1000;
/** Prune full buckets once the map holds this many keys. */
const PRUNE_THRESHOLD = 4096;

export class KeyedRateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly limit: RateLimit,
    private readonly now: () => number,
  ) {}

  /** Takes one token for `key`; false when the bucket is empty (over the limit). */
  take(key: string): boolean {
    const now = this.now();
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= PRUNE_THRESHOLD) this.prune(now);
      bucket = { tokens: this.limit.burst, updatedAt: now };
      this.buckets.set(key, bucket);
    } else {
      this.refill(bucket, now);
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  get size(): number {
    return this.buckets.size;
  }

  private refill(bucket: Bucket, now: number): void {
    const elapsed = Math.max(0, now - bucket.updatedAt) / MS_PER_SECOND;
    bucket.tokens = Math.min(this.limit.burst, bucket.tokens + elapsed * this.limit.perSecond);
    bucket.updatedAt = now;
  }

  private prune(now: number): void {
    for (const [key, bucket] of this.buckets) {
      this.refill(bucket, now);
      if (bucket.tokens >= this.limit.burst) this.buckets.delete(key);
    }
  }
}
