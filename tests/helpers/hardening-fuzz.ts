/**
 * Request streams for the fuzz soak: valid sessions (built byte by byte with the raw client,
 * independently of the production encoder), then mutated: bytes flipped, streams truncated,
 * declared sizes and 1028 fields changed, frames dropped, repeated, swapped, garbage inserted;
 * plus pure garbage and hostile file names. Each case is a pure function of (seed, index).
 */
import { cksum } from '../../shared/cksum';
import {
  Code,
  REQUEST_HEADER,
  Reply,
  checksum,
  header,
  reconnect,
  register,
  sendPublicKey,
  uploadPackets,
} from './raw-client';
import { Rng } from './hardening-rng';
import type { ClientKeys } from '../server/harness';

/**
 * A client registered before the soak. Cases that upload as it first bind their connection
 * with a 1027 (docs/protocol.md §9) and encrypt with the session key that answer carries;
 * `aesKey` is the key of the registration's own connection, stale everywhere else.
 */
export interface PoolClient {
  readonly id: Buffer;
  readonly name: string;
  readonly aesKey: Buffer;
  readonly keys: ClientKeys;
  readonly publicKeyDer: Buffer;
}

export interface FuzzContext {
  /** Clients whose key no fuzz case changes: their intact uploads must succeed. */
  readonly stable: readonly PoolClient[];
  /** Clients that fuzz cases reconnect (new key each time): their uploads mostly fail. */
  readonly volatile: readonly PoolClient[];
  /** In every file and client name the fuzzer makes, to find anything written with it. */
  readonly marker: string;
  /** The server's --max-chunk (1028 content bytes per packet). */
  readonly maxChunk: number;
}

export type FuzzKind = 'upload' | 'handshake' | 'volatile' | 'garbage' | 'headers' | 'names';

export interface FuzzCase {
  readonly index: number;
  readonly kind: FuzzKind;
  /** What was done to the valid stream, for failure messages. */
  readonly mutations: readonly string[];
  readonly bytes: Buffer;
  /** Half-close and wait for the server to close, or reset at once. */
  readonly ending: 'end' | 'reset';
  /** Write sizes: the whole stream at once, random pieces, or pieces of a few bytes. */
  readonly split: 'whole' | 'random' | 'tiny';
  /** Intact sessions only: the exact response codes, in order. */
  readonly expectCodes?: readonly number[];
  /** Intact uploads: cksum and name the 1603 must carry. */
  readonly expectFile?: { readonly name: string; readonly cksum: number };
  /**
   * The client whose session the connection must have first (a 1027 answered 1605): the case
   * is then built again with that answer's key, every other choice the same.
   */
  readonly bindAs?: PoolClient;
}

/** Exact payload size of each response code (docs/protocol.md §4). */
export const RESPONSE_SIZES: Readonly<Record<number, number>> = {
  [Reply.REGISTERED]: 16,
  [Reply.REGISTRATION_FAILED]: 0,
  [Reply.KEY_ACCEPTED]: 16 + 128,
  [Reply.FILE_RECEIVED]: 16 + 4 + 255 + 4,
  [Reply.ACK]: 16,
  [Reply.RECONNECTED]: 16 + 128,
  [Reply.RECONNECT_REFUSED]: 16,
  [Reply.ERROR]: 0,
};

const KIND_WEIGHTS: ReadonlyArray<readonly [FuzzKind, number]> = [
  ['upload', 35],
  ['handshake', 15],
  ['volatile', 8],
  ['garbage', 15],
  ['headers', 15],
  ['names', 12],
];
const TOTAL_WEIGHT = KIND_WEIGHTS.reduce((sum, [, w]) => sum + w, 0);

/** Share of upload cases sent intact (their answers are checked exactly). */
const INTACT_UPLOADS = 0.3;
const MAX_GARBAGE = 4096;
const SEND_FILE_FIELDS = ['contentSize', 'origSize', 'packet', 'total'] as const;

function pickKind(rng: Rng): FuzzKind {
  let roll = rng.below(TOTAL_WEIGHT);
  for (const [kind, weight] of KIND_WEIGHTS) {
    if (roll < weight) return kind;
    roll -= weight;
  }
  return 'garbage';
}

function fileSize(rng: Rng): number {
  return rng.pick([0, 1, 15, 16, 17, 1023, 1024, rng.int(0, 3000), rng.int(0, 20000)]);
}

function chunkSize(rng: Rng, maxChunk: number): number {
  return rng.pick([1024, 1024, 16, 100, rng.int(1, 4096), maxChunk]);
}

