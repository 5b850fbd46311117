/**
 * Test support for the codec tests: deterministic chunking, and decoders driven to completion
 * with every handed-out view copied (decoder views die when the callback returns).
 */
import {
  ProtocolError,
  RequestDecoder,
  type DecodedRequest,
  type RequestSink,
  ResponseDecoder,
  isProtocolError,
  type ProtocolErrorCode,
  type Request,
  type RequestHeader,
  type RequestLimits,
  type Response,
  type ResponseHeader,
} from '../../protocol';

/** A request sink that hands every decoded request to `onRequest` (no fast path). */
export function requests(onRequest: (decoded: DecodedRequest) => void): RequestSink {
  return { request: onRequest };
}

/** A request sink that drops everything: for pushes whose outcome is the thrown error. */
export const IGNORE_REQUESTS: RequestSink = requests(() => undefined);

/** mulberry32: a small seeded PRNG, so "random" chunkings replay identically. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Splits `buf` into views at the given offsets (sorted, within 0..length). */
export function splitAt(buf: Buffer, offsets: readonly number[]): Buffer[] {
  const cuts = [0, ...offsets, buf.length];
  const out: Buffer[] = [];
  for (let i = 1; i < cuts.length; i++) out.push(buf.subarray(cuts[i - 1], cuts[i]));
  return out;
}

/** Splits `buf` into pieces of 1..maxPiece bytes chosen by `rand` (empty pieces too, at times). */
export function splitRandomly(buf: Buffer, rand: () => number, maxPiece: number): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < buf.length) {
    // One piece in 16 is empty: a zero-length read must be harmless.
    const size = rand() < 1 / 16 ? 0 : 1 + Math.floor(rand() * maxPiece);
    out.push(buf.subarray(pos, pos + size));
    pos += size;
  }
  return out;
}

/** Every byte as its own chunk. */
export function byteByByte(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i++) out.push(buf.subarray(i, i + 1));
  return out;
}

/** A deep copy of a decoded request: 1028 `clientId` and `content` are decoder views. */
export function copyRequest(request: Request): Request {
  const clientId = Buffer.from(request.clientId);
  if ('content' in request) return { ...request, clientId, content: Buffer.from(request.content) };
  if ('publicKey' in request) {
    return { ...request, clientId, publicKey: Buffer.from(request.publicKey) };
  }
  return { ...request, clientId };
}

export function copyRequestHeader(header: RequestHeader): RequestHeader {
  return { ...header, clientId: Buffer.from(header.clientId) };
}

export type RequestOutcome =
  | { readonly ok: true; readonly header: RequestHeader; readonly request: Request }
  | {
      readonly ok: false;
      readonly header: RequestHeader;
      readonly code: ProtocolErrorCode;
      readonly fatal: boolean;
    };

/** A decoded request with every view copied, so it outlives the sink call. */
export function outcomeOf(r: DecodedRequest): RequestOutcome {
  const header = copyRequestHeader(r.header);
  return r.ok
    ? { ok: true, header, request: copyRequest(r.request) }
    : { ok: false, header, code: r.error.code, fatal: r.error.fatal };
}

export interface RequestRun {
  readonly outcomes: RequestOutcome[];
  /** The fatal error that stopped the decoder, if any. */
  readonly fatal?: ProtocolError;
  readonly decoder: RequestDecoder;
}

/** Feeds `chunks` to a fresh RequestDecoder; stops at the first thrown ProtocolError. */
export function runRequestDecoder(
  chunks: readonly Buffer[],
  limits: Partial<RequestLimits> = {},
): RequestRun {
  const decoder = new RequestDecoder(limits);
  const outcomes: RequestOutcome[] = [];
  try {
    for (const chunk of chunks) {
      decoder.push(
        chunk,
        requests((r) => outcomes.push(outcomeOf(r))),
      );
    }
  } catch (err) {
    if (!isProtocolError(err)) throw err;
    return { outcomes, fatal: err, decoder };
  }
  return { outcomes, decoder };
}

export type ResponseOutcome =
  | { readonly ok: true; readonly header: ResponseHeader; readonly response: Response }
  | { readonly ok: false; readonly header: ResponseHeader; readonly code: ProtocolErrorCode };

export interface ResponseRun {
  readonly outcomes: ResponseOutcome[];
  readonly fatal?: ProtocolError;
  readonly decoder: ResponseDecoder;
}

/**
 * Feeds `chunks` to a fresh ResponseDecoder. `onResponse` runs inside the decoder callback,
 * where a client calls `skipIfNext` after a 1604.
 */
