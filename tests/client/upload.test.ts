/**
 * Upload planning (§5 packet sizes), the packetizer and the streaming sender, checked with an
 * independent 1028 parser and decryption on the test side.
 */
import { execFileSync } from 'node:child_process';
import { createDecipheriv, randomBytes } from 'node:crypto';
import { truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { ClientErrorCode } from '../../client/errors';
import { Packetizer } from '../../client/session/packetizer';
import { sendFile, type PacketSink } from '../../client/session/send-file';
import { planUpload, prepareUploads, type UploadPlan } from '../../client/session/upload-plan';
import { Cksum } from '../../shared/cksum';
import { readString255, testEncrypt } from '../helpers/fake-server';
import { removeDir, tempDir, testBytes } from './helpers';

const MAX_U32 = 0xffffffff;

interface ParsedPacket {
  clientId: Buffer;
  code: number;
  payloadSize: number;
  contentSize: number;
  origSize: number;
  packet: number;
  total: number;
  fileName: string;
  content: Buffer;
}

/** Splits a stream of 1028 requests, independently of the production codec. */
function parsePackets(stream: Buffer): ParsedPacket[] {
  const out: ParsedPacket[] = [];
  let at = 0;
  while (at < stream.length) {
    const payloadSize = stream.readUInt32LE(at + 19);
    const p = stream.subarray(at + 23, at + 23 + payloadSize);
    out.push({
      clientId: stream.subarray(at, at + 16),
      code: stream.readUInt16LE(at + 17),
      payloadSize,
      contentSize: p.readUInt32LE(0),
      origSize: p.readUInt32LE(4),
      packet: p.readUInt16LE(8),
      total: p.readUInt16LE(10),
      fileName: readString255(p, 12),
      content: p.subarray(267),
    });
    at += 23 + payloadSize;
  }
  expect(at).toBe(stream.length);
  return out;
}

function decrypt(key: Buffer, ciphertext: Buffer): Buffer {
  const d = createDecipheriv('aes-256-cbc', key, Buffer.alloc(16));
  return Buffer.concat([d.update(ciphertext), d.final()]);
}

/** A sink that keeps copies of everything written. */
function collectingSink(): PacketSink & { writes: Buffer[]; all(): Buffer } {
  const writes: Buffer[] = [];
  return {
    writes,
    interrupted: false,
    async write(data) {
      writes.push(Buffer.from(data));
    },
    all: () => Buffer.concat(writes),
  };
}

describe('planUpload (§5)', () => {
  it.each([
    // size, content size, chunk, packets
    [0, 16, 1024, 1],
    [1, 16, 1024, 1],
    [16, 32, 1024, 1],
    [1023, 1024, 1024, 1],
    [1024, 1040, 1024, 2],
    [65535 * 1024 - 16, 65535 * 1024, 1024, 65535],
    [65535 * 1024, 65535 * 1024 + 16, 1040, 64527],
    [2 ** 32 - 17, 2 ** 32 - 16, 65552, 65521],
  ])('%i bytes → content %i, chunk %i, %i packets', (size, content, chunk, packets) => {
    const plan = planUpload('/x/f.bin', size);
    expect(plan).toMatchObject({
      fileName: 'f.bin',
      size,
      contentSize: content,
      chunkSize: chunk,
      totalPackets: packets,
    });
  });

  it('keeps 1024-byte packets when they fit, else the smallest multiple of 16 that fits', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 17 }), (size) => {
        const plan = planUpload('/f', size);
        expect(plan.chunkSize % 16).toBe(0);
        expect(plan.totalPackets).toBeLessThanOrEqual(65535);
        expect((plan.totalPackets - 1) * plan.chunkSize).toBeLessThan(plan.contentSize);
        expect(plan.totalPackets * plan.chunkSize).toBeGreaterThanOrEqual(plan.contentSize);
        if (Math.ceil(plan.contentSize / 1024) <= 65535) expect(plan.chunkSize).toBe(1024);
        else expect(Math.ceil(plan.contentSize / (plan.chunkSize - 16))).toBeGreaterThan(65535);
      }),
    );
  });

  it('refuses a file whose ciphertext would not fit the u32 content size', () => {
    expect(() => planUpload('/x/big.bin', 2 ** 32 - 16)).toThrow(
      expect.objectContaining({ code: ClientErrorCode.FILE_TOO_LARGE, exitCode: 2 }),
    );
    expect(planUpload('/x/ok.bin', 2 ** 32 - 17).contentSize).toBeLessThanOrEqual(MAX_U32);
  });

  it.each([
    ['a'.repeat(255), 'over 254 bytes'],
    ['é'.repeat(128), 'over 254 bytes of UTF-8'],
    ['a\\b', 'a backslash'],
    ['tab\there', 'a control character'],
    ['..', 'a dot directory'],
  ])('refuses the file name %j (%s)', (name) => {
    expect(() => planUpload('/x/y', 1, undefined, name)).toThrow(
      expect.objectContaining({ code: ClientErrorCode.BAD_FILE_NAME, exitCode: 2 }),
    );
  });

  it('accepts a 254-byte name', () => {
    expect(planUpload('/x/y', 1, undefined, 'n'.repeat(254)).fileName).toHaveLength(254);
  });
});

