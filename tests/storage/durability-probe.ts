/**
 * The probe of the durability tests: an ordered log, in this process, of what the durability
 * of an upload depends on (opens, writes, fsync/fdatasync, renames, folder creation, SQLite
 * statements and COMMITs) and of every answer the server writes to a socket. The rules an
 * answered upload must satisfy in that log are in durability-rules.ts.
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import sqlite3 from 'sqlite3';
import { Reply } from '../helpers/raw-client';

export type ProbeEvent =
  | {
      readonly kind: 'open';
      readonly seq: number;
      readonly handle: FileHandle;
      readonly path: string;
    }
  | {
      readonly kind: 'write';
      readonly seq: number;
      readonly done: number;
      readonly handle: FileHandle;
    }
  | {
      readonly kind: 'sync';
      readonly seq: number;
      readonly done: number;
      readonly handle: FileHandle;
      readonly ok: boolean;
    }
  | {
      readonly kind: 'rename';
      readonly seq: number;
      readonly done: number;
      readonly from: string;
      readonly to: string;
    }
  | { readonly kind: 'mkdir'; readonly seq: number; readonly done: number; readonly path: string }
  | {
      readonly kind: 'row';
      readonly seq: number;
      readonly done: number;
      readonly params: unknown[];
    }
  | { readonly kind: 'sql'; readonly seq: number; readonly done: number; readonly sql: string }
  | {
      readonly kind: 'answer';
      readonly seq: number;
      readonly code: number;
      readonly clientHex: string;
      readonly fileName: string;
    }
  | {
      /** A version-4 answer frame, as the server's TLS socket was given it (plaintext). */
      readonly kind: 'v4-answer';
      readonly seq: number;
      readonly code: number;
      readonly frame: Buffer;
      readonly socket: Socket;
    };

/** The ordered log of everything the durability of an upload depends on. */
export class Probe {
  private seq = 0;
  readonly events: ProbeEvent[] = [];
  private readonly restores: Array<() => void> = [];
  /** Sockets of the test's clients: their writes are requests, not answers. */
  readonly clientSockets = new Set<Socket>();
  /** Paths handles were opened on. */
  readonly paths = new WeakMap<FileHandle, string>();
  /** fsyncs of files whose path this accepts fail with EIO, as a failing disk's would. */
  failSyncOf: (path: string) => boolean = () => false;

  next(): number {
    return ++this.seq;
  }

  /** Replaces `object[name]` by a wrapper; undone by `restore`. */
  wrap<T extends object, K extends keyof T>(
    object: T,
    name: K,
    make: (original: T[K]) => T[K],
  ): void {
    const original = object[name];
    object[name] = make(original);
    this.restores.push(() => (object[name] = original));
  }

  restore(): void {
    for (const undo of this.restores.splice(0).reverse()) undo();
  }

  /** Runs `call` (a promise or a node callback) and stamps its start and its completion. */
  timed<T>(
    start: (seq: number) => void,
    call: () => Promise<T>,
    done: (seq: number, ok: boolean) => void,
  ): Promise<T> {
    start(this.next());
    return call().then(
      (value) => {
        done(this.next(), true);
        return value;
      },
      (err: unknown) => {
        done(this.next(), false);
        throw err;
      },
    );
  }
}

/** Added to every fsync, so one that is not awaited shows as late instead of racing the answer. */
const SYNC_DELAY_MS = 25;

type AnyFn = (...args: never[]) => unknown;