/** A valid upload (packets) and a confirm, with the answers an intact stream gets. */
function uploadSession(
  rng: Rng,
  ctx: FuzzContext,
  client: PoolClient,
  fileName: string,
  key: Buffer,
): { frames: Buffer[]; codes: number[]; sum: number } {
  const plaintext = rng.bytes(fileSize(rng));
  const packets = uploadPackets(client.id, fileName, key, plaintext, chunkSize(rng, ctx.maxChunk));
  const frames = [...packets];
  const codes: number[] = [Reply.FILE_RECEIVED];
  switch (rng.below(4)) {
    case 0:
      frames.push(checksum(Code.CRC_OK, client.id, fileName));
      codes.push(Reply.ACK);
      break;
    case 1:
      // §5.5: a mismatch, the whole upload again, then the match.
      frames.push(checksum(Code.CRC_RETRY, client.id, fileName), ...packets);
      frames.push(checksum(Code.CRC_OK, client.id, fileName));
      codes.push(Reply.FILE_RECEIVED, Reply.ACK);
      break;
    case 2:
      frames.push(checksum(Code.CRC_ABORT, client.id, fileName));
      codes.push(Reply.ACK);
      break;
    default:
      break; // the client leaves without confirming
  }
  return { frames, codes, sum: cksum(plaintext) };
}

function randomName(rng: Rng, ctx: FuzzContext, index: number): string {
  return `${ctx.marker}-${index}-${rng.u32().toString(36)}`;
}

function handshakeFrames(rng: Rng, ctx: FuzzContext, index: number): Buffer[] {
  const frames: Buffer[] = [];
  const name = randomName(rng, ctx, index);
  const someone = rng.pick(ctx.stable);
  for (let i = rng.int(1, 4); i > 0; i--) {
    switch (rng.below(5)) {
      case 0:
        frames.push(register(name, rng.chance(0.5) ? Buffer.alloc(16) : rng.bytes(16)));
        break;
      case 1:
        // A key for someone else's id, or a random id: both must be refused.
        frames.push(
          sendPublicKey(
            rng.chance(0.5) ? someone.id : rng.bytes(16),
            rng.chance(0.5) ? someone.name : name,
            rng.chance(0.7) ? someone.publicKeyDer : rng.bytes(rng.int(0, 160)),
          ),
        );
        break;
      case 2:
        frames.push(reconnect(rng.chance(0.5) ? someone.id : rng.bytes(16), name));
        break;
      case 3:
        frames.push(checksum(Code.CRC_OK, rng.bytes(16), name));
        break;
      default:
        frames.push(register(rng.bytes(rng.int(0, 255))));
        break;
    }
  }
  return frames;
}

function volatileFrames(rng: Rng, ctx: FuzzContext, index: number): Buffer[] {
  const client = rng.pick(ctx.volatile);
  const frames = [reconnect(client.id, client.name)];
  // Encrypted with the key before the reconnect: padding fails at packet N (or, rarely, sizes).
  frames.push(...uploadSession(rng, ctx, client, `${ctx.marker}-v${index}`, client.aesKey).frames);
  return frames;
}

function hostileNames(ctx: FuzzContext): Array<string | Buffer> {
  const m = ctx.marker;
  return [
    `../${m}`,
    `../../${m}`,
    `/tmp/${m}`,
    `/${m}`,
    `${m}/x`,
    `a\\${m}`,
    `..\\${m}`,
    '..',
    '.',
    '',
    `${m}\u001b[2J`,
    `${m}\n`,
    Buffer.concat([Buffer.from(m), Buffer.from([0, 0x2f, 0x2e, 0x2e])]),
    Buffer.concat([Buffer.from(m), Buffer.from([0xff, 0xfe, 0xc0, 0xaf])]),
    Buffer.alloc(255, m.charCodeAt(0)), // no NUL at all
    `${m}-${'x'.repeat(240)}`,
    `.${m}`,
    `${m} `,
    `CON`,
  ];
}

function namesFrames(rng: Rng, ctx: FuzzContext, client: PoolClient, key: Buffer): Buffer[] {
  const name = rng.pick(hostileNames(ctx));
  switch (rng.below(3)) {
    case 0: {
      const plaintext = rng.bytes(rng.int(0, 2000));
      return uploadPackets(client.id, name, key, plaintext, rng.pick([1024, 300]));
    }
    case 1:
      return [checksum(Code.CRC_OK, client.id, name), checksum(Code.CRC_ABORT, client.id, name)];
    default:
      return [register(name), reconnect(client.id, typeof name === 'string' ? name : 'x')];
  }
}

