/**
 * The receiving half of the bench's reference (bench/reference.ts): the least a Node program
 * does to take files over TLS 1.3 and make each durable before it answers. Frames are
 * `u16 name length, name, u32 size, bytes`; the answer to each is the SHA-256 of its bytes,
 * in order, sent once the file was written, fdatasync'ed, renamed into place and its folder
 * fsynced (one folder fsync covers every rename before it). No protocol, database, checksum or
 * limits: what the project's server adds to this is its own cost.
 *
 * Usage: node receiver.js DIR CERT_PEM KEY_PEM; prints {"port":N} when it listens.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import tls from 'node:tls';

/** One folder fsync at a time; renames waiting meanwhile share the next one. */
class FolderSync {
  private running: Promise<void> | undefined;
  private waiting: { resolve: () => void; reject: (err: unknown) => void }[] = [];

  constructor(private readonly dir: string) {}

  sync(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.running ??= this.drain().finally(() => {
        this.running = undefined;
      });
    });
  }

  private async drain(): Promise<void> {
    while (this.waiting.length > 0) {
      const batch = this.waiting;
      this.waiting = [];
      try {
        const handle = await open(this.dir, 'r');
        try {
          await handle.sync();
        } finally {
          await handle.close();
        }
        for (const w of batch) w.resolve();
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
  }
}

function main(): void {
  const [dir, certFile, keyFile] = process.argv.slice(2);
  if (dir === undefined || certFile === undefined || keyFile === undefined) {
    throw new Error('usage: receiver DIR CERT KEY');
  }
  const folder = new FolderSync(dir);
  let temps = 0;
  const store = async (name: string, data: Buffer): Promise<void> => {
    const temp = join(dir, `.part-${(temps += 1)}`);
    const handle = await open(temp, 'w', 0o600);
    try {
      await handle.write(data, 0, data.length, 0);
      await handle.datasync();
    } finally {
      await handle.close();
    }
    await rename(temp, join(dir, name));
    await folder.sync();
  };
  const server = tls.createServer(
    { cert: readFileSync(certFile), key: readFileSync(keyFile), minVersion: 'TLSv1.3' },
    (socket) => {
      let pending: Buffer = Buffer.alloc(0);
      let answered: Promise<unknown> = Promise.resolve();
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        for (;;) {
          if (pending.length < 2) break;
          const nameLength = pending.readUInt16BE(0);
          if (pending.length < 6 + nameLength) break;
          const size = pending.readUInt32BE(2 + nameLength);
          const end = 6 + nameLength + size;
          if (pending.length < end) break;
          const name = pending.toString('utf8', 2, 2 + nameLength);
          // Only the bench's own sender talks to it, but a name is still kept in its folder.
          if (name === '' || name === '.' || name === '..' || /[/\0]/.test(name)) {
            socket.destroy();
            return;
          }
          const data = Buffer.from(pending.subarray(6 + nameLength, end));
          pending = pending.subarray(end);
          const sha256 = createHash('sha256').update(data).digest();
          const stored = store(name, data);
          answered = answered.then(() => stored).then(() => socket.write(sha256));
        }
      });
    },
  );
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    if (address !== null && typeof address === 'object') {
      process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
    }
  });
}

main();