export function runResponseDecoder(
  chunks: readonly Buffer[],
  onResponse: (response: Response, decoder: ResponseDecoder) => void = () => undefined,
  maxPayload?: number,
): ResponseRun {
  const decoder = new ResponseDecoder(maxPayload === undefined ? {} : { maxPayload });
  const outcomes: ResponseOutcome[] = [];
  try {
    for (const chunk of chunks) {
      decoder.push(chunk, (r) => {
        if (r.ok) {
          outcomes.push({ ok: true, header: { ...r.header }, response: r.response });
          onResponse(r.response, decoder);
        } else {
          outcomes.push({ ok: false, header: { ...r.header }, code: r.error.code });
        }
      });
    }
  } catch (err) {
    if (!isProtocolError(err)) throw err;
    return { outcomes, fatal: err, decoder };
  }
  return { outcomes, decoder };
}

/** The only request of `buf`, decoded in one chunk; fails the test if there is not exactly one. */
export function decodeOneRequest(buf: Buffer): Request {
  const run = runRequestDecoder([buf]);
  if (run.fatal) throw run.fatal;
  const [only, ...rest] = run.outcomes;
  if (!only || rest.length > 0 || run.decoder.bufferedBytes !== 0) {
    throw new Error(`expected exactly one whole request, got ${run.outcomes.length}`);
  }
  if (!only.ok) throw new Error(`request failed to decode: ${only.code}`);
  return only.request;
}

export function decodeOneResponse(buf: Buffer): Response {
  const run = runResponseDecoder([buf]);
  if (run.fatal) throw run.fatal;
  const [only, ...rest] = run.outcomes;
  if (!only || rest.length > 0 || run.decoder.inFrame) {
    throw new Error(`expected exactly one whole response, got ${run.outcomes.length}`);
  }
  if (!only.ok) throw new Error(`response failed to decode: ${only.code}`);
  return only.response;
}

/** Runs `fn` and returns the ProtocolError it throws; fails if it throws nothing or else. */
export function catchProtocolError(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (err) {
    if (isProtocolError(err)) return err;
    throw err;
  }
  throw new Error('expected a ProtocolError, nothing was thrown');
}

/** A request frame built by hand (not by the encoder): header (§1) then `payload`. */
export function rawRequest(
  code: number,
  payload: Buffer,
  options: { clientId?: Buffer; version?: number; declaredSize?: number } = {},
): Buffer {
  const header = Buffer.alloc(23);
  (options.clientId ?? Buffer.alloc(16, 0xab)).copy(header, 0);
  header.writeUInt8(options.version ?? 3, 16);
  header.writeUInt16LE(code, 17);
  header.writeUInt32LE(options.declaredSize ?? payload.length, 19);
  return Buffer.concat([header, payload]);
}

/** A response frame built by hand: header (§1) then `payload`. */
export function rawResponse(code: number, payload: Buffer, declaredSize = payload.length): Buffer {
  const header = Buffer.alloc(7);
  header.writeUInt8(3, 0);
  header.writeUInt16LE(code, 1);
  header.writeUInt32LE(declaredSize, 3);
  return Buffer.concat([header, payload]);
}

/** A string255 field (§2) holding `text` bytes as given, NUL padded; no validation. */
export function rawString255(text: Buffer | string): Buffer {
  const field = Buffer.alloc(255);
  (typeof text === 'string' ? Buffer.from(text, 'utf8') : text).copy(field);
  return field;
}

export interface RawSendFile {
  readonly contentSize: number;
  readonly origSize: number;
  readonly packet: number;
  readonly total: number;
  readonly fileName?: Buffer | string;
  readonly content?: Buffer;
}

/** A 1028 payload built by hand (§3); no validation, so it can hold any broken field. */
export function rawSendFilePayload(f: RawSendFile): Buffer {
  const fixed = Buffer.alloc(12);
  fixed.writeUInt32LE(f.contentSize, 0);
  fixed.writeUInt32LE(f.origSize, 4);
  fixed.writeUInt16LE(f.packet, 8);
  fixed.writeUInt16LE(f.total, 10);
  return Buffer.concat([
    fixed,
    rawString255(f.fileName ?? 'file.bin'),
    f.content ?? Buffer.alloc(0),
  ]);
}

/**
 * A string that differs whenever two outcome lists differ (buffers as hex): comparing these is
 * far cheaper than a deep equality, which matters when a stream is fed thousands of ways.
 */
export function fingerprint(outcomes: readonly unknown[]): string {
  return JSON.stringify(outcomes, function (this: Record<string, unknown>, key, value: unknown) {
    const raw = key === '' ? value : this[key];
    return Buffer.isBuffer(raw) ? `hex:${raw.toString('hex')}` : value;
  });
}
