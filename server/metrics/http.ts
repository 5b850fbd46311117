/**
 * The operations endpoint (`--metrics-port`): `/metrics` in Prometheus text format, `/healthz`
 * (the process is up and serving this) and `/readyz` (the database and the byte storage answer
 * now) for a load balancer's health checks. Loopback only unless `--metrics-host` says
 * otherwise: it tells anyone who can reach it how busy the server is.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../shared/logger';
import type { ServerMetrics } from './metrics';

export const DEFAULT_METRICS_HOST = '127.0.0.1';

export interface ReadinessProbe {
  /** Resolves when the backend answers; rejects with the reason otherwise. */
  (): Promise<void>;
}

export interface MetricsServerOptions {
  readonly port: number;
  readonly host?: string;
  readonly metrics: ServerMetrics;
  /** Each named probe must pass for `/readyz` to answer 200. */
  readonly probes: Readonly<Record<string, ReadinessProbe>>;
  /** Longest a probe may take before it counts as failed. */
  readonly probeTimeoutMs?: number;
  readonly logger?: Logger;
}

export interface MetricsServer {
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
}

const DEFAULT_PROBE_TIMEOUT_MS = 2000;

function withTimeout(probe: ReadinessProbe, ms: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    probe().then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

async function readiness(
  probes: Readonly<Record<string, ReadinessProbe>>,
  timeoutMs: number,
): Promise<{ ready: boolean; body: string }> {
  const lines = await Promise.all(
    Object.entries(probes).map(async ([name, probe]) => {
      try {
        await withTimeout(probe, timeoutMs);
        return { ok: true, line: `${name}: ok` };
      } catch (err) {
        return { ok: false, line: `${name}: ${(err as Error).message}` };
      }
    }),
  );
  return {
    ready: lines.every((entry) => entry.ok),
    body: `${lines.map((entry) => entry.line).join('\n')}\n`,
  };
}

export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const timeoutMs = options.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const reply = (status: number, type: string, body: string): void => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      reply(405, 'text/plain', 'method not allowed\n');
      return;
    }
    switch (path) {
      case '/metrics':
        options.metrics.render().then(
          (text) => reply(200, options.metrics.contentType, text),
          (err: unknown) => {
            options.logger?.error({ err }, 'cannot render metrics');
            reply(500, 'text/plain', 'metrics failed\n');
          },
        );
        return;
      case '/healthz':
        reply(200, 'text/plain', 'ok\n');
        return;
      case '/readyz':
        void readiness(options.probes, timeoutMs).then(({ ready, body }) =>
          reply(ready ? 200 : 503, 'text/plain', body),
        );
        return;
      default:
        reply(404, 'text/plain', 'not found\n');
    }
  });
  const host = options.host ?? DEFAULT_METRICS_HOST;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => options.logger?.error({ err }, 'metrics endpoint error'));
  const address = server.address() as AddressInfo;
  return {
    port: address.port,
    host: address.address,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
