/**
 * Random streams of upload frames, pipelined and plain, valid and not (docs/protocol-v4.md
 * §5.4, §5.10), sent at once without reading: the server answers each in order and goes on;
 * a LIST at the end is answered, and it lists exactly the files the server answered STORED for.
 */
import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import {
  encodeRequest,
  RequestCode,
  ResponseCode,
  UploadFlag,
  type Request,
  type Response,
} from '../../protocol/v4';
import type { Backends } from '../../server/storage/open-backends';
import { removeDirs, tempDir } from './helpers';
import { openSqliteDisk, startMemoryServer, type MemoryServer } from './memory-server';
import { registeredPeer } from './raw-v4';

const CHUNK = 4096;
const MAX_FILE = 20_000;
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

/** One step of a stream: the frames of an upload, whole or broken, or another request. */
type Step =
  | {
      readonly kind: 'upload';
      readonly name: string;
      readonly size: number;
      readonly pipelined: boolean;
      readonly flaw: Flaw;
    }
  | { readonly kind: 'list' }
  | { readonly kind: 'stray-data' }
  | { readonly kind: 'stray-end' };

type Flaw =
  | 'none'
  | 'too-large'
  | 'bad-name'
  | 'extra-data'
  | 'short'
  | 'wrong-sha'
  | 'bad-deflate'
  | 'no-end';

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('upload' as const),
      name: fc.constantFrom('a.bin', 'b.bin', 'c.bin', 'd.bin'),
      size: fc.nat({ max: 3 * CHUNK }),
      pipelined: fc.boolean(),
      flaw: fc.constantFrom<Flaw>(
        'none',
        'none',
        'none',
        'too-large',
        'bad-name',
        'extra-data',
        'short',
        'wrong-sha',
        'bad-deflate',
        'no-end',
      ),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'list' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'stray-data' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'stray-end' as const }) },
);

/** The bytes of one step. */
function framesOf(s: Step): Buffer[] {
  switch (s.kind) {
    case 'list':
      return [encodeRequest({ code: RequestCode.LIST, start: 0 })];
    case 'stray-data':
      return [encodeRequest({ code: RequestCode.UPLOAD_DATA, data: randomBytes(10) })];
    case 'stray-end':
      return [encodeRequest({ code: RequestCode.UPLOAD_END, sha256: randomBytes(32) })];
    case 'upload': {
      // A short upload misses its last byte: it has one.
      const size = s.flaw === 'too-large' ? MAX_FILE + 1 : s.flaw === 'short' ? s.size + 1 : s.size;
      const data = randomBytes(s.flaw === 'extra-data' ? size + 1 : size);
      const begin: Request = {
        code: RequestCode.UPLOAD_BEGIN_FLAGS,
        fileName: s.name,
        size,
        check: randomBytes(32),
        flags: s.pipelined ? UploadFlag.PIPELINED : 0,
      };
      const beginBytes = Buffer.from(encodeRequest(begin));
      // A slash for the name's first byte: no base name (BAD_MESSAGE at decode).
      if (s.flaw === 'bad-name') beginBytes[6 + 8 + 32 + 1] = 0x2f;
      const frames: Buffer[] = [beginBytes];
      const sent = s.flaw === 'short' ? data.subarray(0, Math.max(0, data.length - 1)) : data;
      for (let at = 0; at < sent.length; at += CHUNK) {
        frames.push(
          encodeRequest({ code: RequestCode.UPLOAD_DATA, data: sent.subarray(at, at + CHUNK) }),
        );
      }
      if (s.flaw === 'bad-deflate') {
        frames.push(
          encodeRequest({ code: RequestCode.UPLOAD_DATA_DEFLATE, data: Buffer.from([0xff, 0xff]) }),
        );
      }
      if (s.flaw !== 'no-end') {
        const digest = s.flaw === 'wrong-sha' ? randomBytes(32) : sha256(data.subarray(0, size));
        frames.push(encodeRequest({ code: RequestCode.UPLOAD_END, sha256: digest }));
      }
      return frames;
    }
  }
}

let dir: string;
let backends: Backends;
let server: MemoryServer;

beforeAll(async () => {
  dir = await tempDir('pipelined-property');
  backends = await openSqliteDisk(dir);
  server = await startMemoryServer(dir, {
    backends,
    files: true,
    // One registration per case, shrinking included: no rate limit in the way.
    server: {
      limits: { maxFileSize: MAX_FILE, registerRate: { perSecond: 10_000, burst: 10_000 } },
    },
  });
});

afterAll(async () => {
  await server.close();
  await backends.close();
  await removeDirs(dir);
});

it('random upload streams: every frame is answered in order, the connection goes on, and LIST shows exactly what was STORED', async () => {
  let client = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), async (steps) => {
      const { peer } = await registeredPeer(server.port, `prop ${client++}`, CHUNK);
      try {
        for (const s of steps) for (const frame of framesOf(s)) peer.sendBytes(frame);
        // A pipelined upload begun last and never ended is suspended by this plain one.
        peer.send({ code: RequestCode.LIST, start: 0 });
        const lists = steps.filter((s) => s.kind === 'list').length + 1;
        const seen: number[] = [];
        let answer: Response;
        // Up to the answer to the LIST sent last: every answer before it has come.
        do {
          answer = await peer.next();
          seen.push(answer.code);
          if (answer.code === ResponseCode.ERROR) expect(answer.fatal).toBe(false);
        } while (seen.filter((c) => c === ResponseCode.FILE_LIST).length < lists);
        const listed = answer.code === ResponseCode.FILE_LIST ? answer.files : [];
        const flawless = steps.filter((s) => s.kind === 'upload' && s.flaw === 'none');
        // Every flawless upload, and only those, was STORED and is listed (uploads of one name
        // replace each other).
        expect(seen.filter((c) => c === ResponseCode.STORED)).toHaveLength(flawless.length);
        expect(new Set(listed.map((f) => f.fileName))).toEqual(
          new Set(flawless.map((s) => (s.kind === 'upload' ? s.name : ''))),
        );
      } finally {
        peer.close();
      }
    }),
    { numRuns: 40 },
  );
});
