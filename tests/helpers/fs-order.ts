/**
 * An ordered log of what makes files durable (FileHandle sync, and datasync if asked) and what
 * names them (rename), each with the path its handle was opened on: the durability-order tests
 * spy on node:fs/promises with it. Undone by jest.restoreAllMocks.
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

type SyncName = 'sync' | 'datasync';

export async function recordFsOrder(
  scratch: string,
  options: { readonly datasync?: boolean } = {},
): Promise<string[]> {
  const log: string[] = [];
  const paths = new WeakMap<FileHandle, string>();
  // FileHandle's class is not exported: take its prototype from a handle.
  const sample = await fsp.open(join(scratch, 'sample'), 'w');
  const proto = Object.getPrototypeOf(sample) as Record<SyncName, () => Promise<void>>;
  await sample.close();
  const open = fsp.open.bind(fsp);
  jest.spyOn(fsp, 'open').mockImplementation(async (...args: Parameters<typeof fsp.open>) => {
    const handle = await open(...args);
    paths.set(handle, String(args[0]));
    return handle;
  });
  const names: SyncName[] = options.datasync === true ? ['sync', 'datasync'] : ['sync'];
  for (const name of names) {
    const original = proto[name];
    jest.spyOn(proto, name).mockImplementation(async function (this: FileHandle) {
      await original.call(this);
      log.push(`${name} ${paths.get(this) ?? '?'}`);
    });
  }
  const rename = fsp.rename.bind(fsp);
  jest.spyOn(fsp, 'rename').mockImplementation(async (from, to) => {
    await rename(from, to);
    log.push(`rename ${String(from)} -> ${String(to)}`);
  });
  return log;
}
