/**
 * The client side of the protocol flow (docs/protocol.md §5, §8): register or reconnect, key
 * exchange, uploads with checksum confirmation and re-sends, and the §8 rule for errors: on
 * 1607 or an answer it cannot use, say `server responded with an error` and repeat the request,
 * up to three attempts. No socket here: the connection comes from an injected `connect`.
 */
import {
  RequestCode,
  ResponseCode,
  encodeRequest,
  type DecodedResponse,
  type FileReceivedResponse,
} from '../protocol';
import { clientIdToHex } from '../shared/client-id';
import {
  encodePublicKeyField,
  generateRsaKeyPair,
  loadPrivateKey,
  unwrapAesKey,
  type RsaKeyPair,
} from '../shared/crypto';
import { MAX_CHECKSUM_RESENDS, MAX_REQUEST_ATTEMPTS } from '../shared/limits';
import type { Identity } from './config';
import type { Transport } from './connection';
import { ClientErrorCode, clientError, isClientError } from './errors';
import { fileNameField, sendFile, type UploadPlan } from './upload';

/** Debug logging; pino's Logger fits. */
export interface ClientLog {
  debug(fields: Record<string, unknown>, message: string): void;
}

export const silentLog: ClientLog = { debug: () => undefined };

/** What a session reports as it goes; output.ts turns these into text. All optional. */
export interface SessionEvents {
  /** A request got 1607 or an unusable answer and will be repeated (or has failed for good). */
  serverError(what: string, reason: string): void;
  registered(identity: Identity): void;
  reconnected(identity: Identity): void;
  /** 1606: the server does not know us (any more); registering anew as `name`. */
  reconnectRefused(name: string): void;
  uploadStarted(plan: UploadPlan, attempt: number): void;
  uploadProgress(plan: UploadPlan, bytesSent: number): void;
  checksumMismatch(plan: UploadPlan, ours: number, theirs: number, resend: number): void;
}

export interface SessionOptions {
  readonly connect: () => Promise<Transport>;
  /** From me.info: reconnect with it (§5.3). Without it, register. */
  readonly identity?: Identity;
  /** Name to register under (first run, or after 1606). Defaults to the identity's name. */
  readonly registerName?: string;
  readonly generateKeyPair?: () => Promise<RsaKeyPair>;
  /** Persists a new identity (me.info, priv.key) before its key is sent (§8). */
  readonly saveIdentity?: (identity: Identity) => Promise<void>;
  readonly events?: Partial<SessionEvents>;
  readonly log?: ClientLog;
  /** Milliseconds, monotonic; injected so tests do not depend on the clock. */
  readonly now?: () => number;
  readonly blockSize?: number;
  readonly maxAttempts?: number;
  readonly maxResends?: number;
}

export interface UploadResult {
  /** Path the file was read from. */
  readonly file: string;
  /** Name it was sent and stored under. */
  readonly fileName: string;
  readonly bytes: number;
  /** cksum of the plaintext (§6). */
  readonly cksum: number;
  /** True when the server's cksum matched and it acknowledged 1029. */
  readonly verified: boolean;
  /** Whole uploads sent: 1 when the first one matched. */
  readonly uploads: number;
  readonly seconds: number;
}

type Outcome<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly reason: string; readonly resync: boolean };

interface Receipt {
  readonly response: FileReceivedResponse;
  /** Our cksum of the plaintext sent. */
  readonly ours: number;
}

const ok = <T>(value: T): Outcome<T> => ({ ok: true, value });

/** A response we cannot use: why, in a few words. */
function describe(r: DecodedResponse): string {
  if (!r.ok) return `malformed ${r.header.code} response: ${r.error.message}`;
  return r.response.code === ResponseCode.GENERAL_ERROR
    ? 'general error 1607'
    : `unexpected response ${r.response.code}`;
}

function unusable<T>(r: DecodedResponse): Outcome<T> {
  return { ok: false, reason: describe(r), resync: false };
}

const ZERO_ID = Buffer.alloc(16);
const noop = (): void => undefined;

