/**
 * Metrics and health: the Prometheus text of a server's registry (listener counters read at
 * scrape time, requests counted from committed audit rows, storage failures by side and
 * code, upload bytes and durations), and the `/metrics`, `/healthz`, `/readyz` endpoint.
 */
import { startMetricsServer, type MetricsServer } from '../../server/metrics/http';
import { meterCatalog, meterFileStore } from '../../server/metrics/metered';
import { ServerMetrics } from '../../server/metrics/metrics';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { memoryBackends } from '../../server/storage/memory';
import { openBackends } from '../../server/storage/open-backends';
import type { AuditEntry } from '../../server/storage/types';
import { idOf, tempDirs } from '../storage/temp-dir';

const HEX = idOf(7).toString('hex');

function entry(outcome: AuditEntry['outcome'], requestCode: number): AuditEntry {
  return {
    time: 1,
    remoteAddress: '127.0.0.1',
    clientId: idOf(7),
    name: 'a',
    requestCode,
    outcome,
  };
}

/** The value of one sample line of the exposition, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('server metrics', () => {
  const dirs = tempDirs('metrics');
  afterAll(() => dirs.cleanup());

  test('listener counters are read when scraped', async () => {
    const metrics = new ServerMetrics();
    const stats = {
      accepted: 5,
      refusedFull: 1,
      refusedPerIp: 2,
      evictedIdle: 0,
      closedIdle: 3,
      closedSlow: 0,
      bytesIn: 1000,
      bytesOut: 70,
    };
    metrics.watchListener({ connectionCount: 4, stats });
    let text = await metrics.render();
    expect(sample(text, 'sft_connections_open')).toBe(4);
    expect(sample(text, 'sft_connections_accepted_total')).toBe(5);
    expect(sample(text, 'sft_refusals_total{reason="max_connections_per_ip"}')).toBe(2);
    expect(sample(text, 'sft_refusals_total{reason="idle_timeout"}')).toBe(3);
    expect(sample(text, 'sft_bytes_in_total')).toBe(1000);
    expect(sample(text, 'sft_bytes_out_total')).toBe(70);
    stats.accepted = 9;
    text = await metrics.render();
    expect(sample(text, 'sft_connections_accepted_total')).toBe(9);
    expect(text).toContain('sft_process_cpu_user_seconds_total');
  });

  test('requests count committed audit rows by code and result; failures by side and code', async () => {
    const metrics = new ServerMetrics();
    const { store, faults } = memoryBackends();
    const catalog = meterCatalog(store, metrics);
    await catalog.registerClient(idOf(7), 'a', 1);
    await catalog.audit(entry('registered', 1025));
    await catalog.putFile(
      { clientId: idOf(7), fileName: 'f', objectKey: `${HEX}/f`, size: 3, cksum: 1, updatedAt: 1 },
      entry('file_stored', 1028),
    );
    // No such file: the change did not happen, so its audit row was not written.
    await catalog.setFileStatus(idOf(7), 'nope', 'verified', 2, entry('checksum_ok', 1029));
    await catalog.setFileStatus(idOf(7), 'f', 'verified', 2, entry('checksum_ok', 1029));
    faults.fail('audit');
    await expect(catalog.audit(entry('registered', 1025))).rejects.toMatchObject({
      code: 'DATABASE',
    });
    const text = await metrics.render();
    expect(sample(text, 'sft_requests_total{code="1025",result="registered"}')).toBe(1);
    expect(sample(text, 'sft_requests_total{code="1028",result="file_stored"}')).toBe(1);
    expect(sample(text, 'sft_requests_total{code="1029",result="checksum_ok"}')).toBe(1);
    expect(sample(text, 'sft_storage_errors_total{side="database",code="DATABASE"}')).toBe(1);
  });

  test('uploads: bytes in, a duration per publication, byte-store failures counted', async () => {
    const metrics = new ServerMetrics();
    const { files, faults } = memoryBackends();
    let seconds = 100;
    const metered = meterFileStore(files, metrics, () => seconds);
    const sink = await metered.beginUpload(HEX, 'up.bin');
    await sink.write(Buffer.alloc(1000));
    await sink.write(Buffer.alloc(24));
    seconds += 2;
    await sink.commit();
    faults.fail('begin');
    await expect(metered.beginUpload(HEX, 'x')).rejects.toMatchObject({ code: 'FILESYSTEM' });
    const text = await metrics.render();
    expect(sample(text, 'sft_upload_bytes_in_total')).toBe(1024);
    expect(sample(text, 'sft_upload_duration_seconds_count')).toBe(1);
    expect(sample(text, 'sft_upload_duration_seconds_sum')).toBe(2);
    expect(sample(text, 'sft_upload_duration_seconds_bucket{le="1"}')).toBe(0);
    expect(sample(text, 'sft_upload_duration_seconds_bucket{le="2.5"}')).toBe(1);
    expect(sample(text, 'sft_storage_errors_total{side="storage",code="FILESYSTEM"}')).toBe(1);
  });

  test('a v4 upload published by moving its file goes through, counted by its size', async () => {
    const dataDir = await dirs.make();
    const backends = await openBackends({
      dataDir,
      database: 'memory',
      storage: 'disk',
      keepVersions: 1,
      now: Date.now,
    });
    try {
      const metrics = new ServerMetrics();
      const metered = meterFileStore(backends.files, metrics, () => 0);
      // Without adoptUpload the session would copy the finished partial instead of moving it.
      expect(metered.adoptUpload).toBeDefined();
      const finished = join(dataDir, 'finished.part');
      await writeFile(finished, Buffer.alloc(3000, 7));
      const published = await metered.adoptUpload!(HEX, 'moved.bin', finished);
      expect(published.objectKey).toBe(`${HEX}/moved.bin`);
      expect((await readFile(join(dataDir, HEX, 'moved.bin'))).length).toBe(3000);
      const text = await metrics.render();
      expect(sample(text, 'sft_upload_bytes_in_total')).toBe(3000);
      // Its first bytes went to the partial, unseen here: not timed.
      expect(sample(text, 'sft_upload_duration_seconds_count')).toBe(0);
    } finally {
      await backends.close();
    }
  });

  test('group-commit batch sizes are a histogram', async () => {
    const metrics = new ServerMetrics();
    metrics.batch(1);
    metrics.batch(30);
    const text = await metrics.render();
    expect(sample(text, 'sft_group_commit_batch_size_count')).toBe(2);
    expect(sample(text, 'sft_group_commit_batch_size_bucket{le="32"}')).toBe(2);
    expect(sample(text, 'sft_group_commit_batch_size_bucket{le="16"}')).toBe(1);
  });
});

describe('metrics endpoint', () => {
  let server: MetricsServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  async function get(path: string): Promise<{ status: number; body: string; type: string }> {
    const response = await fetch(`http://127.0.0.1:${server?.port}${path}`);
    return {
      status: response.status,
      body: await response.text(),
      type: response.headers.get('content-type') ?? '',
    };
  }

  test('/metrics, /healthz and /readyz answer on loopback by default', async () => {
    const metrics = new ServerMetrics();
    metrics.request(1028, 'file_stored');
    server = await startMetricsServer({
      port: 0,
      metrics,
      probes: { database: async () => undefined, storage: async () => undefined },
    });
    expect(server.host).toBe('127.0.0.1');
    const scraped = await get('/metrics');
    expect(scraped.status).toBe(200);
    expect(scraped.type).toContain('text/plain');
    expect(sample(scraped.body, 'sft_requests_total{code="1028",result="file_stored"}')).toBe(1);
    expect(await get('/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
    expect(await get('/readyz')).toMatchObject({
      status: 200,
      body: 'database: ok\nstorage: ok\n',
    });
    expect((await get('/nothing')).status).toBe(404);
    const posted = await fetch(`http://127.0.0.1:${server.port}/metrics`, { method: 'POST' });
    expect(posted.status).toBe(405);
  });

  test('/readyz is 503 naming the backend that failed or hung; /healthz stays 200', async () => {
    server = await startMetricsServer({
      port: 0,
      metrics: new ServerMetrics(),
      probes: {
        database: async () => {
          throw new Error('connection refused');
        },
        storage: () => new Promise<void>(() => undefined),
      },
      probeTimeoutMs: 100,
    });
    const ready = await get('/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body).toBe('database: connection refused\nstorage: no answer within 100 ms\n');
    expect((await get('/healthz')).status).toBe(200);
  });
});
