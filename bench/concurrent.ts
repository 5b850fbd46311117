/**
 * The "concurrent" benchmark: many sessions at once against one server, driven in-process by
 * the client's own modules (Session over real TCP). RSA keys are generated before timing, as a
 * returning fleet of clients would already have them.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectTransport } from '../client/transport/connection';
import { Session } from '../client/session/session';
import { planUpload } from '../client/session/upload-plan';
import { generateRsaKeyPair } from '../shared/crypto';
import { settleDisk } from './disk';
import { percentile } from './stats';

export interface ConcurrentOptions {
  readonly port: number;
  readonly sessions: number;
  readonly fileBytes: number;
  /** Folder for the input files. */
  readonly workDir: string;
}

export interface ConcurrentResult {
  readonly sessions: number;
  readonly verified: number;
  readonly failed: number;
  readonly wallMs: number;
  readonly sessionsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

const TIMEOUTS = { connectTimeoutMs: 30_000, responseTimeoutMs: 120_000 };

export async function runConcurrent(options: ConcurrentOptions): Promise<ConcurrentResult> {
  const { sessions, fileBytes, port } = options;
  const dir = join(options.workDir, 'concurrent');
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (let i = 0; i < sessions; i++) {
    const file = join(dir, `session-${i}.bin`);
    writeFileSync(file, randomBytes(fileBytes));
    files.push(file);
  }
  const keys = await Promise.all(Array.from({ length: sessions }, () => generateRsaKeyPair()));
  const server = { host: '127.0.0.1', port, display: `127.0.0.1:${port}` };
  const run = randomBytes(4).toString('hex');

  const durations: number[] = [];
  let verified = 0;
  let failed = 0;
  settleDisk();
  const start = performance.now();
  await Promise.all(
    files.map(async (file, i) => {
      const began = performance.now();
      const session = new Session({
        connect: () => connectTransport(server, TIMEOUTS),
        registerName: `bench-${run}-${i}`,
        generateKeyPair: async () => keys[i],
      });
      try {
        await session.open();
        const result = await session.upload(planUpload(file, fileBytes));
        if (result.verified) verified++;
        else failed++;
      } catch (err) {
        failed++;
        if (failed === 1)
          console.error('first failed session:', err instanceof Error ? err.message : err);
      } finally {
        session.close();
        durations.push(performance.now() - began);
      }
    }),
  );
  const wallMs = performance.now() - start;
  return {
    sessions,
    verified,
    failed,
    wallMs,
    sessionsPerSecond: sessions / (wallMs / 1000),
    p50Ms: percentile(durations, 50),
    p99Ms: percentile(durations, 99),
  };
}