function headerFrames(rng: Rng, ctx: FuzzContext): Buffer[] {
  const frames: Buffer[] = [];
  const codes = [1025, 1026, 1027, 1028, 1029, 1030, 1031, 0, 1024, 1032, 1600, 0xffff];
  for (let i = rng.int(1, 12); i > 0; i--) {
    const code = rng.chance(0.8) ? rng.pick(codes) : rng.u32() & 0xffff;
    const declared = rng.pick([
      0,
      255,
      415,
      267,
      rng.int(0, 600),
      267 + ctx.maxChunk,
      267 + ctx.maxChunk + 1,
      0xffffffff,
      rng.u32(),
    ]);
    const id = rng.chance(0.5) ? rng.pick(ctx.stable).id : rng.bytes(16);
    const body = rng.bytes(Math.min(declared, rng.int(0, 700)));
    frames.push(Buffer.concat([header(id, code, declared, rng.u32() & 0xff), body]));
  }
  return frames;
}

// ------------------------------------------------------------ mutations

/** Frame-level mutations on the list of frames (sizes and fields stay byte-exact otherwise). */
function mutateFrames(rng: Rng, ctx: FuzzContext, frames: Buffer[], log: string[]): void {
  if (frames.length === 0) return;
  const at = rng.below(frames.length);
  const f = Buffer.from(frames[at] as Buffer);
  switch (rng.below(7)) {
    case 0: {
      const size = f.length >= REQUEST_HEADER ? f.readUInt32LE(19) : 0;
      const next = rng.pick([
        0,
        size + 1,
        Math.max(0, size - 1),
        size + rng.int(2, 64),
        0xffffffff,
        rng.u32(),
      ]);
      if (f.length >= REQUEST_HEADER) f.writeUInt32LE(next >>> 0, 19);
      log.push(`payloadSize[${at}]=${next >>> 0}`);
      break;
    }
    case 1: {
      if (f.length < REQUEST_HEADER + 12 || f.readUInt16LE(17) !== Code.SEND_FILE) {
        log.push(`field[${at}] skipped`);
        break;
      }
      const field = rng.pick(SEND_FILE_FIELDS);
      const offset = { contentSize: 0, origSize: 4, packet: 8, total: 10 }[field];
      const wide = field === 'contentSize' || field === 'origSize';
      const current = wide
        ? f.readUInt32LE(REQUEST_HEADER + offset)
        : f.readUInt16LE(REQUEST_HEADER + offset);
      const max = wide ? 0xffffffff : 0xffff;
      const next = rng.pick([
        0,
        1,
        max,
        current + 1,
        Math.max(0, current - 1),
        current + 16,
        rng.u32() & max,
      ]);
      if (wide) f.writeUInt32LE(Math.min(next, max) >>> 0, REQUEST_HEADER + offset);
      else f.writeUInt16LE(Math.min(next, max), REQUEST_HEADER + offset);
      log.push(`${field}[${at}]=${next}`);
      break;
    }
    case 2:
      frames.splice(at, 1);
      log.push(`drop[${at}]`);
      return;
    case 3:
      frames.splice(at, 0, f);
      log.push(`duplicate[${at}]`);
      return;
    case 4: {
      const other = rng.below(frames.length);
      frames[at] = frames[other] as Buffer;
      frames[other] = f;
      log.push(`swap[${at},${other}]`);
      return;
    }
    case 5: {
      if (f.length >= REQUEST_HEADER) f.writeUInt16LE(rng.int(1020, 1035), 17);
      log.push(`code[${at}]`);
      break;
    }
    default: {
      const id = rng.chance(0.5) ? rng.pick(ctx.volatile).id : rng.bytes(16);
      id.copy(f, 0, 0, Math.min(16, f.length));
      log.push(`clientId[${at}]`);
      break;
    }
  }
  frames[at] = f;
}

