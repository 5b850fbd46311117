/**
 * A v4 client session (docs/protocol-v4.md §5): choose the protocol (auto, v4, v3), open the
 * TLS channel, check the server's fingerprint against the pin or pin it on first use, then
 * HELLO and, unless the certificate is known already, MIGRATE (a v3 client with me.info) or
 * REGISTER. No file byte is sent before the fingerprint check passed.
 */
import { sign } from 'node:crypto';
import {
  IdentityStatus,
  MAX_CHUNK_SIZE,
  migrationStatement,
  MIGRATION_EXPORTER_LABEL,
  MIGRATION_EXPORTER_LENGTH,
  PROTOCOL_VERSION_4,
  RequestCode,
  ResponseCode,
  WireErrorCode,
  type Welcome,
} from '../../protocol/v4';
import { clientIdToHex } from '../../shared/client-id';
import type { Identity as KeyIdentity } from '../../shared/identity';
import type { Identity as V3Identity } from '../config/identity';
import type { ServerAddress } from '../config/server-address';
import { ClientErrorCode, clientError } from '../errors';
import type { ClientLog } from '../session/types';
import { openChannel } from './channel';
import { expect, expectFailure } from './errors';
import { recordKnownServer, staleEntryHint, type KnownServer } from './known-servers';
import {
  downgrade,
  hasV4Identity,
  loadPins,
  choosesV3,
  type ProtocolChoice,
} from './protocol-choice';
import { V4Link } from './link';
import type { V4Plan } from './plan';
import { UploadPipeline } from './pipeline';
import type { V4UploadEvents, V4UploadResult } from './upload';
import type { UploadOptions } from './compress';
import { learnServerKeys } from './key-rotation';
import { IDENTITY_KEY_FILE, loadClientIdentity } from './client-identity';

export { IDENTITY_KEY_FILE, hasV4Identity, type ProtocolChoice };
/** A v3-only peer that swallows the TLS hello is given up on after this long (auto). */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 3000;
const NO_CONTEXT = Buffer.alloc(0);

export interface V4SessionOptions {
  readonly configDir: string;
  readonly server: ServerAddress;
  readonly protocol: ProtocolChoice;
  /** `--server-fingerprint`: pins explicitly, no trust on first use. */
  readonly serverFingerprint: string | undefined;
  /** Name to register under when the server does not know this client. */
  readonly registerName: string | undefined;
  /** me.info of a v3 registration, moved to v4 on first contact. */
  readonly v3Identity: V3Identity | undefined;
  readonly connectTimeoutMs: number;
  readonly responseTimeoutMs: number;
  readonly handshakeTimeoutMs?: number;
  /** One-line notices (first contact, fallback): stderr in the CLI. */
  readonly notice: (line: string) => void;
  readonly events?: V4UploadEvents;
  readonly log: ClientLog;
}

/** What an extra connection needs beyond the first session (see openExtra). */
export interface ExtraSessionOptions {
  readonly server: ServerAddress;
  readonly connectTimeoutMs: number;
  readonly responseTimeoutMs: number;
  readonly handshakeTimeoutMs?: number;
  /** Gives the connection up while it opens. */
  readonly signal?: AbortSignal;
}

export type V4Open =
  { readonly kind: 'v3' } | { readonly kind: 'v4'; readonly session: V4ClientSession };

function mismatch(options: V4SessionOptions, expected: string, got: string): Error {
  const address = options.server.display;
  return clientError(
    ClientErrorCode.IDENTITY_MISMATCH,
    `the server at ${address} is not the one pinned for it: expected ${expected}, ` +
      `it presented ${got}. Someone may be intercepting the connection; nothing was sent`,
    {
      hint: options.serverFingerprint
        ? 'check --server-fingerprint with the server operator (sft-server identity)'
        : staleEntryHint(options.configDir, address),
    },
  );
}

export class V4ClientSession {
  private readonly uploads: UploadPipeline;

  private constructor(
    private readonly link: V4Link,
    private readonly chunkSize: number,
    readonly clientId: Buffer,
    readonly name: string,
    /** True when this run registered (false: the certificate was known, or migrated). */
    readonly registered: boolean,
    readonly migrated: boolean,
    readonly serverFingerprint: string,
    private readonly events: V4UploadEvents,
    private readonly key: KeyIdentity,
  ) {
    this.uploads = new UploadPipeline(link, chunkSize, events);
  }

