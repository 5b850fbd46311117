/**
 * Child process of crash.test.ts: registers clients one by one and reports each confirmed one
 * on stdout (as the server would answer 1600 after the commit), with an upload in progress,
 * until the parent kills it with SIGKILL.
 */
import { createDiskByteStore } from '../../server/storage/disk/byte-store';
import { DATABASE_FILE_NAME, openSqliteStore } from '../../server/storage/sqlite';
import * as path from 'node:path';

async function main(dataDir: string): Promise<void> {
  const store = await openSqliteStore({ path: path.join(dataDir, DATABASE_FILE_NAME) });
  const bytes = createDiskByteStore(dataDir);
  const writer = await bytes.begin(`${'cc'.repeat(16)}/partial.bin`);
  await writer.write(Buffer.alloc(256 * 1024, 0xcc));
  for (let i = 0; ; i += 1) {
    const id = Buffer.alloc(16);
    id.writeUInt32BE(i);
    await store.registerClient(id, `client-${i}`, i);
    await store.audit({
      time: i,
      remoteAddress: '127.0.0.1',
      clientId: null,
      name: `client-${i}`,
      requestCode: 1025,
      outcome: 'registered',
    });
    process.stdout.write(`${i}\n`);
  }
}

main(process.argv[2] as string).catch((err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
});