/** Byte-level mutations on the whole stream. */
function mutateBytes(rng: Rng, bytes: Buffer, log: string[]): Buffer {
  if (bytes.length === 0) return rng.bytes(rng.int(1, 64));
  switch (rng.below(4)) {
    case 0: {
      const out = Buffer.from(bytes);
      for (let n = rng.int(1, 8); n > 0; n--) {
        const at = rng.below(out.length);
        out[at] = rng.chance(0.5) ? (out[at] as number) ^ (1 << rng.below(8)) : rng.u32() & 0xff;
      }
      log.push('flip');
      return out;
    }
    case 1: {
      const cut = rng.below(bytes.length);
      log.push(`truncate@${cut}`);
      return bytes.subarray(0, cut);
    }
    case 2: {
      const at = rng.below(bytes.length + 1);
      log.push(`insert@${at}`);
      return Buffer.concat([bytes.subarray(0, at), rng.bytes(rng.int(1, 64)), bytes.subarray(at)]);
    }
    default: {
      // Flip inside the first header, where sizes and codes live.
      const out = Buffer.from(bytes);
      const at = rng.below(Math.min(out.length, REQUEST_HEADER));
      out[at] = rng.u32() & 0xff;
      log.push(`headerByte@${at}`);
      return out;
    }
  }
}

function mutate(rng: Rng, ctx: FuzzContext, frames: Buffer[], log: string[]): Buffer {
  for (let n = rng.int(0, 2); n > 0; n--) mutateFrames(rng, ctx, frames, log);
  let bytes: Buffer = Buffer.concat(frames);
  if (log.length === 0 || rng.chance(0.5)) bytes = mutateBytes(rng, bytes, log);
  return bytes;
}

/**
 * Builds case `index` of the run with `seed`. Cases with `bindAs` are built again with the
 * session key of the connection (`sessionKey`); without it they carry a placeholder key.
 */
export function buildFuzzCase(
  seed: number,
  index: number,
  ctx: FuzzContext,
  sessionKey?: Buffer,
): FuzzCase {
  const rng = new Rng(seed, index);
  const kind = pickKind(rng);
  const mutations: string[] = [];
  const ending = rng.chance(0.15) ? 'reset' : 'end';
  const split = rng.chance(0.6) ? 'whole' : rng.chance(0.8) ? 'random' : 'tiny';
  const base = { index, kind, ending, split } as const;
  switch (kind) {
    case 'upload': {
      const client = rng.pick(ctx.stable);
      const fileName = `${ctx.marker}-${index}.bin`;
      const key = sessionKey ?? client.aesKey;
      const session = uploadSession(rng, ctx, client, fileName, key);
      if (ending === 'end' && rng.chance(INTACT_UPLOADS)) {
        return {
          ...base,
          mutations,
          bytes: Buffer.concat(session.frames),
          expectCodes: session.codes,
          expectFile: { name: fileName, cksum: session.sum },
          bindAs: client,
        };
      }
      const bytes = mutate(rng, ctx, session.frames, mutations);
      return { ...base, mutations, bytes, bindAs: client };
    }
    case 'handshake': {
      const frames = handshakeFrames(rng, ctx, index);
      const bytes = rng.chance(0.2) ? Buffer.concat(frames) : mutate(rng, ctx, frames, mutations);
      return { ...base, mutations, bytes };
    }
    case 'volatile':
      return {
        ...base,
        mutations,
        bytes: mutate(rng, ctx, volatileFrames(rng, ctx, index), mutations),
      };
    case 'garbage': {
      const bytes = rng.bytes(rng.int(0, MAX_GARBAGE));
      // Half the time behind a plausible header, so the garbage reaches the payload parsers.
      if (rng.chance(0.5) && bytes.length >= REQUEST_HEADER) {
        header(rng.bytes(16), rng.int(1025, 1031), bytes.length - REQUEST_HEADER).copy(bytes, 0);
      }
      return { ...base, mutations: ['garbage'], bytes };
    }
    case 'headers':
      return { ...base, mutations: ['headers'], bytes: Buffer.concat(headerFrames(rng, ctx)) };
    case 'names': {
      const client = rng.pick(ctx.stable);
      const frames = namesFrames(rng, ctx, client, sessionKey ?? client.aesKey);
      const bytes = rng.chance(0.6) ? Buffer.concat(frames) : mutate(rng, ctx, frames, mutations);
      return { ...base, mutations, bytes, bindAs: client };
    }
    default: {
      const never: never = kind;
      throw new Error(`unknown kind ${String(never)}`);
    }
  }
}

/** Checks that `bytes` parse as whole, well-formed responses; returns the problem, if any. */
export function responseProblem(
  responses: ReadonlyArray<{ version: number; code: number; payloadSize: number }>,
): string | undefined {
  for (const [i, r] of responses.entries()) {
    if (r.version !== 3) return `response ${i}: version ${r.version}`;
    const size = RESPONSE_SIZES[r.code];
    if (size === undefined) return `response ${i}: unknown code ${r.code}`;
    if (r.payloadSize !== size)
      return `response ${i}: code ${r.code} with payload ${r.payloadSize}`;
  }
  return undefined;
}
