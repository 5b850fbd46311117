/**
 * Durability before the answer (docs/protocol.md §5.4, §7): when a client reads 1603, its file's
 * bytes, the file's directory entry and its row must already be on stable storage. A SIGKILL
 * cannot show a missing flush (the page cache outlives the process), so this test watches the
 * flushes themselves, in the real server (SQLite + disk) running in this process: every fsync
 * and fdatasync, rename, folder creation, SQLite statement and COMMIT, and every answer the
 * server writes to a socket, in one ordered log. For each answered upload it then requires:
 * - the temp file was synced after its last write and before its rename;
 * - the rename was done, and then its folder synced, before the answer;
 * - a new client folder's entry in the data directory was synced before the answer;
 * - the row was written and a COMMIT (with synchronous = FULL) followed it before the answer.
 */
import { promises as fsp } from 'node:fs';
import { readdir } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { Socket } from 'node:net';
import { dirname, join } from 'node:path';
import sqlite3 from 'sqlite3';
import { Cksum } from '../../shared/cksum';
import { INCOMING_DIR } from '../../server/storage/disk/byte-store';
import {
  fileReceived,
  reconnect,
  Reply,
  uploadPackets,
  type RawClient,
} from '../helpers/raw-client';
import {
  registerWithKey,
  removeDir,
  startRealServer,
  tempDir,
  type RealServer,
  type Registered,
  unwrapWith,
} from '../server/harness';

type Event =
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
    };

