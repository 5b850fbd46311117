/**
 * `--quota` reservations of uploads in flight, seen by every instance sharing the database.
 * The session asks its ledger synchronously when an upload begins (QuotaLedger), so this one
 * answers from memory: its own reservations, plus those of the other instances as last read
 * from the table `quota_reservations`, refreshed every `refreshMs`. Its own are written there
 * as they are made and given back, and kept alive by a heartbeat; rows of an instance that died
 * expire after `ttlMs`. Two uploads beginning on two instances within one refresh can still
 * pass the quota together; uploads started earlier on another instance count.
 */
import { randomBytes } from 'node:crypto';
import type { Pool } from 'pg';
import type { Logger } from '../../../shared/logger';
import { QuotaLedger } from '../../session/quota-ledger';
import { run } from './database';

export const DEFAULT_REFRESH_MS = 500;
export const DEFAULT_TTL_MS = 30_000;

export interface SharedQuotaSettings {
  readonly refreshMs?: number;
  readonly ttlMs?: number;
  readonly now: () => number;
  readonly logger?: Logger;
}

export class SharedQuotaLedger extends QuotaLedger {
  /** Bytes reserved by uploads of this instance, per client hex. */
  private readonly own = new Map<string, number>();
  /** Bytes reserved by other instances, per client hex, as last read. */
  private others = new Map<string, number>();
  private readonly instance = randomBytes(16);
  private nextId = 1;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly refreshMs: number;
  private readonly ttlMs: number;

  constructor(
    private readonly pool: Pool,
    private readonly settings: SharedQuotaSettings,
  ) {
    super();
    this.refreshMs = settings.refreshMs ?? DEFAULT_REFRESH_MS;
    this.ttlMs = settings.ttlMs ?? DEFAULT_TTL_MS;
    const every = (ms: number, job: () => Promise<void>): void => {
      const timer = setInterval(() => {
        job().catch((err: unknown) =>
          this.settings.logger?.warn({ err }, 'quota reservations not shared just now'),
        );
      }, ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(this.refreshMs, () => this.refresh());
    every(Math.max(this.refreshMs, this.ttlMs / 3), () => this.heartbeat());
  }

  override reservedBy(client: string): number {
    return (this.own.get(client) ?? 0) + (this.others.get(client) ?? 0);
  }

  /** This instance's reservations (the base class would count the others' into them). */
  private ownReserve(client: string, bytes: number): () => void {
    this.own.set(client, (this.own.get(client) ?? 0) + bytes);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      const left = (this.own.get(client) ?? 0) - bytes;
      if (left > 0) this.own.set(client, left);
      else this.own.delete(client);
    };
  }

  override reserve(client: string, bytes: number): () => void {
    const release = this.ownReserve(client, bytes);
    const id = this.nextId;
    this.nextId += 1;
    const written = run(
      this.pool,
      'cannot share a quota reservation',
      'INSERT INTO quota_reservations (instance, id, client_id, bytes, expires_at) ' +
        'VALUES ($1, $2, $3, $4, $5)',
      [this.instance, id, Buffer.from(client, 'hex'), bytes, this.settings.now() + this.ttlMs],
    ).catch((err: unknown) => {
      this.settings.logger?.warn({ err }, 'quota reservation not shared');
    });
    return () => {
      release();
      void written.then(() =>
        run(
          this.pool,
          'cannot give back a quota reservation',
          'DELETE FROM quota_reservations WHERE instance = $1 AND id = $2',
          [this.instance, id],
        ).catch((err: unknown) => {
          // Expires by itself after the TTL.
          this.settings.logger?.warn({ err }, 'quota reservation not given back');
        }),
      );
    };
  }

  /** Clients with uploads in progress on this instance. */
  override get size(): number {
    return this.own.size;
  }

  /** Reads the other instances' live reservations. */
  async refresh(): Promise<void> {
    const { rows } = await run<{ client_id: Buffer; bytes: number }>(
      this.pool,
      'cannot read quota reservations',
      'SELECT client_id, sum(bytes)::bigint AS bytes FROM quota_reservations ' +
        'WHERE instance <> $1 AND expires_at > $2 GROUP BY client_id',
      [this.instance, this.settings.now()],
    );
    this.others = new Map(rows.map((row) => [row.client_id.toString('hex'), row.bytes]));
  }

  private async heartbeat(): Promise<void> {
    const now = this.settings.now();
    await run(
      this.pool,
      'cannot renew quota reservations',
      'UPDATE quota_reservations SET expires_at = $2 WHERE instance = $1',
      [this.instance, now + this.ttlMs],
    );
    await run(
      this.pool,
      'cannot drop expired reservations',
      'DELETE FROM quota_reservations WHERE expires_at < $1',
      [now],
    );
  }

  /** Stops sharing and drops this instance's rows. */
  async end(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    await run(
      this.pool,
      'cannot drop quota reservations',
      'DELETE FROM quota_reservations WHERE instance = $1',
      [this.instance],
    ).catch(() => undefined);
  }
}
