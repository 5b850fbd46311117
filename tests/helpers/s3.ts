/**
 * An S3-compatible server for tests: `s3rver` (a dev dependency) on loopback at a free port,
 * keeping objects in a temp directory. `.ci/run` starts one for the whole run and exports its
 * endpoint as SFT_TEST_S3_ENDPOINT; without it (a plain `npm test`), a test file starts its own
 * in-process. The server code talks to it with the real AWS SDK, exactly as to S3 or MinIO.
 *
 * s3rver lacks two calls of the multipart API that the S3 backend uses: ListMultipartUploads
 * (GET `/<bucket>?uploads`) and AbortMultipartUpload (DELETE `/<bucket>/<key>?uploadId=`).
 * They are answered here from s3rver's own upload folders, with S3's XML, so the real code
 * path of the backend runs against it.
 */
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { promises as fsp, mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

/** Environment variable with the endpoint of a running test S3 server. */
export const S3_ENDPOINT_ENV = 'SFT_TEST_S3_ENDPOINT';
/** s3rver's fixed account (it checks request signatures against it). */
export const S3_TEST_CREDENTIALS = {
  accessKeyId: 'S3RVER',
  secretAccessKey: 'S3RVER',
} as const;
export const S3_TEST_REGION = 'us-east-1';

/** Where s3rver keeps the parts of unfinished multipart uploads of a bucket. */
const UPLOADS_FOLDER = '._S3rver_uploads';

interface KoaContext {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string | string[] | undefined>;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  status: number;
  body: unknown;
  type: string;
}
type Middleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;
interface S3rverInstance {
  middleware: Middleware[];
  /** Node's HTTP server, once running. */
  readonly httpServer?: { closeAllConnections(): void };
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}
type S3rverClass = new (options: Record<string, unknown>) => S3rverInstance;

function xmlEscape(text: string): string {
  return text.replace(/[<>&'"]/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/** The two multipart calls s3rver lacks, answered from its upload folders. */
function multipartShim(directory: string): Middleware {
  return async (ctx, next) => {
    const segments = ctx.path.split('/').filter((part) => part !== '');
    const [bucket, ...keyParts] = segments.map(decodeURIComponent);
    if (bucket === undefined) return next();
    const uploadsDir = path.join(directory, bucket, UPLOADS_FOLDER);
    if (ctx.method === 'GET' && keyParts.length === 0 && 'uploads' in ctx.query) {
      const prefix = typeof ctx.query.prefix === 'string' ? ctx.query.prefix : '';
      const ids = await fsp.readdir(uploadsDir).catch(() => [] as string[]);
      const entries: string[] = [];
      for (const id of ids.sort()) {
        const key = await fsp.readFile(path.join(uploadsDir, id, 'key'), 'utf8').catch(() => '');
        if (key === '' || !key.startsWith(prefix)) continue;
        const { mtime } = await fsp.stat(path.join(uploadsDir, id));
        entries.push(
          `<Upload><Key>${xmlEscape(key)}</Key><UploadId>${id}</UploadId>` +
            `<Initiated>${mtime.toISOString()}</Initiated></Upload>`,
        );
      }
      ctx.type = 'application/xml';
      ctx.body =
        '<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult>' +
        `<Bucket>${xmlEscape(bucket)}</Bucket><Prefix>${xmlEscape(prefix)}</Prefix>` +
        `<IsTruncated>false</IsTruncated>${entries.join('')}</ListMultipartUploadsResult>`;
      return;
    }
    const uploadId = ctx.query.uploadId;
    if (ctx.method === 'DELETE' && keyParts.length > 0 && typeof uploadId === 'string') {
      if (!/^[0-9a-f]+$/.test(uploadId)) {
        ctx.status = 400;
        return;
      }
      const folder = path.join(uploadsDir, uploadId);
      try {
        await fsp.access(folder);
      } catch {
        ctx.status = 404;
        ctx.type = 'application/xml';
        ctx.body =
          '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchUpload</Code>' +
          '<Message>The specified upload does not exist.</Message></Error>';
        return;
      }
      await fsp.rm(folder, { recursive: true, force: true });
      ctx.status = 204;
      return;
    }
    return next();
  };
}

export interface S3TestServer {
  readonly endpoint: string;
  stop(): Promise<void>;
}

/**
 * Starts s3rver on loopback (port 0 = any free port) keeping objects in `directory`, or in a
 * temp directory of its own that `stop` removes (a given one stays, for a restart).
 */
export async function startS3Server(port = 0, given?: string): Promise<S3TestServer> {
  // s3rver ships no type declarations; the shape used here is declared above.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const S3rver = require('s3rver') as S3rverClass;
  const directory = given ?? mkdtempSync(path.join(tmpdir(), 'sft-s3-'));
  const server = new S3rver({ port, address: '127.0.0.1', silent: true, directory });
  server.middleware.unshift(multipartShim(directory));
  const address = await server.run();
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    async stop() {
      // Idle keep-alive connections of SDK clients would hold the close open.
      server.httpServer?.closeAllConnections();
      await server.close();
      if (given === undefined) rmSync(directory, { recursive: true, force: true });
    },
  };
}

export function testS3Client(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: S3_TEST_REGION,
    credentials: S3_TEST_CREDENTIALS,
    forcePathStyle: true,
  });
}

/** A new empty bucket named for one test file. */
export async function createTestBucket(endpoint: string): Promise<string> {
  const bucket = `sft-test-${randomBytes(6).toString('hex')}`;
  const client = testS3Client(endpoint);
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
  return bucket;
}

export interface S3ForTests {
  readonly endpoint: string;
  /** A bucket of this test file's own. */
  readonly bucket: string;
}

/** Jest hooks: a bucket of its own for the calling test file, on the CI's server or its own. */
export function useS3(): S3ForTests {
  let server: S3TestServer | undefined;
  let endpoint: string | undefined;
  let bucket: string | undefined;
  beforeAll(async () => {
    endpoint = process.env[S3_ENDPOINT_ENV];
    if (endpoint === undefined || endpoint === '') {
      server = await startS3Server();
      endpoint = server.endpoint;
    }
    bucket = await createTestBucket(endpoint);
  });
  afterAll(async () => {
    await server?.stop();
  });
  return {
    get endpoint(): string {
      if (endpoint === undefined) throw new Error('useS3: no server (beforeAll failed)');
      return endpoint;
    },
    get bucket(): string {
      if (bucket === undefined) throw new Error('useS3: no bucket (beforeAll failed)');
      return bucket;
    },
  };
}
