/**
 * The memory ByteStore: objects in a Map, writes gathered until commit. Keys are checked with
 * the same grammar as every backend (../object-keys.ts). For tests and `--storage memory`
 * (nothing survives a restart).
 */
import { Readable } from 'node:stream';
import { parseKey, parsePrefix } from '../object-keys';
import { StorageError, StorageErrorCode, type ByteStore, type ObjectWriter } from '../types';
import { FailureInjector } from './faults';

export class MemoryByteStore implements ByteStore {
  /** Published objects by key. */
  readonly objects = new Map<string, Buffer>();
  /** Writers begun and neither committed nor aborted, by a serial number. */
  readonly temps = new Map<number, Buffer[]>();
  private nextTemp = 1;

  constructor(readonly faults: FailureInjector = new FailureInjector()) {}

  async begin(key: string): Promise<ObjectWriter> {
    this.faults.check('begin');
    parseKey(key);
    const temp = this.nextTemp++;
    const parts: Buffer[] = [];
    this.temps.set(temp, parts);
    let state: 'open' | 'committed' | 'aborted' = 'open';
    const closed = (what: string): StorageError =>
      new StorageError(StorageErrorCode.FILESYSTEM, `cannot ${what} ${key}: it is ${state}`);
    return {
      write: async (data) => {
        this.faults.check('writer.write');
        if (state !== 'open') throw closed('write to');
        parts.push(Buffer.from(data));
      },
      commit: async () => {
        if (state !== 'open') throw closed('commit');
        try {
          this.faults.check('writer.commit');
        } catch (err) {
          state = 'aborted';
          this.temps.delete(temp);
          throw err;
        }
        state = 'committed';
        this.temps.delete(temp);
        this.objects.set(key, Buffer.concat(parts));
      },
      abort: async () => {
        if (state === 'open') state = 'aborted';
        this.temps.delete(temp);
      },
    };
  }

  async read(key: string): Promise<NodeJS.ReadableStream | undefined> {
    this.faults.check('read');
    parseKey(key);
    const bytes = this.objects.get(key);
    return bytes === undefined ? undefined : Readable.from([bytes]);
  }

  async copy(from: string, to: string): Promise<boolean> {
    this.faults.check('copy');
    parseKey(from);
    parseKey(to);
    const bytes = this.objects.get(from);
    if (bytes === undefined) return false;
    this.objects.set(to, bytes);
    return true;
  }

  async remove(key: string): Promise<void> {
    this.faults.check('remove');
    parseKey(key);
    this.objects.delete(key);
  }

  async removePrefix(prefix: string): Promise<void> {
    this.faults.check('removePrefix');
    parsePrefix(prefix);
    for (const key of [...this.objects.keys()]) {
      if (key.startsWith(prefix)) this.objects.delete(key);
    }
  }

  async sweepIncomplete(): Promise<number> {
    this.faults.check('sweepIncomplete');
    const count = this.temps.size;
    this.temps.clear();
    return count;
  }
}
