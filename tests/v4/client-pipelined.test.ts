/**
 * The client's pipelined uploads (docs/protocol-v4.md §5.10) against a scripted server over TLS
 * (client-pipelined-server.ts): several small files in flight on one connection before the
 * first STORED, the first one a probe, at most 8 at once, never two of one name, a file larger
 * than a chunk alone, a server that does not know PIPELINED served one file at a time, results
 * in argument order over one connection or several.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { uploadEncrypted } from '../../client/v4/e2e-files';
import { uploadInParallel } from '../../client/v4/parallel-upload';
import type { V4Plan } from '../../client/v4/plan';
import type { V4ClientSession } from '../../client/v4/session';
import type { V4UploadResult } from '../../client/v4/upload';
import { ciphertextSize } from '../../shared/e2e-stream';
import {
  fileNames,
  logIndex,
  pipelinedFixture,
  sha256Hex,
  writePlans,
  type FakeServer,
} from './client-pipelined-server';
import { sleep } from './helpers';

const KIB = 1024;

describe('v4 client: pipelined uploads', () => {
  const fx = pipelinedFixture();
  const fake = fx.server;
  const session = fx.session;
  /** `--parallel n` as the CLI sends (one connection included). */
  const sendAll = async (
    server: FakeServer,
    s: V4ClientSession,
    plans: readonly V4Plan[],
    connections = 1,
  ) => {
    const reported: string[] = [];
    const results = await uploadInParallel({
      first: s,
      plans,
      connections,
      extra: {
        server: { host: '127.0.0.1', port: server.port, display: `127.0.0.1:${server.port}` },
        connectTimeoutMs: 5000,
        responseTimeoutMs: 5000,
      },
      upload: (session, plan) => session.upload(plan),
      onResult: (r) => reported.push(r.fileName),
    });
    return { results, reported };
  };
  const expectStored = (
    server: FakeServer,
    results: readonly V4UploadResult[],
    plans: readonly V4Plan[],
    bytes: Map<string, Buffer>,
  ): void => {
    expect(results.map((r) => r.fileName)).toEqual(plans.map((p) => p.fileName));
    for (const r of results) {
      const content = bytes.get(r.fileName) as Buffer;
      expect(r).toMatchObject({
        sha256: sha256Hex(content),
        bytes: content.length,
        resumedFrom: 0,
        bytesSent: content.length,
        verified: true,
      });
      expect(server.stored.get(r.fileName)?.equals(content)).toBe(true);
    }
  };

  it('keeps several files in flight on one connection: file 2 begins before file 1 is stored', async () => {
    const server = await fake((self) => ({
      // Held until the client has sent more: a client that waits for each STORED never does.
      beforeStored: (name) =>
        name === 'f00.bin'
          ? self()
              .seen('END f03.bin', 2000)
              .catch(() => undefined)
          : undefined,
    }));
    const s = await session(server);
    const { plans, bytes } = await writePlans(join(fx.dir(), 'files'), fileNames(10), 10 * KIB);
    const { results, reported } = await sendAll(server, s, plans);
    expectStored(server, results, plans, bytes);
    expect(reported).toEqual(plans.map((p) => p.fileName));
    const log = server.log;
    expect(logIndex(server, 'BEGIN f01.bin 80')).toBeLessThan(logIndex(server, '>STORED f00.bin'));
    expect(logIndex(server, 'END f03.bin')).toBeLessThan(logIndex(server, '>STORED f00.bin'));
    // The probe: the first file's data waited for its UPLOAD_OFFSET, and so did file 2.
    expect(logIndex(server, '>OFFSET f00.bin 0')).toBeLessThan(logIndex(server, 'DATA f00.bin'));
    expect(logIndex(server, '>OFFSET f00.bin 0')).toBeLessThan(
      logIndex(server, 'BEGIN f01.bin 80'),
    );
    // The frames of one upload are never interleaved with another's.
    const requests = log.filter((e) => !e.startsWith('>'));
    expect(requests).toEqual(
      plans.flatMap((p) => [`BEGIN ${p.fileName} 80`, `DATA ${p.fileName}`, `END ${p.fileName}`]),
    );
  });

  it('never has more than 8 uploads in flight on a connection', async () => {
    const server = await fake((self) => ({
      // Each STORED waits until the client has as many in flight as it will send, so a client
      // without a limit would show more than 8 here.
      beforeStored: async () => {
        const full = (): boolean => self().inFlight() >= Math.min(8, 30 - self().stored.size);
        for (let waited = 0; !full() && waited < 2000; waited += 5) await sleep(5);
      },
    }));
    const s = await session(server);
    const { plans, bytes } = await writePlans(join(fx.dir(), 'files'), fileNames(30), 2 * KIB);
    const { results } = await sendAll(server, s, plans);
    expectStored(server, results, plans, bytes);
    expect(server.mostInFlight()).toBe(8);
  });

  it('hands results out in argument order over several connections, each with files in flight', async () => {
    const server = await fake(() => ({
      // Answers slower on some files than on others, so connections finish out of step.
      beforeStored: (name) => sleep(5 + ((Number(name.slice(1, 3)) * 7) % 5)),
    }));
    const s = await session(server);
    const { plans, bytes } = await writePlans(join(fx.dir(), 'files'), fileNames(40), 3 * KIB);
    const { results, reported } = await sendAll(server, s, plans, 3);
    expectStored(server, results, plans, bytes);
    expect(reported).toEqual(plans.map((p) => p.fileName));
    expect(server.log.filter((e) => e === '>WELCOME').length).toBeGreaterThan(1);
    expect(server.mostInFlight()).toBeGreaterThan(1);
    expect(server.mostInFlight()).toBeLessThanOrEqual(8);
  });

  it('never has two uploads of one file name in flight; the later one is the one kept', async () => {
    const server = await fake((self) => ({
      beforeStored: async (name) => {
        if (name !== 'same.bin' || self().stored.has('same.bin')) return;
        // Time for a client that does not wait to send the second one.
        await self().seen('END other.bin', 2000);
        await sleep(50);
      },
    }));
    const s = await session(server);
    const first = await writePlans(join(fx.dir(), 'a'), ['same.bin', 'other.bin'], 4 * KIB);
    const second = await writePlans(join(fx.dir(), 'b'), ['same.bin'], 5 * KIB);
    const plans = [...first.plans, ...second.plans];
    const results = await Promise.all(plans.map((p) => s.upload(p)));
    expect(results.map((r) => r.bytes)).toEqual([4 * KIB, 4 * KIB, 5 * KIB]);
    const begins = server.log.flatMap((e, i) => (e === 'BEGIN same.bin 80' ? [i] : []));
    expect(begins).toHaveLength(2);
    expect(begins[1]).toBeGreaterThan(logIndex(server, '>STORED same.bin'));
    // Other names were not held up.
    expect(logIndex(server, 'BEGIN other.bin 80')).toBeLessThan(
      logIndex(server, '>STORED same.bin'),
    );
    expect(server.stored.get('same.bin')?.equals(second.bytes.get('same.bin') as Buffer)).toBe(
      true,
    );
  });

  it('sends a file larger than a chunk plainly and alone, after the pipelined ones are stored', async () => {
    const server = await fake((self) => ({
      chunkSize: 16 * KIB,
      beforeStored: (name) =>
        name === 's1.bin'
          ? self()
              .seen('END s2.bin', 2000)
              .catch(() => undefined)
          : undefined,
    }));
    const s = await session(server);
    const names = ['s0.bin', 's1.bin', 's2.bin', 'big.bin', 's4.bin', 's5.bin'];
    const { plans, bytes } = await writePlans(join(fx.dir(), 'files'), names, (n) =>
      n === 'big.bin' ? 40 * KIB : 4 * KIB,
    );
    // Called all at once, as a caller other than the pool may.
    const results = await Promise.all(plans.map((p) => s.upload(p)));
    expectStored(server, results, plans, bytes);
    const begin = logIndex(server, 'BEGIN big.bin -');
    const stored = logIndex(server, '>STORED big.bin');
    expect(begin).toBeGreaterThan(logIndex(server, '>STORED s2.bin'));
    expect(server.log.slice(begin + 1, stored).filter((e) => e.startsWith('BEGIN'))).toEqual([]);
    expect(server.log.filter((e) => e === 'DATA big.bin')).toHaveLength(3);
    expect(logIndex(server, 'BEGIN s4.bin 80')).toBeGreaterThan(stored);
    expect(server.mostInFlight()).toBeGreaterThan(1);
  });

  it('sends the files plainly, one at a time, to a server that answers BAD_MESSAGE to PIPELINED', async () => {
    const server = await fake(() => ({ pipelining: false }));
    const s = await session(server);
    const { plans, bytes } = await writePlans(join(fx.dir(), 'files'), fileNames(6), 6 * KIB);
    const { results, reported } = await sendAll(server, s, plans);
    expectStored(server, results, plans, bytes);
    expect(reported).toEqual(plans.map((p) => p.fileName));
    // One probe, answered BAD_MESSAGE before any of its data went out; then every file plain.
    expect(server.log.slice(0, 6)).toEqual([
      '>WELCOME',
      '>KEY_SET',
      'BEGIN f00.bin 80',
      '>ERROR f00.bin BAD_MESSAGE',
      'BEGIN f00.bin -',
      '>OFFSET f00.bin 0',
    ]);
    expect(server.log.filter((e) => e.startsWith('BEGIN') && e.endsWith(' 80'))).toHaveLength(1);
    expect(server.log.filter((e) => e.includes('UNEXPECTED') || e.startsWith('DROP'))).toEqual([]);
    expect(server.mostInFlight()).toBe(1);
  });

  it('pipelines end-to-end encrypted and compressed files with their flags', async () => {
    const server = await fake();
    const s = await session(server);
    const { plans } = await writePlans(join(fx.dir(), 'files'), fileNames(4), 8 * KIB);
    const results = await Promise.all(
      plans.map((p) => uploadEncrypted(s, p, join(fx.dir(), 'cfg'), { compress: true })),
    );
    expect(results.map((r) => [r.fileName, r.bytes])).toEqual(
      plans.map((p) => [p.fileName, p.size]),
    );
    for (const p of plans) {
      expect(server.stored.get(p.fileName)?.length).toBe(ciphertextSize(p.size));
      expect(server.log).toContain(`BEGIN ${p.fileName} 82`);
    }
    const text = join(fx.dir(), 'text');
    const repeated = Buffer.from('the same line, again and again\n'.repeat(500));
    await writeFile(text, repeated);
    const r = await s.upload(
      { path: text, fileName: 'text', size: repeated.length },
      { compress: true },
    );
    expect(server.log).toContain('DEFLATE text');
    expect(r.bytesSent).toBeLessThan(repeated.length);
    expect(server.stored.get('text')?.equals(repeated)).toBe(true);
  });
});
