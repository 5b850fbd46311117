/**
 * The server's Prometheus metrics (prom-client), on a registry of its own per server, never
 * the library's process-wide default registry. Connection counts and refusals are read from
 * the listener's own counters when scraped; requests, storage errors, upload durations and
 * group-commit batch sizes are counted by the storage wrappers of metered.ts as they happen.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What the listener already counts (transport/listener.ts `stats`, `connectionCount`). */
export interface ListenerCounters {
  readonly connectionCount: number;
  readonly stats: {
    readonly accepted: number;
    readonly refusedFull: number;
    readonly refusedPerIp: number;
    readonly evictedIdle: number;
    readonly closedIdle: number;
    readonly closedSlow: number;
    readonly bytesIn: number;
    readonly bytesOut: number;
  };
}

/** Where a storage error came from. */
export type StorageSide = 'database' | 'storage';

/** Upload durations, seconds: from 10 ms (small files on loopback) to 30 min (4 GiB, slow links). */
const UPLOAD_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'code' | 'result'>;
  private readonly bytesIn: Counter;
  private readonly uploads: Histogram;
  private readonly storageErrors: Counter<'side' | 'code'>;
  private readonly batches: Histogram;
  private listener: ListenerCounters | undefined;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'sft_' });
    const listener = (): ListenerCounters | undefined => this.listener;
    new Gauge({
      name: 'sft_connections_open',
      help: 'Connections open now',
      registers,
      collect() {
        this.set(listener()?.connectionCount ?? 0);
      },
    });
    new Counter({
      name: 'sft_connections_accepted_total',
      help: 'Connections accepted since start',
      registers,
      collect() {
        this.reset();
        this.inc(listener()?.stats.accepted ?? 0);
      },
    });
    new Counter({
      name: 'sft_refusals_total',
      help: 'Connections refused or closed by a limit, by reason',
      labelNames: ['reason'],
      registers,
      collect() {
        const stats = listener()?.stats;
        if (stats === undefined) return;
        this.reset();
        this.inc({ reason: 'max_connections' }, stats.refusedFull);
        this.inc({ reason: 'max_connections_per_ip' }, stats.refusedPerIp);
        this.inc({ reason: 'evicted_idle' }, stats.evictedIdle);
        this.inc({ reason: 'idle_timeout' }, stats.closedIdle);
        this.inc({ reason: 'too_slow' }, stats.closedSlow);
      },
    });
    new Counter({
      name: 'sft_bytes_in_total',
      help: 'Bytes read from client connections, counted when a connection closes',
      registers,
      collect() {
        this.reset();
        this.inc(listener()?.stats.bytesIn ?? 0);
      },
    });
    new Counter({
      name: 'sft_bytes_out_total',
      help: 'Bytes written to client connections, counted when a connection closes',
      registers,
      collect() {
        this.reset();
        this.inc(listener()?.stats.bytesOut ?? 0);
      },
    });
    this.requests = new Counter({
      name: 'sft_requests_total',
      help: 'Requests by request code and result (the outcome written to the audit trail)',
      labelNames: ['code', 'result'],
      registers,
    });
    this.bytesIn = new Counter({
      name: 'sft_upload_bytes_in_total',
      help: 'File bytes received and written to storage (plaintext)',
      registers,
    });
    this.uploads = new Histogram({
      name: 'sft_upload_duration_seconds',
      help: 'Time from the first packet of an upload to its publication',
      buckets: UPLOAD_BUCKETS,
      registers,
    });
    this.storageErrors = new Counter({
      name: 'sft_storage_errors_total',
      help: 'Failures of the database or the byte storage, by side and error code',
      labelNames: ['side', 'code'],
      registers,
    });
    this.batches = new Histogram({
      name: 'sft_group_commit_batch_size',
      help: 'Writes committed together in one database transaction (group commit)',
      buckets: BATCH_BUCKETS,
      registers,
    });
  }

  /** Reads connection and refusal counts from `listener` at every scrape. */
  watchListener(listener: ListenerCounters): void {
    this.listener = listener;
  }

  request(code: number, result: string): void {
    this.requests.inc({ code: String(code), result });
  }

  received(bytes: number): void {
    this.bytesIn.inc(bytes);
  }

  uploadFinished(seconds: number): void {
    this.uploads.observe(seconds);
  }

  storageError(side: StorageSide, code: string): void {
    this.storageErrors.inc({ side, code });
  }

  batch(size: number): void {
    this.batches.observe(size);
  }

  /** The Prometheus text exposition of everything. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
