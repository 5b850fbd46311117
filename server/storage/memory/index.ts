/**
 * The memory backend (catalog and bytes), selectable as `memory` in open-backends.ts and used
 * by session tests, with failure injection shared by both halves.
 */
import { DEFAULT_KEEP_VERSIONS, FileVault } from '../file-vault';
import { MemoryByteStore } from './byte-store';
import { MemoryCatalog } from './catalog';
import { FailureInjector } from './faults';

export { MemoryByteStore } from './byte-store';
export { MemoryCatalog } from './catalog';
export { FailureInjector } from './faults';

export interface MemoryBackends {
  readonly faults: FailureInjector;
  readonly store: MemoryCatalog;
  readonly bytes: MemoryByteStore;
  /** The FileStore sessions use, over `store` and `bytes`. */
  readonly files: FileVault;
}

export function memoryBackends(
  options: { keepVersions?: number; now?: () => number; faults?: FailureInjector } = {},
): MemoryBackends {
  const faults = options.faults ?? new FailureInjector();
  const store = new MemoryCatalog(faults);
  const bytes = new MemoryByteStore(faults);
  const files = new FileVault({
    catalog: store,
    bytes,
    keepVersions: options.keepVersions ?? DEFAULT_KEEP_VERSIONS,
    now: options.now ?? Date.now,
  });
  return { faults, store, bytes, files };
}
