/**
 * The sending half of the bench's reference (bench/reference.ts): a fresh process that reads
 * each file whole, hashes it (SHA-256), sends it over one of N TLS 1.3 connections without
 * waiting (bench/reference/receiver.ts frames) and exits once every answer matched.
 *
 * Usage: node sender.js PORT CONNECTIONS FILE...
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import tls from 'node:tls';

function sendLane(port: number, files: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const expected: Buffer[] = [];
    const socket = tls.connect(
      // The reference measures the transfer, not trust: the receiver's certificate is a throwaway.
      { port, host: '127.0.0.1', rejectUnauthorized: false, minVersion: 'TLSv1.3' },
      () => {
        for (const file of files) {
          const data = readFileSync(file);
          expected.push(createHash('sha256').update(data).digest());
          const name = Buffer.from(basename(file));
          const head = Buffer.alloc(6 + name.length);
          head.writeUInt16BE(name.length, 0);
          name.copy(head, 2);
          head.writeUInt32BE(data.length, 2 + name.length);
          socket.write(head);
          socket.write(data);
        }
      },
    );
    let answers: Buffer = Buffer.alloc(0);
    let matched = 0;
    socket.on('data', (chunk: Buffer) => {
      answers = Buffer.concat([answers, chunk]);
      while (answers.length >= 32) {
        if (!answers.subarray(0, 32).equals(expected[matched] ?? Buffer.alloc(0))) {
          reject(new Error(`answer ${matched} is not the SHA-256 of ${files[matched]}`));
          socket.destroy();
          return;
        }
        answers = answers.subarray(32);
        matched += 1;
      }
      if (matched === files.length) {
        socket.end();
        resolve();
      }
    });
    socket.on('error', reject);
    socket.on('close', () => {
      if (matched < files.length) reject(new Error(`closed after ${matched} answers`));
    });
  });
}

async function main(): Promise<void> {
  const [port, connections, ...files] = process.argv.slice(2);
  const lanes: string[][] = Array.from({ length: Number(connections) }, () => []);
  files.forEach((file, i) => lanes[i % lanes.length]?.push(file));
  await Promise.all(lanes.map((lane) => sendLane(Number(port), lane)));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
