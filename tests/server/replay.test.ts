/**
 * Server-side replay of the real C++ client captures (tests/fixtures/real-clients/README.md):
 * each recorded request stream goes to a real server on loopback, with the recorded ids and
 * keys injected, split at arbitrary points; the answers must be the manifest's `expected`.
 */
import { privateDecrypt, constants } from 'node:crypto';
import { RawClient, Reply, type RawResponse } from '../helpers/raw-client';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { memoryBackends } from '../../server/storage/memory';
import { CAPTURE_NAMES, hex, loadCapture, type Capture } from './captures';
import {
  expectBytes,
  QueuedSources,
  removeDir,
  startRealServer,
  startServer,
  type TestServer,
} from './harness';
// Deterministic pseudo-random sizes, so a failing split can be reproduced.
import { seededRandom } from '../protocol/support';

type Splitter = { readonly name: string; make(): (remaining: number) => number };

const SPLITTERS: Splitter[] = [
  { name: 'one write', make: () => (remaining) => remaining },
  {
    name: 'random pieces of 1-3000 bytes',
    make: () => {
      const rnd = seededRandom(7);
      return () => 1 + Math.floor(rnd() * 3000);
    },
  },
  {
    // Splits land inside headers and fixed fields again and again.
    name: 'small random pieces of 1-40 bytes',
    make: () => {
      const rnd = seededRandom(11);
      return () => 1 + Math.floor(rnd() * 40);
    },
  },
];

const ONE_BYTE: Splitter = { name: '1-byte writes', make: () => () => 1 };