  /**
   * Opens a v4 session, or says to use v3 (auto against a v3-only server not known as v4, or
   * `--protocol v3`). Throws IDENTITY_MISMATCH / DOWNGRADE_REFUSED (exit 6) before any file
   * byte is sent.
   */
  static async open(options: V4SessionOptions): Promise<V4Open> {
    const address = options.server.display;
    if (await choosesV3(options)) return { kind: 'v3' };
    const { known, pinned, accepted } = await loadPins(options);
    const key = await loadClientIdentity(options.configDir);
    const outcome = await openChannel(options.server, key, {
      connectTimeoutMs: options.connectTimeoutMs,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    });
    if (outcome.kind === 'not-v4') {
      if (pinned !== undefined) {
        throw downgrade(options, 'is known to speak version 4', outcome.reason);
      }
      if (options.protocol === 'v4')
        throw downgrade(options, 'was asked for --protocol v4', outcome.reason);
      options.notice(
        `${address} does not speak protocol v4 (${outcome.reason}); ` +
          'falling back to v3, which does not authenticate the server',
      );
      await recordKnownServer(options.configDir, { address, protocol: 'v3' });
      return { kind: 'v3' };
    }
    const { socket, fingerprint } = outcome;
    if (pinned !== undefined && !accepted.includes(fingerprint)) {
      socket.destroy();
      throw mismatch(options, pinned, fingerprint);
    }
    if (pinned === undefined || known?.protocol !== 'v4') {
      if (pinned === undefined) {
        options.notice(`first contact with ${address}: server fingerprint ${fingerprint} (pinned)`);
      }
      const entry: KnownServer = { address, protocol: 'v4', fingerprint };
      await recordKnownServer(options.configDir, entry);
    }
    const link = new V4Link(socket, address, options.responseTimeoutMs);
    try {
      return {
        kind: 'v4',
        session: await V4ClientSession.start(link, socket, key, fingerprint, options),
      };
    } catch (err) {
      link.close();
      throw err;
    }
  }

  private static async start(
    link: V4Link,
    socket: { exportKeyingMaterial(length: number, label: string, context: Buffer): Buffer },
    key: KeyIdentity,
    serverFingerprint: string,
    options: V4SessionOptions,
  ): Promise<V4ClientSession> {
    await link.send({
      code: RequestCode.HELLO,
      version: PROTOCOL_VERSION_4,
      maxChunk: MAX_CHUNK_SIZE,
    });
    const welcome: Welcome = expect(
      link.remote,
      'HELLO',
      await link.receive('HELLO'),
      ResponseCode.WELCOME,
    );
    await learnServerKeys(link, serverFingerprint, {
      configDir: options.configDir,
      address: options.server.display,
      explicitPin: options.serverFingerprint !== undefined,
      log: options.log,
    });
    const events = options.events ?? {};
    const make = (
      id: Buffer,
      name: string,
      registered: boolean,
      migrated: boolean,
    ): V4ClientSession =>
      new V4ClientSession(
        link,
        welcome.chunkSize,
        id,
        name,
        registered,
        migrated,
        serverFingerprint,
        events,
        key,
      );
    if (welcome.status === IdentityStatus.KNOWN) {
      options.log.debug({ clientId: clientIdToHex(welcome.clientId) }, 'v4: certificate known');
      return make(welcome.clientId, welcome.name, false, false);
    }
    const v3 = options.v3Identity;
    if (v3 !== undefined) {
      const statement = migrationStatement(
        socket.exportKeyingMaterial(
          MIGRATION_EXPORTER_LENGTH,
          MIGRATION_EXPORTER_LABEL,
          NO_CONTEXT,
        ),
        welcome.challenge,
        v3.clientId,
        v3.name,
        key.fingerprint,
      );
      await link.send({
        code: RequestCode.MIGRATE,
        clientId: v3.clientId,
        name: v3.name,
        signature: sign('sha256', statement, v3.privateKey),
      });
      const answer = await link.receive('MIGRATE');
      if (answer.code === ResponseCode.REGISTERED) {
        options.notice(
          `moved client ${clientIdToHex(answer.clientId)} (${v3.name}) to protocol v4`,
        );
        return make(answer.clientId, v3.name, false, true);
      }
      // The server does not know that v3 client: register anew, as v3 does after 1606.
      if (answer.code !== ResponseCode.ERROR || answer.error !== WireErrorCode.MIGRATION_REFUSED) {
        throw expectFailure(link.remote, 'MIGRATE', answer);
      }
      options.log.debug({ reason: answer.text }, 'v4: migration refused, registering anew');
    }
    const name = options.registerName ?? v3?.name;
    if (name === undefined) {
      throw clientError(ClientErrorCode.CONFIG_MISSING, 'no client name to register under', {
        hint: 'give --name or line 2 of transfer.info',
      });
    }
    await link.send({ code: RequestCode.REGISTER, name });
    const registered = expect(
      link.remote,
      'REGISTER',
      await link.receive('REGISTER'),
      ResponseCode.REGISTERED,
    );
    return make(registered.clientId, name, true, false);
  }

