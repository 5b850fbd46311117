/**
 * One client session over one connection (docs/protocol.md §5, §8): a session key from
 * reconnect or registration, then uploads, with the §8 rule for errors: on 1607 or an answer it
 * cannot use, say `server responded with an error` and repeat the request, up to three
 * attempts. No socket here: the connection comes from an injected `connect`.
 */
import type { DecodedResponse } from '../../protocol';
import { generateRsaKeyPair, type RsaKeyPair } from '../../shared/crypto';
import { MAX_CHECKSUM_RESENDS, MAX_REQUEST_ATTEMPTS } from '../../shared/limits';
import type { Identity } from '../config/identity';
import { ClientErrorCode, clientError, isClientError } from '../errors';
import type { Transport } from '../transport/connection';
import type { FlowContext, Outcome } from './flow';
import { reconnect, register } from './key-exchange';
import { silentLog, type ClientLog, type SessionEvents, type UploadResult } from './types';
import { uploadFile } from './upload-flow';
import type { UploadPlan } from './upload-plan';

export { silentLog, type ClientLog, type SessionEvents, type UploadResult } from './types';

export interface SessionOptions {
  readonly connect: () => Promise<Transport>;
  /** From me.info: reconnect with it (§5.3). Without it, register. */
  readonly identity?: Identity;
  /** Name to register under (first run, or after 1606). Defaults to the identity's name. */
  readonly registerName?: string;
  /**
   * Never register: a 1606 ends the session with REJECTED. For extra connections of a client
   * whose identity another connection has just established.
   */
  readonly reconnectOnly?: boolean;
  readonly generateKeyPair?: () => Promise<RsaKeyPair>;
  /** Persists a new identity (me.info, priv.key) before its key is sent (§8). */
  readonly saveIdentity?: (identity: Identity) => Promise<void>;
  readonly events?: Partial<SessionEvents>;
  readonly log?: ClientLog;
  /** Milliseconds, monotonic; injected so tests do not depend on the clock. */
  readonly now?: () => number;
  readonly blockSize?: number;
  readonly maxAttempts?: number;
  /**
   * Attempts of each request while open() runs (default maxAttempts). An extra connection
   * that the server refuses is given up at once instead (the first one carries on).
   */
  readonly openAttempts?: number;
  readonly maxResends?: number;
}

export class Session implements FlowContext {
  private transport: Transport | undefined;
  private identity: Identity | undefined;
  private aesKey: Buffer | undefined;
  private registeredNow = false;
  readonly events: Partial<SessionEvents>;
  readonly log: ClientLog;
  private readonly now: () => number;
  private readonly maxAttempts: number;
  private readonly maxResends: number;
  private opening = false;

  constructor(private readonly options: SessionOptions) {
    this.identity = options.identity;
    this.events = options.events ?? {};
    this.log = options.log ?? silentLog;
    this.now = options.now ?? (() => performance.now());
    this.maxAttempts = options.maxAttempts ?? MAX_REQUEST_ATTEMPTS;
    this.maxResends = options.maxResends ?? MAX_CHECKSUM_RESENDS;
  }

  /** The identity in use, once open() has succeeded. */
  get client(): Identity | undefined {
    return this.aesKey ? this.identity : undefined;
  }

  /** True when this session registered (first run or after 1606) instead of reconnecting. */
  get registered(): boolean {
    return this.registeredNow;
  }

  /** Connects and obtains an AES key: reconnect (1027) if we have an identity, else register. */
  async open(): Promise<Identity> {
    this.opening = true;
    try {
      this.transport = await this.options.connect();
      await this.establish();
    } finally {
      this.opening = false;
    }
    return this.identity as Identity;
  }

  close(): void {
    this.transport?.close();
    this.transport = undefined;
  }

  /** Uploads one file; see upload-flow.ts. */
  upload(plan: UploadPlan): Promise<UploadResult> {
    return uploadFile(this, plan, {
      maxResends: this.maxResends,
      blockSize: this.options.blockSize,
      now: this.now,
    });
  }

  get conn(): Transport {
    if (!this.transport) throw new Error('session is not open');
    return this.transport;
  }

  keys(): { readonly identity: Identity; readonly aesKey: Buffer } {
    if (!this.identity || !this.aesKey) throw new Error('session has no key yet');
    return { identity: this.identity, aesKey: this.aesKey };
  }

  private async establish(): Promise<void> {
    if (this.identity) {
      const key = await reconnect(this, this.identity);
      if (key) {
        this.aesKey = key;
        return;
      }
      if (this.options.reconnectOnly) {
        throw clientError(
          ClientErrorCode.REJECTED,
          'the server refused to reconnect this client (1606) on an extra connection',
        );
      }
      this.events.reconnectRefused?.(this.options.registerName ?? this.identity.name);
    }
    const name = this.options.registerName ?? this.identity?.name;
    if (name === undefined) throw new Error('no name to register under');
    this.aesKey = await register(this, {
      name,
      generateKeyPair: this.options.generateKeyPair ?? generateRsaKeyPair,
      saveIdentity: this.options.saveIdentity,
      adopt: (identity) => {
        this.identity = identity;
        this.registeredNow = true;
      },
    });
  }

  async exchange(request: Buffer, what: string): Promise<DecodedResponse> {
    const conn = this.conn;
    await conn.write(request);
    const r = await conn.receive(what);
    this.log.debug(
      r.ok ? { response: r.response.code } : { response: r.header.code, error: r.error.code },
      `answer to ${what}`,
    );
    return r;
  }

  async attempts<T>(what: string, attempt: () => Promise<Outcome<T>>): Promise<T> {
    for (let n = 1; ; n++) {
      let outcome: Outcome<T>;
      try {
        outcome = await attempt();
      } catch (err) {
        // A broken byte stream is an unusable answer too, but only a new connection recovers.
        if (!isClientError(err) || err.code !== ClientErrorCode.PROTOCOL_VIOLATION) throw err;
        outcome = { ok: false, reason: err.message, resync: true };
      }
      if (outcome.ok) return outcome.value;
      this.events.serverError?.(what, outcome.reason);
      this.log.debug({ attempt: n, reason: outcome.reason }, `${what} failed`);
      const limit = this.opening
        ? (this.options.openAttempts ?? this.maxAttempts)
        : this.maxAttempts;
      if (n >= limit) {
        throw clientError(
          ClientErrorCode.SERVER_ERROR,
          `the ${what} failed ${n} times: the server answered with an error (last: ` +
            `${outcome.reason})`,
          {
            hint:
              'the server could not handle the request; try again later, and if it keeps ' +
              "failing ask the server's operator to check its log",
          },
        );
      }
      if (outcome.resync) await this.reopen();
    }
  }

  /** A fresh connection after the byte stream got out of step; re-keys if we had a key. */
  private async reopen(): Promise<void> {
    this.transport?.close();
    this.transport = await this.options.connect();
    if (this.aesKey) {
      this.aesKey = undefined;
      await this.establish();
    }
  }
}