export async function installProbe(probe: Probe, scratch: string): Promise<void> {
  const sample = await fsp.open(join(scratch, 'prototype-sample'), 'w');
  const handleProto = Object.getPrototypeOf(sample) as Record<string, AnyFn>;
  await sample.close();

  probe.wrap(
    fsp,
    'open',
    (original) =>
      async function (this: unknown, ...args: Parameters<typeof fsp.open>) {
        const handle = await original.apply(this, args);
        probe.paths.set(handle, String(args[0]));
        probe.events.push({ kind: 'open', seq: probe.next(), handle, path: String(args[0]) });
        return handle;
      } as typeof fsp.open,
  );
  for (const name of ['write', 'writev'] as const) {
    probe.wrap(
      handleProto,
      name,
      (original) =>
        function (this: FileHandle, ...args: never[]) {
          const seq = probe.next();
          return (original.apply(this, args) as Promise<unknown>).then((value) => {
            probe.events.push({ kind: 'write', seq, done: probe.next(), handle: this });
            return value;
          });
        },
    );
  }
  for (const name of ['sync', 'datasync'] as const) {
    probe.wrap(
      handleProto,
      name,
      (original) =>
        function (this: FileHandle, ...args: never[]) {
          const seq = probe.next();
          const record = (ok: boolean): void => {
            probe.events.push({ kind: 'sync', seq, done: probe.next(), handle: this, ok });
          };
          if (probe.failSyncOf(probe.paths.get(this) ?? '')) {
            record(false);
            return Promise.reject(
              Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }),
            );
          }
          return (original.apply(this, args) as Promise<unknown>).then(
            async (value) => {
              // A slow disk: a sync the server starts but does not wait for ends after the answer.
              await new Promise((resolve) => setTimeout(resolve, SYNC_DELAY_MS));
              record(true);
              return value;
            },
            (err: unknown) => {
              record(false);
              throw err;
            },
          );
        },
    );
  }
  probe.wrap(
    fsp,
    'rename',
    (original) =>
      async function (this: unknown, from, to) {
        const seq = probe.next();
        await original.call(this, from, to);
        probe.events.push({
          kind: 'rename',
          seq,
          done: probe.next(),
          from: String(from),
          to: String(to),
        });
      } as typeof fsp.rename,
  );
  probe.wrap(
    fsp,
    'mkdir',
    (original) =>
      async function (this: unknown, ...args: Parameters<typeof fsp.mkdir>) {
        const seq = probe.next();
        const made = await original.apply(this, args);
        probe.events.push({ kind: 'mkdir', seq, done: probe.next(), path: String(args[0]) });
        return made;
      } as typeof fsp.mkdir,
  );

  const statementProto = sqlite3.Statement.prototype as unknown as Record<string, AnyFn>;
  probe.wrap(
    statementProto,
    'run',
    (original) =>
      function (this: unknown, params: unknown[], callback: (err: Error | null) => void) {
        const seq = probe.next();
        return original.call(
          this,
          params as never,
          function (this: unknown, err: Error | null) {
            if (!err)
              probe.events.push({ kind: 'row', seq, done: probe.next(), params: [...params] });
            callback.call(this, err);
          } as never,
        );
      },
  );
  const databaseProto = sqlite3.Database.prototype as unknown as Record<string, AnyFn>;
  probe.wrap(
    databaseProto,
    'run',
    (original) =>
      function (
        this: unknown,
        sql: string,
        params: unknown,
        callback: (err: Error | null) => void,
      ) {
        const seq = probe.next();
        return original.call(
          this,
          sql as never,
          params as never,
          function (this: unknown, err: Error | null) {
            if (!err) probe.events.push({ kind: 'sql', seq, done: probe.next(), sql });
            callback.call(this, err);
          } as never,
        );
      },
  );

  // Scripts too: a transaction begun by one must not pass for a statement committing alone.
  probe.wrap(
    databaseProto,
    'exec',
    (original) =>
      function (this: unknown, sql: string, callback: (err: Error | null) => void) {
        const seq = probe.next();
        return original.call(
          this,
          sql as never,
          function (this: unknown, err: Error | null) {
            if (!err) probe.events.push({ kind: 'sql', seq, done: probe.next(), sql });
            callback.call(this, err);
          } as never,
        );
      },
  );

  const socketProto = Socket.prototype as unknown as Record<string, AnyFn>;
  probe.wrap(
    socketProto,
    'write',
    (original) =>
      function (this: Socket, ...args: never[]) {
        const chunk = args[0] as unknown;
        if (this instanceof TLSSocket) {
          // The server's side of a v4 connection writes whole answer frames (code u16 LE first).
          if (isServerSide(this) && Buffer.isBuffer(chunk) && chunk.length >= 6) {
            probe.events.push({
              kind: 'v4-answer',
              seq: probe.next(),
              code: chunk.readUInt16LE(0),
              frame: Buffer.from(chunk),
              socket: this,
            });
          }
        } else if (!probe.clientSockets.has(this) && Buffer.isBuffer(chunk) && chunk.length >= 7) {
          const code = chunk.readUInt16LE(1);
          const nameAt = 7 + 16 + 4;
          const nul = chunk.indexOf(0, nameAt);
          const received = code === Reply.FILE_RECEIVED;
          probe.events.push({
            kind: 'answer',
            seq: probe.next(),
            code,
            clientHex: received ? chunk.toString('hex', 7, 7 + 16) : '',
            fileName: received ? chunk.toString('utf8', nameAt, nul) : '',
          });
        }
        return original.apply(this, args);
      },
  );
}

/** True for a TLS socket the server made for an accepted connection. */
function isServerSide(socket: TLSSocket): boolean {
  return (
    (socket as unknown as { _tlsOptions?: { isServer?: boolean } })._tlsOptions?.isServer === true
  );
}

export function handlesOpenedOn(probe: Probe, path: string): Set<FileHandle> {
  return new Set(
    probe.events.flatMap((e) => (e.kind === 'open' && e.path === path ? [e.handle] : [])),
  );
}
