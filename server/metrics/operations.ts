/**
 * The operations side of one server process, as the daemon uses it: with `--metrics-port`, a
 * registry, storage wrapped for counting (metered.ts) and the HTTP endpoint (http.ts); without
 * it, nothing at all (the storage passes through unwrapped, no port is opened).
 */
import type { Logger } from '../../shared/logger';
import type { ByteStore, Catalog, FileStore } from '../storage/types';
import { startMetricsServer, type MetricsServer } from './http';
import { meterCatalog, meterFileStore } from './metered';
import type { ListenerCounters } from './metrics';

export interface MetricsSettings {
  readonly port: number;
  /** Default 127.0.0.1. */
  readonly host?: string;
}

/** Never a stored key: a read of it only proves the byte store answers. */
const PROBE_KEY = `${'0'.repeat(32)}/.readyz`;
const MS_PER_S = 1000;

export interface Operations {
  /** For the database backend's group commit (undefined without metrics). */
  readonly onBatch: ((size: number) => void) | undefined;
  /** The storage the sessions get: counted when metrics are on. */
  wrap<C extends Catalog>(catalog: C, files: FileStore): { catalog: C; files: FileStore };
  /** Opens the endpoint once the listener runs; `/readyz` probes `catalog` and `bytes`. */
  start(listener: ListenerCounters, catalog: Catalog, bytes: ByteStore): Promise<void>;
  /** The endpoint's address once started. */
  readonly address: { readonly port: number; readonly host: string } | undefined;
  close(): Promise<void>;
}

/** A cheap round trip to the database: an indexed lookup of an id no client has. */
async function probeCatalog(catalog: Catalog): Promise<void> {
  await catalog.findClientById(Buffer.alloc(16));
}

async function probeBytes(bytes: ByteStore): Promise<void> {
  const stream = await bytes.read(PROBE_KEY);
  (stream as { destroy?: () => void } | undefined)?.destroy?.();
}

export async function createOperations(
  settings: MetricsSettings | undefined,
  options: { readonly logger?: Logger; readonly clockMs: () => number },
): Promise<Operations> {
  if (settings === undefined) {
    return {
      onBatch: undefined,
      wrap: (catalog, files) => ({ catalog, files }),
      start: async () => undefined,
      address: undefined,
      close: async () => undefined,
    };
  }
  // Loaded only with --metrics-port: prom-client costs memory in every server.
  const { ServerMetrics } = await import('./metrics');
  const metrics = new ServerMetrics();
  let server: MetricsServer | undefined;
  return {
    onBatch: (size) => metrics.batch(size),
    wrap: (catalog, files) => ({
      catalog: meterCatalog(catalog, metrics),
      files: meterFileStore(files, metrics, () => options.clockMs() / MS_PER_S),
    }),
    async start(listener, catalog, bytes) {
      metrics.watchListener(listener);
      server = await startMetricsServer({
        port: settings.port,
        metrics,
        probes: { database: () => probeCatalog(catalog), storage: () => probeBytes(bytes) },
        ...(settings.host === undefined ? {} : { host: settings.host }),
        ...(options.logger === undefined ? {} : { logger: options.logger }),
      });
      options.logger?.info({ port: server.port, host: server.host }, 'metrics endpoint listening');
    },
    get address() {
      return server === undefined ? undefined : { port: server.port, host: server.host };
    },
    async close() {
      await server?.close();
    },
  };
}