  /**
   * Another connection of this client, to send files beside this one. It must present the
   * fingerprint this session checked (so it is never a first contact, a fallback to v3 or
   * another server: IDENTITY_MISMATCH), and the server must know this client's certificate
   * already (it never registers or migrates: REJECTED). Prints nothing.
   */
  async openExtra(options: ExtraSessionOptions): Promise<V4ClientSession> {
    const address = options.server.display;
    const outcome = await openChannel(options.server, this.key, {
      connectTimeoutMs: options.connectTimeoutMs,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
      signal: options.signal,
    });
    if (outcome.kind === 'not-v4') {
      throw clientError(
        ClientErrorCode.CONNECTION_LOST,
        `extra connection to ${address} failed: ${outcome.reason}`,
      );
    }
    if (outcome.fingerprint !== this.serverFingerprint) {
      outcome.socket.destroy();
      throw clientError(
        ClientErrorCode.IDENTITY_MISMATCH,
        `an extra connection to ${address} presented the server fingerprint ` +
          `${outcome.fingerprint}, not ${this.serverFingerprint} as the first one did. Someone ` +
          'may be intercepting the connection; nothing was sent over it',
        { hint: 'check the fingerprint with the server operator (sft-server identity)' },
      );
    }
    const link = new V4Link(outcome.socket, address, options.responseTimeoutMs);
    const close = (): void => link.close();
    options.signal?.addEventListener('abort', close, { once: true });
    try {
      await link.send({
        code: RequestCode.HELLO,
        version: PROTOCOL_VERSION_4,
        maxChunk: MAX_CHUNK_SIZE,
      });
      const welcome = expect(address, 'HELLO', await link.receive('HELLO'), ResponseCode.WELCOME);
      if (welcome.status !== IdentityStatus.KNOWN || !welcome.clientId.equals(this.clientId)) {
        throw clientError(
          ClientErrorCode.REJECTED,
          `${address} does not know this client's certificate on an extra connection`,
        );
      }
      return new V4ClientSession(
        link,
        welcome.chunkSize,
        this.clientId,
        this.name,
        false,
        false,
        this.serverFingerprint,
        this.events,
        this.key,
      );
    } catch (err) {
      link.close();
      throw err;
    } finally {
      options.signal?.removeEventListener('abort', close);
    }
  }

  /** The open link and its chunk size, for the file commands (files.ts, download.ts). */
  get channel(): { readonly link: V4Link; readonly chunkSize: number } {
    return { link: this.link, chunkSize: this.chunkSize };
  }

  /**
   * Sends one file. May be called again before earlier uploads are done: files that fit one
   * chunk are pipelined, up to PIPELINE_WINDOW at once (docs/protocol-v4.md §5.10); a larger
   * one waits for them and goes alone.
   */
  upload(plan: V4Plan, options: UploadOptions = {}): Promise<V4UploadResult> {
    return this.uploads.upload(plan, options);
  }

  /** Whether a file of `size` bytes would share the connection with other uploads. */
  pipelines(size: number): boolean {
    return this.uploads.pipelines(size);
  }

  close(): void {
    this.link.close();
  }
}
