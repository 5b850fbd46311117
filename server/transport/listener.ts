/**
 * The TCP listener: accepts connections within its limits, gives each a Session and
 * a Connection, sweeps idle and trickling ones on one shared timer, and shuts down gracefully.
 */
import net, { type AddressInfo, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { errnoCode } from '../../shared/errno';
import { silentLogger } from '../../shared/logger';
import { Connection, type CloseReason } from './connection';
import { SniffingConnection, type ServedConnection } from './tls-sniff';
import { createV4Stack, type V4ConnectionFactory, type V4Options } from './tls-v4';
import { resolveLimits, type ServerLimits } from './limits';
import { KeyedLock } from '../storage/keyed-lock';
import { QuotaLedger } from '../session/quota-ledger';
import { DecryptLockout } from '../session/lockout';
import { BufferBudget } from './buffer-budget';
import type { MemoryNudge } from './gc-nudge';
import { KeyedRateLimiter } from './rate-limit';
import { Session, type SessionContext } from '../session/session';
import { systemSources, type Sources } from '../session/sources';
import type { ClientStore, FileCatalog, FileStore } from '../storage/types';

export interface ServerOptions {
  readonly store: ClientStore & FileCatalog;
  readonly files: FileStore;
  readonly sources?: Sources;
  readonly logger?: Logger;
  readonly limits?: Partial<ServerLimits>;
  /** `--gc-nudge`: a collector of young garbage during uploads; none by default. */
  readonly memory?: MemoryNudge;
  /** The version-4 stack (TLS on the same port, docs/protocol-v4.md §1); absent: v3 only. */
  readonly v4?: V4Options;
  /** False refuses v3 connections (`--v3 off`); only meaningful with `v4`. Default true. */
  readonly v3?: boolean;
  /** `--disk-reserve`: the data folder's space reserve; absent: none. */
  readonly space?: SessionContext['space'];
  /** Per-file locks shared with other servers (a shared database); default: this server's. */
  readonly fileLocks?: SessionContext['fileLocks'];
  /** `--quota` reservations shared with other servers; default: this server's own. */
  readonly quotaLedger?: QuotaLedger;
}

/** Counters of everything the server refused or closed; logged with each refusal. */
export interface ServerStats {
  accepted: number;
  refusedFull: number;
  refusedPerIp: number;
  evictedIdle: number;
  closedIdle: number;
  closedSlow: number;
  /** Bytes read from and written to sockets that have closed (TLS records included). */
  bytesIn: number;
  bytesOut: number;
}

export interface SftServer {
  /** Listens; without `host`, on all interfaces ('::', or '0.0.0.0' without IPv6). */
  listen(port: number, host?: string): Promise<AddressInfo>;
  /**
   * Stops accepting, closes quiet connections, gives uploads in flight `graceMs` to finish,
   * then closes the rest. Does not close the store (the owner does, after this resolves).
   */
  close(graceMs?: number): Promise<void>;
  readonly connectionCount: number;
  readonly stats: Readonly<ServerStats>;
  readonly limits: ServerLimits;
}

/** Longest pause between sweeps of idle and slow connections. */
const MAX_SWEEP_INTERVAL_MS = 1000;
const MIN_SWEEP_INTERVAL_MS = 50;
/** How often a shutting-down server looks for connections that became quiet. */
const SHUTDOWN_POLL_MS = 50;
const IPV4_MAPPED_PREFIX = '::ffff:';

/** `::ffff:1.2.3.4` and `1.2.3.4` are one peer for per-address limits. */
export function normalizeAddress(address: string | undefined): string {
  if (address === undefined) return 'unknown';
  return address.startsWith(IPV4_MAPPED_PREFIX) && address.includes('.')
    ? address.slice(IPV4_MAPPED_PREFIX.length)
    : address;
}

export function createServer(options: ServerOptions): SftServer {
  return new Server(options);
}

class Server implements SftServer {
  readonly limits: ServerLimits;
  readonly stats: ServerStats = {
    accepted: 0,
    refusedFull: 0,
    refusedPerIp: 0,
    evictedIdle: 0,
    closedIdle: 0,
    closedSlow: 0,
    bytesIn: 0,
    bytesOut: 0,
  };
  private readonly net: net.Server;
  private readonly connections = new Set<ServedConnection>();
  private readonly v4: V4ConnectionFactory | undefined;
  private readonly v3Enabled: boolean;
  private readonly perIp = new Map<string, number>();
  private readonly context: SessionContext;
  private readonly log: Logger;
  private sweepTimer: NodeJS.Timeout | undefined;
  private nextConnectionId = 1;
  private closing: Promise<void> | undefined;

  constructor(options: ServerOptions) {
    this.limits = resolveLimits(options.limits);
    this.log = options.logger ?? silentLogger();
    const sources = options.sources ?? systemSources();
    this.context = {
      store: options.store,
      files: options.files,
      sources,
      limits: this.limits,
      registerLimiter: new KeyedRateLimiter(this.limits.registerRate, sources.now),
      fileLocks: options.fileLocks ?? new KeyedLock(),
      quotaLedger: options.quotaLedger ?? new QuotaLedger(),
      lockout: new DecryptLockout(this.limits.lockout, sources.now),
      budget: new BufferBudget(this.limits.maxBufferedBytes),
      ...(options.memory === undefined ? {} : { memory: options.memory }),
      ...(options.space === undefined ? {} : { space: options.space }),
    };
    this.v4 = options.v4 ? createV4Stack(this.context, options.v4) : undefined;
    this.v3Enabled = options.v3 ?? true;
    // allowHalfOpen: a client may send everything and half-close before reading the answers.
    this.net = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, (socket) =>
      this.onConnection(socket),
    );
    this.net.on('error', (err) => this.log.error({ err }, 'listener error'));
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  async listen(port: number, host?: string): Promise<AddressInfo> {
    if (host !== undefined) return this.listenOn(port, host);
    try {
      return await this.listenOn(port, '::');
    } catch (err) {
      const code = errnoCode(err);
      if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL') throw err;
      this.log.info('IPv6 is not available; listening on IPv4 only');
      return this.listenOn(port, '0.0.0.0');
    }
  }

  private listenOn(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.net.once('error', onError);
      this.net.listen({ port, host }, () => {
        this.net.off('error', onError);
        this.startSweeping();
        resolve(this.net.address() as AddressInfo);
      });
    });
  }

  close(graceMs: number = this.limits.shutdownGraceMs): Promise<void> {
    this.closing ??= this.shutdown(graceMs);
    return this.closing;
  }

  private async shutdown(graceMs: number): Promise<void> {
    const listenerClosed = new Promise<void>((resolve) => this.net.close(() => resolve()));
    this.log.info(
      { connections: this.connections.size, graceMs },
      'shutting down: no new connections',
    );
    const deadline = performance.now() + graceMs;
    while (this.connections.size > 0 && performance.now() < deadline) {
      for (const c of this.connections) c.closeWhenQuiet();
      if (this.connections.size === 0) break;
      await delay(SHUTDOWN_POLL_MS);
    }
    const remaining = [...this.connections];
    if (remaining.length > 0) {
      this.log.warn({ connections: remaining.length }, 'closing connections still busy');
    }
    for (const c of remaining) c.close('shutdown');
    await Promise.all(remaining.map((c) => c.finished));
    this.stopSweeping();
    await listenerClosed;
  }

  private onConnection(socket: Socket): void {
    socket.once('close', () => {
      this.stats.bytesIn += socket.bytesRead;
      this.stats.bytesOut += socket.bytesWritten;
    });
    const remote = normalizeAddress(socket.remoteAddress);
    if (this.closing) {
      socket.destroy();
      return;
    }
    const fromThisIp = this.perIp.get(remote) ?? 0;
    if (fromThisIp >= this.limits.maxConnectionsPerIp) {
      this.stats.refusedPerIp++;
      this.log.warn(
        { remote, open: fromThisIp, refusedPerIp: this.stats.refusedPerIp },
        'connection refused: too many from this address',
      );
      socket.destroy();
      return;
    }
    if (this.connections.size >= this.limits.maxConnections && !this.evictIdlest()) {
      this.stats.refusedFull++;
      this.log.warn(
        { remote, open: this.connections.size, refusedFull: this.stats.refusedFull },
        'connection refused: server full and no connection idle',
      );
      socket.destroy();
      return;
    }
    this.stats.accepted++;
    this.perIp.set(remote, fromThisIp + 1);
    const id = this.nextConnectionId++;
    const log = this.log.child({ conn: id, remote });
    const clock = (): number => performance.now();
    const v3 = (s: Socket, onClosed: (c: ServedConnection) => void): Connection =>
      new Connection(s, new Session(this.context, remote, log), remote, {
        maxChunk: this.limits.maxChunk,
        budget: this.context.budget,
        log,
        clock,
        onClosed,
      });
    const v4 = this.v4;
    // Without a v4 stack every connection is v3 from its first byte, as before.
    const connection: ServedConnection =
      v4 === undefined
        ? v3(socket, (c) => this.forget(c))
        : new SniffingConnection(socket, remote, {
            log,
            clock,
            v3: this.v3Enabled ? (s, onClosed) => v3(s, onClosed) : undefined,
            v4: (s, onClosed) => v4(s, remote, log, clock, onClosed),
            onClosed: (c) => this.forget(c),
          });
    this.connections.add(connection);
    log.debug({ port: socket.remotePort }, 'connection opened');
  }

  /**
   * At the global limit: closes the connection idle longest, if any is idle; else
   * the one stalled longest in the middle of sending a request (never one with an upload open
   * or an answer owed).
   */
  private evictIdlest(): boolean {
    let idlest: ServedConnection | undefined;
    let stalled: ServedConnection | undefined;
    for (const c of this.connections) {
      if (c.quiet) {
        if (idlest === undefined || c.lastRequestAt < idlest.lastRequestAt) idlest = c;
      } else if (c.onlyPartialRequest) {
        if (stalled === undefined || c.lastRequestAt < stalled.lastRequestAt) stalled = c;
      }
    }
    idlest ??= stalled;
    if (idlest === undefined) return false;
    this.stats.evictedIdle++;
    this.log.warn(
      { remote: idlest.remoteAddress, evictedIdle: this.stats.evictedIdle },
      'server full: closed the connection idle longest',
    );
    idlest.close('evicted');
    // Counted out now, so the new connection fits even before the socket's close event.
    this.forget(idlest);
    return true;
  }

  private forget(connection: ServedConnection): void {
    if (!this.connections.delete(connection)) return;
    const remote = connection.remoteAddress;
    const left = (this.perIp.get(remote) ?? 1) - 1;
    if (left > 0) this.perIp.set(remote, left);
    else this.perIp.delete(remote);
  }

  private startSweeping(): void {
    if (this.sweepTimer) return;
    const interval = Math.max(
      MIN_SWEEP_INTERVAL_MS,
      Math.min(
        MAX_SWEEP_INTERVAL_MS,
        this.limits.idleTimeoutMs / 4,
        this.limits.slowRequestGraceMs / 4,
      ),
    );
    this.sweepTimer = setInterval(() => this.sweep(), interval);
    this.sweepTimer.unref();
  }

  private stopSweeping(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  private sweep(): void {
    const now = performance.now();
    const { idleTimeoutMs, minRequestRate, slowRequestGraceMs } = this.limits;
    for (const c of this.connections) {
      const reason: CloseReason | undefined = c.sweep(
        now,
        idleTimeoutMs,
        minRequestRate,
        slowRequestGraceMs,
      );
      if (reason === 'idle') this.stats.closedIdle++;
      if (reason === 'slow') this.stats.closedSlow++;
      if (reason !== undefined) {
        this.log.info(
          {
            remote: c.remoteAddress,
            reason,
            closedIdle: this.stats.closedIdle,
            closedSlow: this.stats.closedSlow,
          },
          reason === 'idle'
            ? 'closed an idle connection'
            : 'closed a connection trickling a request',
        );
      }
    }
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
