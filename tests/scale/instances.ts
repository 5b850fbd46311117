/**
 * Several `sft-server` processes sharing one PostgreSQL database and one S3 bucket, as in a
 * scaled-out deployment (README "Scaling out"): each instance has its own data directory
 * (logs, v4 partials) but the same catalog, bytes and v4 identity.
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3_TEST_CREDENTIALS, S3_TEST_REGION, testS3Client } from '../helpers/s3';
import { SERVER_MAIN, startServerProcess, type ServerProcess } from '../helpers/server-process';

export interface SharedBackends {
  readonly databaseUrl: string;
  readonly s3Endpoint: string;
  readonly bucket: string;
  /** Key prefix inside the bucket (ends in `/`). */
  readonly prefix: string;
}

export interface Instance {
  readonly process: ServerProcess;
  readonly port: number;
  readonly metricsPort: number;
  readonly dataDir: string;
}

/** AWS SDK settings of the child processes: s3rver's account. */
export const S3_ENV = {
  AWS_ACCESS_KEY_ID: S3_TEST_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: S3_TEST_CREDENTIALS.secretAccessKey,
  AWS_REGION: S3_TEST_REGION,
} as const;

export function backendArgs(shared: SharedBackends): string[] {
  return [
    '--database',
    shared.databaseUrl,
    '--storage',
    `s3://${shared.bucket}/${shared.prefix}`,
    '--s3-endpoint',
    shared.s3Endpoint,
  ];
}

/**
 * Starts one instance on a free port with the metrics endpoint on another. `identityFrom`
 * copies the v4 identity of an earlier instance, so every instance shows one fingerprint.
 */
export async function startInstance(
  shared: SharedBackends,
  options: { args?: readonly string[]; identityFrom?: Instance } = {},
): Promise<Instance> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sft-scale-'));
  if (options.identityFrom !== undefined) {
    await cp(join(options.identityFrom.dataDir, 'identity'), join(dataDir, 'identity'), {
      recursive: true,
    });
  }
  const process = await startServerProcess(dataDir, {
    args: [
      ...backendArgs(shared),
      '--metrics-port',
      '0',
      '--max-connections-per-ip',
      '1000',
      '--register-rate',
      '1000',
      '--register-burst',
      '1000',
      ...(options.args ?? []),
    ],
    env: S3_ENV,
  });
  const metrics = await process.waitForLine((line) => line.msg === 'metrics endpoint listening');
  return { process, port: process.port, metricsPort: metrics.port as number, dataDir };
}

export async function stopInstance(instance: Instance): Promise<void> {
  await instance.process.stop('SIGTERM');
  await rm(instance.dataDir, { recursive: true, force: true });
}

/** GET on an instance's metrics endpoint. */
export async function getOps(
  instance: Instance,
  path: string,
): Promise<{ status: number; body: string }> {
  let response: Response;
  try {
    response = await fetch(`http://127.0.0.1:${instance.metricsPort}${path}`);
  } catch (err) {
    // Most likely the instance died: say how, with its last words.
    const exit = instance.process.child.exitCode ?? instance.process.child.signalCode;
    const last = instance.process.lines.slice(-5).map((line) => JSON.stringify(line));
    throw new Error(
      `GET ${path} on port ${instance.metricsPort} failed (${String(err)}); exit: ${exit}; ` +
        `stderr: ${instance.process.stderr().slice(-2000)}; last log lines: ${last.join('\n')}`,
    );
  }
  return { status: response.status, body: await response.text() };
}

export interface AdminRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `sft-server admin ARGS… --database URL --storage … --s3-endpoint …` as its own process. */
export function runAdmin(shared: SharedBackends, args: readonly string[]): Promise<AdminRun> {
  return runAdminRaw([...args, ...backendArgs(shared)]);
}

/** `sft-server admin ARGS…` as given, as its own process. */
export function runAdminRaw(args: readonly string[]): Promise<AdminRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SERVER_MAIN, 'admin', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...S3_ENV },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** SHA-256 (hex) of an object in the bucket, or undefined when there is none. */
export async function objectSha256(
  shared: SharedBackends,
  key: string,
): Promise<string | undefined> {
  const client = testS3Client(shared.s3Endpoint);
  try {
    const result = await client.send(
      new GetObjectCommand({ Bucket: shared.bucket, Key: `${shared.prefix}${key}` }),
    );
    const bytes = await result.Body?.transformToByteArray();
    return bytes === undefined ? undefined : createHash('sha256').update(bytes).digest('hex');
  } catch (err) {
    if ((err as { name?: string }).name === 'NoSuchKey') return undefined;
    throw err;
  } finally {
    client.destroy();
  }
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