export class Session {
  private transport: Transport | undefined;
  private identity: Identity | undefined;
  private aesKey: Buffer | undefined;
  private registeredNow = false;
  private readonly events: Partial<SessionEvents>;
  private readonly log: ClientLog;
  private readonly now: () => number;
  private readonly maxAttempts: number;
  private readonly maxResends: number;

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
    this.transport = await this.options.connect();
    await this.establish();
    return this.identity as Identity;
  }

  close(): void {
    this.transport?.close();
    this.transport = undefined;
  }

  private get conn(): Transport {
    if (!this.transport) throw new Error('session is not open');
    return this.transport;
  }

  private async establish(): Promise<void> {
    if (this.identity && (await this.reconnect(this.identity))) return;
    await this.register();
  }

  /** Sends `request` and returns the next response. */
  private async exchange(request: Buffer, what: string): Promise<DecodedResponse> {
    const conn = this.conn;
    await conn.write(request);
    const r = await conn.receive(what);
    this.log.debug(
      r.ok ? { response: r.response.code } : { response: r.header.code, error: r.error.code },
      `answer to ${what}`,
    );
    return r;
  }

  /** Runs `attempt` until it succeeds, up to maxAttempts, reporting each failure (§8). */
  private async attempts<T>(what: string, attempt: () => Promise<Outcome<T>>): Promise<T> {
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
      if (n >= this.maxAttempts) {
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

  private tryUnwrap(identity: Identity, wrapped: Buffer): Buffer | undefined {
    try {
      return unwrapAesKey(identity.privateKey, wrapped);
    } catch {
      return undefined;
    }
  }

  /** 1027 → 1605 (true) or 1606 (false: register anew). */
  private async reconnect(identity: Identity): Promise<boolean> {
    const what = 'reconnect request (1027)';
    const request = encodeRequest({
      code: RequestCode.RECONNECT,
      clientId: identity.clientId,
      name: identity.name,
    });
    const known = await this.attempts<boolean>(what, async () => {
      const r = await this.exchange(request, what);
      if (r.ok && r.response.code === ResponseCode.RECONNECTED) {
        const key = this.tryUnwrap(identity, r.response.wrappedKey);
        if (!key) {
          return { ok: false, reason: 'the AES key does not decrypt with our key', resync: false };
        }
        this.aesKey = key;
        return ok(true);
      }
      if (r.ok && r.response.code === ResponseCode.RECONNECT_REFUSED) return ok(false);
      return unusable(r);
    });
    if (known) {
      this.events.reconnected?.(identity);
      return true;
    }
    const name = this.options.registerName ?? identity.name;
    this.events.reconnectRefused?.(name);
    this.log.debug({ clientId: clientIdToHex(identity.clientId) }, 'reconnect refused (1606)');
    return false;
  }

  /** 1025 → 1600, new RSA key saved with me.info, 1026 → 1602 (§5.1, §5.2). */
  private async register(): Promise<void> {
    const name = this.options.registerName ?? this.identity?.name;
    if (name === undefined) throw new Error('no name to register under');
    // RSA generation overlaps the registration round trip.
    const keys = (this.options.generateKeyPair ?? generateRsaKeyPair)();
    keys.catch(noop);
    const what = 'registration (1025)';
    const request = encodeRequest({ code: RequestCode.REGISTER, clientId: ZERO_ID, name });
    const clientId = await this.attempts<Buffer>(what, async () => {
      const r = await this.exchange(request, what);
      if (r.ok && r.response.code === ResponseCode.REGISTERED) return ok(r.response.clientId);
      if (r.ok && r.response.code === ResponseCode.REGISTRATION_FAILED) {
        throw clientError(
          ClientErrorCode.REJECTED,
          `rejected by server: it refused to register the name "${name}" (1601)`,
          {
            hint:
              'the name is probably taken by another client: choose another name with --name ' +
              'or on line 2 of transfer.info',
          },
        );
      }
      return unusable(r);
    });
    const pair = await keys;
    const identity: Identity = {
      name,
      clientId,
      privateKey: loadPrivateKey(pair.privateKeyDer),
      privateKeyDer: pair.privateKeyDer,
    };
    await this.options.saveIdentity?.(identity);
    this.identity = identity;
    this.registeredNow = true;
    this.events.registered?.(identity);

    const keyWhat = 'public key (1026)';
    const keyRequest = encodeRequest({
      code: RequestCode.SEND_PUBLIC_KEY,
      clientId,
      name,
      publicKey: encodePublicKeyField(pair.publicKeyDer),
    });
    this.aesKey = await this.attempts<Buffer>(keyWhat, async () => {
      const r = await this.exchange(keyRequest, keyWhat);
      if (r.ok && r.response.code === ResponseCode.KEY_ACCEPTED) {
        const key = this.tryUnwrap(identity, r.response.wrappedKey);
        return key
          ? ok(key)
          : { ok: false, reason: 'the AES key does not decrypt with our key', resync: false };
      }
      if (r.ok && r.response.code === ResponseCode.REGISTRATION_FAILED) {
        throw clientError(
          ClientErrorCode.REJECTED,
          `rejected by server: it refused the public key of "${name}" (1601)`,
          {
            hint:
              'run the client again to register anew; if that fails too, choose another name ' +
              'with --name or on line 2 of transfer.info',
          },
        );
      }
      return unusable(r);
    });
  }

  /**
   * Uploads one file (§5.4, §5.5): whole uploads until the server's cksum matches (1029), at
   * most `maxResends` re-sends after 1030; then 1031 and `verified: false`.
   */
  async upload(plan: UploadPlan): Promise<UploadResult> {
    const started = this.now();
    const nameField = fileNameField(plan.fileName);
    const what = `upload of ${plan.fileName}`;
    let uploads = 0;
    for (let mismatches = 0; ; mismatches++) {
      const receipt = await this.attempts<Receipt>(what, async () => {
        uploads++;
        this.events.uploadStarted?.(plan, uploads);
        const conn = this.conn;
        const identity = this.identity as Identity;
        const sent = await sendFile(plan, identity.clientId, this.aesKey as Buffer, conn, {
          blockSize: this.options.blockSize,
          onProgress: (bytes) => this.events.uploadProgress?.(plan, bytes),
        });
        const r = await conn.receive(`${what} (1028)`);
        this.log.debug(
          r.ok ? { response: r.response.code } : { response: r.header.code },
          `answer to ${what}`,
        );
        if (sent.complete && r.ok && r.response.code === ResponseCode.FILE_RECEIVED) {
          return ok({ response: r.response, ours: sent.cksum });
        }
        // After a failed upload the server may still be answering packets we sent (§9 lets it
        // answer 1607 to each out-of-order packet), so only a new connection is in step again.
        return {
          ok: false,
          reason: sent.complete
            ? describe(r)
            : `the server answered before the upload was complete (${describe(r)})`,
          resync: true,
        };
      });
      const matched = this.receiptMatches(plan, receipt.response, receipt.ours);
      const result = (verified: boolean): UploadResult => ({
        file: plan.path,
        fileName: plan.fileName,
        bytes: plan.size,
        cksum: receipt.ours,
        verified,
        uploads,
        seconds: (this.now() - started) / 1000,
      });
      if (matched) {
        await this.confirm(RequestCode.CHECKSUM_OK, plan, nameField);
        return result(true);
      }
      if (mismatches >= this.maxResends) {
        try {
          await this.confirm(RequestCode.CHECKSUM_ABORT, plan, nameField);
        } catch (err) {
          // The failed checksum is what matters to the user; the missing ack only gets logged.
          if (!isClientError(err) || err.code !== ClientErrorCode.SERVER_ERROR) throw err;
          this.log.debug({ error: err.message }, '1031 was not acknowledged');
        }
        return result(false);
      }
      this.events.checksumMismatch?.(plan, receipt.ours, receipt.response.cksum, mismatches + 1);
      const identity = this.identity as Identity;
      await this.conn.write(
        encodeRequest({
          code: RequestCode.CHECKSUM_RETRY,
          clientId: identity.clientId,
          fileName: plan.fileName,
        }),
      );
    }
  }

  /**
   * §5.5 compares the cksum only. Other servers are known to fill the receipt's size or name
   * loosely, so a difference there is logged, not held against the upload.
   */
  private receiptMatches(plan: UploadPlan, receipt: FileReceivedResponse, ours: number): boolean {
    if (receipt.contentSize !== plan.contentSize || receipt.fileName !== plan.fileName) {
      this.log.debug(
        { contentSize: receipt.contentSize, fileName: receipt.fileName },
        'receipt names another size or file name than the upload',
      );
    }
    if (receipt.cksum !== ours) {
      this.log.debug({ ours, theirs: receipt.cksum }, 'cksum mismatch');
      return false;
    }
    return true;
  }

  /** 1029 or 1031, answered by 1604, after which an echo of the file-name field is tolerated (§9). */
  private async confirm(
    code: typeof RequestCode.CHECKSUM_OK | typeof RequestCode.CHECKSUM_ABORT,
    plan: UploadPlan,
    nameField: Buffer,
  ): Promise<void> {
    const what =
      code === RequestCode.CHECKSUM_OK
        ? `confirmation of ${plan.fileName} (1029)`
        : `report of the failed upload of ${plan.fileName} (1031)`;
    await this.attempts(what, async () => {
      const identity = this.identity as Identity;
      this.conn.skipAfterAck(nameField);
      const r = await this.exchange(
        encodeRequest({ code, clientId: identity.clientId, fileName: plan.fileName }),
        what,
      );
      if (r.ok && r.response.code === ResponseCode.ACKNOWLEDGED) return ok(undefined);
      return unusable(r);
    });
  }
}