/** The ordered log of everything the durability of an upload depends on. */
class Probe {
  private seq = 0;
  readonly events: Event[] = [];
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

async function installProbe(probe: Probe, scratch: string): Promise<void> {
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

  const socketProto = Socket.prototype as unknown as Record<string, AnyFn>;
  probe.wrap(
    socketProto,
    'write',
    (original) =>
      function (this: Socket, ...args: never[]) {
        const chunk = args[0] as unknown;
        if (!probe.clientSockets.has(this) && Buffer.isBuffer(chunk) && chunk.length >= 7) {
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

function handlesOpenedOn(probe: Probe, path: string): Set<FileHandle> {
  return new Set(
    probe.events.flatMap((e) => (e.kind === 'open' && e.path === path ? [e.handle] : [])),
  );
}

/** True when a statement's parameters name this client's file (its id and its name). */
function isRowOf(params: unknown[], clientHex: string, fileName: string): boolean {
  return (
    params.includes(fileName) &&
    params.some((p) => Buffer.isBuffer(p) && p.toString('hex') === clientHex)
  );
}

/** The rules of the header this file's 1603 broke (none when it was durable in time). */
function brokenRules(probe: Probe, dataDir: string, clientHex: string, fileName: string): string[] {
  const events = probe.events;
  const answer = events.find(
    (e) =>
      e.kind === 'answer' &&
      e.code === Reply.FILE_RECEIVED &&
      e.clientHex === clientHex &&
      e.fileName === fileName,
  );
  if (answer === undefined) return [`${fileName}: no 1603 was written`];
  const before = (seq: number): boolean => seq < answer.seq;
  const destination = join(dataDir, clientHex, fileName);
  const broken: string[] = [];
  const rule = (ok: boolean, text: string): void => {
    if (!ok) broken.push(`${fileName}: ${text} before its 1603`);
  };
  const handlesOf = (path: string): Set<FileHandle> =>
    new Set(events.flatMap((e) => (e.kind === 'open' && e.path === path ? [e.handle] : [])));
  const syncedBetween = (handles: Set<FileHandle>, after: number): boolean =>
    events.some(
      (e) => e.kind === 'sync' && handles.has(e.handle) && e.ok && e.seq > after && before(e.done),
    );

  // The file: synced after its last write, before the rename that published it.
  const rename = events
    .flatMap((e) => (e.kind === 'rename' && e.to === destination && before(e.done) ? [e] : []))
    .at(-1);
  if (rename === undefined) return [`${fileName}: not renamed into place before its 1603`];
  const temp = handlesOf(rename.from);
  rule(temp.size > 0, 'temp file opened through fs');
  const lastWrite = Math.max(
    0,
    ...events.flatMap((e) => (e.kind === 'write' && temp.has(e.handle) ? [e.done] : [])),
  );
  rule(
    events.some(
      (e) =>
        e.kind === 'sync' && temp.has(e.handle) && e.ok && e.seq > lastWrite && e.done < rename.seq,
    ),
    'file synced after its last write and before its rename',
  );

  // Its directory entry: the folder synced after the rename.
  const folder = dirname(destination);
  rule(syncedBetween(handlesOf(folder), rename.done), 'folder synced after the rename');

  // A new client folder: its entry in the data directory synced after it was made.
  const made = events.find((e) => e.kind === 'mkdir' && e.path === folder);
  if (made !== undefined && made.kind === 'mkdir') {
    rule(
      syncedBetween(handlesOf(dataDir), made.done),
      'new client folder synced into the data directory',
    );
  }

  // The row: written, then a COMMIT with no rollback in between.
  const row = events
    .flatMap((e) =>
      e.kind === 'row' && isRowOf(e.params, clientHex, fileName) && before(e.done) ? [e] : [],
    )
    .at(-1);
  let committed = false;
  if (row !== undefined) {
    for (const e of events) {
      if (e.kind !== 'sql' || e.seq < row.done || !before(e.done)) continue;
      if (/^ROLLBACK/i.test(e.sql)) break;
      if (/^COMMIT/i.test(e.sql)) {
        committed = true;
        break;
      }
    }
  }
  rule(committed, 'row written and committed');
  return broken;
}

function data(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 131 + seed * 7) & 0xff;
  return b;
}

function cksum(b: Buffer): number {
  const c = new Cksum();
  c.update(b);
  return c.digest();
}

let probe: Probe;
let scratch: string;
let server: RealServer;

beforeEach(async () => {
  probe = new Probe();
  scratch = await tempDir('sft-durability-');
  await installProbe(probe, scratch);
  server = await startRealServer();
});

afterEach(async () => {
  await server.close();
  probe.restore();
  await removeDir(server.dataDir);
  await removeDir(scratch);
});

async function connected(): Promise<RawClient> {
  const client = await server.connect();
  probe.clientSockets.add(client.socket);
  return client;
}

async function upload(
  client: RawClient,
  me: Registered,
  name: string,
  plaintext: Buffer,
): Promise<void> {
  const r = await client.request(uploadPackets(me.id, name, me.aesKey, plaintext));
  expect(r.code).toBe(Reply.FILE_RECEIVED);
  expect(fileReceived(r).cksum).toBe(cksum(plaintext));
}

describe('an answered upload is on stable storage before its 1603', () => {
  it('the SQLite connection commits with synchronous = FULL', async () => {
    // The probe went in before the server opened its database.
    const pragmas = probe.events.filter(
      (e) => e.kind === 'sql' && /PRAGMA\s+synchronous/i.test(e.sql),
    );
    expect(
      pragmas.map((e) => (e.kind === 'sql' ? e.sql.replace(/\s+/g, ' ').toUpperCase() : '')).at(-1),
    ).toMatch(/SYNCHRONOUS = (FULL|EXTRA|2|3)$/);
  });

  it('one upload after another on one connection: file, folder entry and row', async () => {
    const client = await connected();
    const me = await registerWithKey(client, 'durable one');
    const names = ['first.bin', 'second.bin', 'large.bin'];
    await upload(client, me, names[0], data(10_000, 1));
    await upload(client, me, names[1], data(1, 2));
    // Over the writer's background-sync threshold: the last sync must still follow the last write.
    await upload(client, me, names[2], data(9 * 1024 * 1024 + 5, 3));
    const hex = me.id.toString('hex');
    expect(names.flatMap((name) => brokenRules(probe, server.dataDir, hex, name))).toEqual([]);
  });

  it('uploads that finish together on many connections of many clients: every one', async () => {
    const clients = await Promise.all(Array.from({ length: 6 }, () => connected()));
    const people = await Promise.all(
      clients.map((c, i) => registerWithKey(c, `durable many ${i}`)),
    );
    await Promise.all(
      clients.map(async (c, i) => {
        for (let k = 0; k < 3; k++)
          await upload(c, people[i], `f-${k}.bin`, data(100 * 1024, i * 3 + k));
      }),
    );
    const broken = people.flatMap((person) =>
      [0, 1, 2].flatMap((k) =>
        brokenRules(probe, server.dataDir, person.id.toString('hex'), `f-${k}.bin`),
      ),
    );
    expect(broken).toEqual([]);
  });

  it('connections of one client that finish together share its folder fsync, each upload durable', async () => {
    const first = await connected();
    const me = await registerWithKey(first, 'durable shared folder');
    const hex = me.id.toString('hex');
    await upload(first, me, 'opens-the-folder.bin', data(10, 9));
    const clients = await Promise.all(Array.from({ length: 8 }, () => connected()));
    // Each connection binds itself (1027) and gets its own session key (§9).
    const keys = await Promise.all(
      clients.map(async (c) => {
        const r = await c.request(reconnect(me.id, me.name));
        expect(r.code).toBe(Reply.RECONNECTED);
        return unwrapWith(me.keys, r.payload.subarray(16, 16 + 128));
      }),
    );
    const from = probe.next();
    const names = clients.map((_, i) => `together-${i}.bin`);
    await Promise.all(
      clients.map((c, i) => upload(c, { ...me, aesKey: keys[i] }, names[i], data(50_000, i))),
    );
    expect(names.flatMap((name) => brokenRules(probe, server.dataDir, hex, name))).toEqual([]);
    const folder = handlesOpenedOn(probe, join(server.dataDir, hex));
    const folderSyncs = probe.events.filter(
      (e) => e.kind === 'sync' && e.seq > from && folder.has(e.handle),
    );
    expect(folderSyncs.length).toBeGreaterThan(0);
    expect(folderSyncs.length).toBeLessThan(names.length);
  });

  it('a failing file fsync fails only the upload it belongs to', async () => {
    const clients = await Promise.all(Array.from({ length: 3 }, () => connected()));
    const people = await Promise.all(
      clients.map((c, i) => registerWithKey(c, `durable failing ${i}`)),
    );
    const [failing, ...others] = people.map((person) => person.id.toString('hex'));
    probe.failSyncOf = (path) => path.includes(`${INCOMING_DIR}/${failing}-`);
    const answers = await Promise.all(
      clients.map((c, i) =>
        c.request(uploadPackets(people[i].id, 'batch.bin', people[i].aesKey, data(80_000, i))),
      ),
    );
    expect(answers.map((r) => r.code)).toEqual([
      Reply.ERROR,
      Reply.FILE_RECEIVED,
      Reply.FILE_RECEIVED,
    ]);
    expect(others.flatMap((hex) => brokenRules(probe, server.dataDir, hex, 'batch.bin'))).toEqual(
      [],
    );
    // Nothing of the failed upload: no row, no file, no temp file.
    expect(await server.store.findFile(people[0].id, 'batch.bin')).toBeUndefined();
    const failedFolder = await readdir(join(server.dataDir, failing)).catch(() => []);
    expect(failedFolder).toEqual([]);
    const incoming = await readdir(join(server.dataDir, INCOMING_DIR));
    expect(incoming.filter((name) => name.startsWith(failing))).toEqual([]);
    // The disk recovers: the same client's next upload on the same connection is stored.
    probe.failSyncOf = () => false;
    await upload(clients[0], people[0], 'batch.bin', data(80_000, 0));
  });
});