function unwrap(capture: Capture, wrapped: Buffer): Buffer {
  return privateDecrypt(
    { key: capture.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
    wrapped,
  );
}

/** Checks the responses of one connection against the manifest's `expected`. */
function checkResponses(capture: Capture, connection: number, responses: RawResponse[]): void {
  const conn = capture.manifest.connections[connection];
  expect(responses.map((r) => r.code)).toEqual(conn.expected.map((e) => e.code));
  conn.expected.forEach((e, i) => {
    const r = responses[i];
    expect(r.version).toBe(3);
    expect(r.payloadSize).toBe(e.payload_size);
    if (e.bytes_hex !== undefined) expect(r.bytes.toString('hex')).toBe(e.bytes_hex);
    if (e.client_id !== undefined)
      expect(r.payload.subarray(0, 16).toString('hex')).toBe(e.client_id);
    if (e.code === Reply.KEY_ACCEPTED || e.code === Reply.RECONNECTED) {
      expect(unwrap(capture, r.payload.subarray(16, 144)).toString('hex')).toBe(conn.aes_key);
    }
  });
}

async function replay(
  server: TestServer,
  bytes: Buffer,
  splitter: Splitter,
): Promise<RawResponse[]> {
  const client = await RawClient.connect(server.port);
  await client.writeSplit(bytes, splitter.make());
  client.end();
  return client.untilClosed(60000);
}

function sourcesFor(...captures: Capture[]): QueuedSources {
  return new QueuedSources(
    captures.flatMap((c) => c.manifest.inject.client_ids_in_issue_order.map(hex)),
    captures.flatMap((c) => c.manifest.inject.aes_keys_in_issue_order.map(hex)),
  );
}

interface Backend {
  readonly server: TestServer;
  /** Bytes stored under `<id-hex>/<name>`, or undefined. */
  stored(path: string): Promise<Buffer | undefined>;
  /** Temp files of unfinished uploads left behind. */
  temps(): Promise<number>;
  close(): Promise<void>;
}

const BACKENDS: Record<string, (sources: QueuedSources) => Promise<Backend>> = {
  'memory store': async (sources) => {
    const stores = memoryBackends();
    const server = await startServer({ ...stores, sources });
    return {
      server,
      stored: async (path) => stores.bytes.objects.get(path),
      temps: async () => stores.bytes.temps.size,
      close: () => server.close(),
    };
  },
  'SQLite and disk': async (sources) => {
    const server = await startRealServer({ sources });
    return {
      server,
      stored: async (path) => {
        const file = join(server.dataDir, path);
        return existsSync(file) ? readFile(file) : undefined;
      },
      temps: async () => {
        const incoming = join(server.dataDir, '.incoming');
        return existsSync(incoming) ? (await readdir(incoming)).length : 0;
      },
      close: async () => {
        await server.close();
        await removeDir(server.dataDir);
      },
    };
  },
};

const captures = Object.fromEntries(CAPTURE_NAMES.map((n) => [n, loadCapture(n)])) as Record<
  (typeof CAPTURE_NAMES)[number],
  Capture
>;

describe.each(Object.keys(BACKENDS))('replay of real-client captures (%s)', (backendName) => {
  let backend: Backend | undefined;

  afterEach(async () => {
    await backend?.close();
    backend = undefined;
  });

  async function open(...using: Capture[]): Promise<Backend> {
    backend = await BACKENDS[backendName](sourcesFor(...using));
    return backend;
  }

  async function expectStored(b: Backend, capture: Capture): Promise<void> {
    const want = capture.manifest.expected_stored_file;
    const path = `${want.owner_client_id}/${want.file_name}`;
    expectBytes(await b.stored(path), capture.input);
    const row = await b.server.store.findFile(hex(want.owner_client_id), want.file_name);
    expect(row).toMatchObject({
      objectKey: path,
      verified: want.verified,
      size: capture.input.length,
      cksum: capture.manifest.input_file.cksum,
    });
    expect(await b.temps()).toBe(0);
  }

  for (const name of ['client-a-register-upload', 'client-b-register-upload'] as const) {
    for (const splitter of SPLITTERS) {
      it(`${name}: ${splitter.name}`, async () => {
        const capture = captures[name];
        const b = await open(capture);
        checkResponses(capture, 0, await replay(b.server, capture.c2s[0], splitter));
        await expectStored(b, capture);
      });
    }
  }

  it('client-a-register-upload: 1-byte writes for the whole stream', async () => {
    const capture = captures['client-a-register-upload'];
    const b = await open(capture);
    checkResponses(capture, 0, await replay(b.server, capture.c2s[0], ONE_BYTE));
    await expectStored(b, capture);
  });

  for (const splitter of [...SPLITTERS, ONE_BYTE]) {
    it(`client-a-empty-last-packet, whole stream with its retries: ${splitter.name}`, async () => {
      const capture = captures['client-a-empty-last-packet'];
      const b = await open(capture);
      checkResponses(capture, 0, await replay(b.server, capture.c2s[0], splitter));
      await expectStored(b, capture);
    });
  }

  it('client-a-empty-last-packet: the normative prefix gives 1600, 1602, 1603', async () => {
    const capture = captures['client-a-empty-last-packet'];
    const prefix = capture.manifest.replay_prefix;
    if (prefix === undefined) throw new Error('manifest has no replay_prefix');
    const b = await open(capture);
    const bytes = capture.c2s[0].subarray(0, prefix.c2s_end_offset);
    const responses = await replay(b.server, bytes, ONE_BYTE);
    expect(responses.map((r) => r.code)).toEqual(prefix.expected_codes);
    expect(responses[2].bytes.toString('hex')).toBe(
      capture.manifest.connections[0].expected[2].bytes_hex,
    );
  });

  for (const splitter of SPLITTERS) {
    it(`client-a-reconnect-upload after client-a-register-upload: ${splitter.name}`, async () => {
      const first = captures['client-a-register-upload'];
      const second = captures['client-a-reconnect-upload'];
      const b = await open(first, second);
      checkResponses(first, 0, await replay(b.server, first.c2s[0], splitter));
      checkResponses(second, 0, await replay(b.server, second.c2s[0], splitter));
      await expectStored(b, second);
      const conn = second.manifest.connections[0];
      const client = await b.server.store.findClientById(hex(conn.client_id));
      expect(client?.aesKey?.toString('hex')).toBe(conn.aes_key);
      expect(client?.name).toBe('Fixture Client A');
    });
  }
});
