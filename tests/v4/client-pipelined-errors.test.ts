/**
 * Failures of the client's pipelined uploads (docs/protocol-v4.md §5.10) against a scripted
 * server over TLS: a refused UPLOAD_BEGIN has one answer, and the files after it get theirs; a
 * STORED that is not our file is CHECKSUM_FAILED; a cut connection or a fatal ERROR fails every
 * upload in flight on it; through the pool, a refusal ends the run as one after the other would.
 */
import { join } from 'node:path';
import { ClientErrorCode } from '../../client/errors';
import { uploadInParallel } from '../../client/v4/parallel-upload';
import type { V4UploadResult } from '../../client/v4/upload';
import { WireErrorCode } from '../../protocol/v4';
import {
  fileNames,
  logIndex,
  pipelinedFixture,
  refusal,
  sha256Hex,
  writePlans,
} from './client-pipelined-server';

const KIB = 1024;

/** What each upload came to: its SHA-256, or its error's code. */
function outcomes(settled: PromiseSettledResult<V4UploadResult>[]): string[] {
  return settled.map((s) =>
    s.status === 'fulfilled' ? s.value.sha256 : String((s.reason as { code?: string }).code),
  );
}

describe('v4 client: pipelined uploads that fail', () => {
  const fx = pipelinedFixture();
  const files = (count: number, size = 6 * KIB) =>
    writePlans(join(fx.dir(), 'files'), fileNames(count), size);

  it('a refused UPLOAD_BEGIN fails that file with its one answer; the files after it get theirs', async () => {
    const server = await fx.server((self) => ({
      refuse: (name) => (name === 'f03.bin' ? refusal(WireErrorCode.QUOTA_EXCEEDED) : undefined),
      // Every file is sent before the first answer after the probe: all are in flight.
      beforeStored: (name) =>
        name === 'f01.bin'
          ? self()
              .seen('END f05.bin', 2000)
              .catch(() => undefined)
          : undefined,
    }));
    const s = await fx.session(server);
    const { plans, bytes } = await files(6);
    const settled = await Promise.allSettled(plans.map((p) => s.upload(p)));
    const sha = (name: string): string => sha256Hex(bytes.get(name) as Buffer);
    expect(outcomes(settled)).toEqual([
      sha('f00.bin'),
      sha('f01.bin'),
      sha('f02.bin'),
      ClientErrorCode.REJECTED,
      sha('f04.bin'),
      sha('f05.bin'),
    ]);
    const refused = settled[3] as PromiseRejectedResult;
    expect((refused.reason as Error).message).toContain('QUOTA_EXCEEDED');
    expect((refused.reason as Error).message).toContain('f03.bin');
    // Its data went out with it and was dropped; nothing was read for it but the ERROR.
    expect(server.log).toContain('DROP f03.bin');
    expect(logIndex(server, 'END f05.bin')).toBeLessThan(logIndex(server, '>STORED f01.bin'));
    expect([...server.stored.keys()].sort()).toEqual(
      ['f00.bin', 'f01.bin', 'f02.bin', 'f04.bin', 'f05.bin'].sort(),
    );
    // The session goes on.
    const more = await writePlans(join(fx.dir(), 'more'), ['g.bin'], KIB);
    expect((await s.upload(more.plans[0]!)).sha256).toBe(sha256Hex(more.bytes.get('g.bin')!));
  });

  it('a STORED whose SHA-256 is not that of the file is CHECKSUM_FAILED for that file alone', async () => {
    const server = await fx.server(() => ({
      storedSha: (name, received) => (name === 'f02.bin' ? Buffer.alloc(32, 7) : received),
    }));
    const s = await fx.session(server);
    const { plans, bytes } = await files(4);
    const settled = await Promise.allSettled(plans.map((p) => s.upload(p)));
    expect(outcomes(settled)).toEqual([
      sha256Hex(bytes.get('f00.bin') as Buffer),
      sha256Hex(bytes.get('f01.bin') as Buffer),
      ClientErrorCode.CHECKSUM_FAILED,
      sha256Hex(bytes.get('f03.bin') as Buffer),
    ]);
    expect(((settled[2] as PromiseRejectedResult).reason as Error).message).toContain('0707070707');
  });

  it('a cut connection fails every upload in flight on it, and later ones, with CONNECTION_LOST', async () => {
    const server = await fx.server((self) => ({
      cutAt: (entry) => entry === 'END f03.bin',
      beforeStored: () =>
        self()
          .seen('END f03.bin', 2000)
          .catch(() => undefined),
    }));
    const s = await fx.session(server);
    const { plans } = await files(6);
    const settled = await Promise.allSettled(plans.map((p) => s.upload(p)));
    // f00 was the probe: its STORED is held until the cut, like the others'.
    expect(outcomes(settled)).toEqual(Array(6).fill(ClientErrorCode.CONNECTION_LOST));
    expect(server.log.filter((e) => e.startsWith('>STORED'))).toEqual([]);
    await expect(s.upload(plans[0]!)).rejects.toMatchObject({
      code: ClientErrorCode.CONNECTION_LOST,
    });
  });

  it('a fatal ERROR fails that upload with its refusal and every later one in flight as a lost connection', async () => {
    const server = await fx.server((self) => ({
      refuse: (name) =>
        name === 'f02.bin' ? refusal(WireErrorCode.NOT_AUTHENTICATED, true) : undefined,
      beforeStored: (name) =>
        name === 'f01.bin'
          ? self()
              .seen('END f04.bin', 2000)
              .catch(() => undefined)
          : undefined,
    }));
    const s = await fx.session(server);
    const { plans, bytes } = await files(5);
    const settled = await Promise.allSettled(plans.map((p) => s.upload(p)));
    expect(outcomes(settled)).toEqual([
      sha256Hex(bytes.get('f00.bin') as Buffer),
      sha256Hex(bytes.get('f01.bin') as Buffer),
      ClientErrorCode.REJECTED,
      ClientErrorCode.CONNECTION_LOST,
      ClientErrorCode.CONNECTION_LOST,
    ]);
    expect(logIndex(server, 'END f04.bin')).toBeLessThan(logIndex(server, '>STORED f01.bin'));
  });

  it('through the pool, a refused file ends the run as one after the other would', async () => {
    const server = await fx.server(() => ({
      refuse: (name) => (name === 'f04.bin' ? refusal(WireErrorCode.FILE_TOO_LARGE) : undefined),
    }));
    const s = await fx.session(server);
    const { plans } = await files(10);
    const reported: string[] = [];
    const run = uploadInParallel({
      first: s,
      plans,
      connections: 1,
      extra: {
        server: { host: '127.0.0.1', port: server.port, display: 'fake' },
        connectTimeoutMs: 5000,
        responseTimeoutMs: 5000,
      },
      upload: (session, plan) => session.upload(plan),
      onResult: (r) => reported.push(r.fileName),
    });
    await expect(run).rejects.toMatchObject({ code: ClientErrorCode.REJECTED });
    expect(reported).toEqual(fileNames(4));
  });
});
