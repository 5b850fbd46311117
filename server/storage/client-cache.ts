/**
 * Decoded client records by id (hex), for a backend that is the only writer of its client rows:
 * each session looks its client up for every request, and with many sessions at once those
 * reads queued behind the writes took most of the connection's time. A backend drops an
 * entry whenever it writes that client's row and puts the committed record back afterwards.
 * Bounded: beyond `max` entries the oldest goes first.
 */
import type { ClientRecord } from './types';

export const DEFAULT_MAX_CACHED_CLIENTS = 10_000;

export class ClientCache {
  private readonly records = new Map<string, ClientRecord>();

  constructor(private readonly max: number = DEFAULT_MAX_CACHED_CLIENTS) {}

  get(hex: string): ClientRecord | undefined {
    return this.records.get(hex);
  }

  /** Caches a record read or committed while no write of it can be under way. */
  remember(hex: string, record: ClientRecord): void {
    if (!this.records.has(hex) && this.records.size >= this.max) {
      const oldest = this.records.keys().next();
      if (!oldest.done) this.records.delete(oldest.value);
    }
    this.records.set(hex, record);
  }

  forget(hex: string): void {
    this.records.delete(hex);
  }

  get size(): number {
    return this.records.size;
  }
}