describe('prepareUploads', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(async () => removeDir(dir));

  it('refuses a file over the 4 GiB ciphertext limit before anything is sent', async () => {
    const path = join(dir, 'huge.bin');
    await writeFile(path, '');
    await truncate(path, 2 ** 32 - 16); // sparse: no disk space used
    expect(thrownBy(() => prepareUploads([{ path }]))).toMatchObject({
      code: ClientErrorCode.FILE_TOO_LARGE,
    });
  });

  it('names the transfer.info line when the file from line 3 is missing', async () => {
    const location = { file: join(dir, 'transfer.info'), line: 3 };
    expect(
      thrownBy(() => prepareUploads([{ path: join(dir, 'gone.bin'), location }])),
    ).toMatchObject({
      code: ClientErrorCode.FILE_UNREADABLE,
      location,
      message: expect.stringMatching(/:3: /),
    });
  });
});

/** What `run` throws (undefined when it does not). */
function thrownBy(run: () => unknown): unknown {
  try {
    run();
  } catch (err) {
    return err;
  }
  return undefined;
}

describe('Packetizer', () => {
  it('cuts any split of a ciphertext stream into the planned packets', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 5000 }),
        fc.array(fc.integer({ min: 0, max: 3000 }), { maxLength: 8 }),
        (size, cuts) => {
          const plan: UploadPlan = { ...planUpload('/d/p.bin', size), chunkSize: 48 };
          const totalPackets = Math.ceil(plan.contentSize / 48);
          const planned = { ...plan, totalPackets };
          const ciphertext = randomBytes(plan.contentSize);
          const id = Buffer.alloc(16, 7);
          const packer = new Packetizer(planned, id);
          const points = [...new Set(cuts.map((c) => Math.min(c, ciphertext.length)))].sort(
            (a, b) => a - b,
          );
          const outputs: Buffer[] = [];
          let from = 0;
          for (const to of points) {
            const target = Buffer.alloc(Packetizer.outputSize(totalPackets, plan.contentSize));
            outputs.push(Buffer.from(packer.pack([ciphertext.subarray(from, to)], false, target)));
            from = to;
          }
          const target = Buffer.alloc(Packetizer.outputSize(totalPackets, plan.contentSize));
          outputs.push(
            Buffer.from(
              packer.pack(
                [ciphertext.subarray(from, from + 5), ciphertext.subarray(from + 5)],
                true,
                target,
              ),
            ),
          );
          const packets = parsePackets(Buffer.concat(outputs));
          expect(packets.map((p) => p.packet)).toEqual(
            Array.from({ length: totalPackets }, (_, i) => i + 1),
          );
          for (const [i, p] of packets.entries()) {
            expect(p.code).toBe(1028);
            expect(p.clientId.equals(id)).toBe(true);
            expect(p.payloadSize).toBe(267 + p.content.length);
            expect(p.content.length).toBe(
              i < totalPackets - 1 ? 48 : plan.contentSize - 48 * (totalPackets - 1),
            );
            expect(p.content.length).toBeGreaterThan(0);
            expect([p.contentSize, p.origSize, p.total, p.fileName]).toEqual([
              plan.contentSize,
              size,
              totalPackets,
              'p.bin',
            ]);
          }
          expect(Buffer.concat(packets.map((p) => p.content)).equals(ciphertext)).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('sendFile', () => {
  let dir: string;
  const key = Buffer.alloc(32, 9);
  const id = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(async () => removeDir(dir));

  it.each([
    [0, undefined],
    [1, undefined],
    [5000, undefined],
    [10_000, 1024], // one packet per block
    [50_000, 3000], // blocks of 2 packets, many steps
  ])('sends a %i-byte file (block size %s) that decrypts to the input', async (size, blockSize) => {
    const input = testBytes(size, size);
    const path = join(dir, 'in.bin');
    await writeFile(path, input);
    const plan = planUpload(path, size);
    const sink = collectingSink();
    const progress: number[] = [];
    const result = await sendFile(plan, id, key, sink, {
      blockSize,
      onProgress: (n) => progress.push(n),
    });
    expect(result.complete).toBe(true);
    const packets = parsePackets(sink.all());
    expect(packets).toHaveLength(plan.totalPackets);
    const ciphertext = Buffer.concat(packets.map((p) => p.content));
    expect(ciphertext.equals(testEncrypt(key, input))).toBe(true);
    expect(decrypt(key, ciphertext).equals(input)).toBe(true);
    expect(progress.at(-1)).toBe(size);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    const expected = Number(
      execFileSync('cksum', [path], { encoding: 'utf8' }).trim().split(/\s+/)[0],
    );
    expect(result.cksum).toBe(expected);
  });

  it('stops between blocks once the server has answered', async () => {
    const path = join(dir, 'in.bin');
    await writeFile(path, testBytes(20_000));
    const sink = collectingSink();
    const interrupting: PacketSink = {
      get interrupted() {
        return sink.writes.length > 0;
      },
      write: (data) => sink.write(data),
    };
    const result = await sendFile(planUpload(path, 20_000), id, key, interrupting, {
      blockSize: 4096,
    });
    expect(result.complete).toBe(false);
    expect(sink.writes).toHaveLength(1);
    expect(parsePackets(sink.all())).toHaveLength(4);
  });

  it('fails with FILE_CHANGED when the file got shorter than planned', async () => {
    const path = join(dir, 'in.bin');
    await writeFile(path, testBytes(100));
    const plan = planUpload(path, 5000);
    await expect(sendFile(plan, id, key, collectingSink())).rejects.toMatchObject({
      code: ClientErrorCode.FILE_CHANGED,
    });
  });

  it('above 65535 packets uses 1040-byte packets, streaming in bounded writes', async () => {
    const size = 65535 * 1024; // ciphertext one block over 65535 full packets
    const path = join(dir, 'zeros.bin');
    await writeFile(path, '');
    await truncate(path, size);
    const plan = planUpload(path, size);
    expect(plan.chunkSize).toBe(1040);
    const decipher = createDecipheriv('aes-256-cbc', key, Buffer.alloc(16));
    const plain = new Cksum();
    let packets = 0;
    let largestWrite = 0;
    const sink: PacketSink = {
      interrupted: false,
      async write(data) {
        largestWrite = Math.max(largestWrite, data.length);
        for (const p of parsePackets(data)) {
          packets++;
          expect(p.packet).toBe(packets);
          expect(p.total).toBe(64527);
          expect(p.content.length).toBe(packets < 64527 ? 1040 : 816);
          plain.update(decipher.update(p.content));
        }
      },
    };
    const result = await sendFile(plan, id, key, sink);
    plain.update(decipher.final());
    expect(packets).toBe(64527);
    expect(plain.bytes).toBe(size);
    expect(result.cksum).toBe(plain.digest());
    expect(largestWrite).toBeLessThan(4 * 1024 * 1024);
  });
});
