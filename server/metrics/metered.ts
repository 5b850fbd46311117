/**
 * Storage wrapped for metrics: the server's catalog and file store pass through these, so the
 * sessions stay unaware of metrics. Every request the session audits (docs/protocol.md §9:
 * each request ends in one audit row) is counted by its code and outcome once the row is
 * committed; every StorageError is counted by side and code; uploads are timed from their
 * first bytes to their publication. A v4 upload published by moving its finished partial into
 * place (adoptUpload) is counted by its size; its first bytes went to the partial, out of sight
 * of this wrapper, so it is not timed.
 */
import { stat } from 'node:fs/promises';
import type { AuditEntry, Catalog, FileStore, PutFileOptions, UploadSink } from '../storage/types';
import { putFileAudits, StorageError } from '../storage/types';
import type { ServerMetrics, StorageSide } from './metrics';

function countFailure(metrics: ServerMetrics, side: StorageSide, err: unknown): void {
  metrics.storageError(side, err instanceof StorageError ? err.code : 'UNKNOWN');
}

/** The audit rows a call of `method` with `args` writes when `result` says it happened. */
function auditsOf(method: string, args: readonly unknown[], result: unknown): AuditEntry[] {
  if (method === 'putFile') {
    return putFileAudits(args[1] as AuditEntry | undefined, args[2] as PutFileOptions | undefined);
  }
  const entry = auditOf(method, args, result);
  return entry === undefined ? [] : [entry];
}

/** The audit row a call of `method` (other than putFile) writes when `result` says it happened. */
function auditOf(
  method: string,
  args: readonly unknown[],
  result: unknown,
): AuditEntry | undefined {
  switch (method) {
    case 'audit':
      return args[0] as AuditEntry;
    case 'setFileStatus':
      return result === true ? (args[4] as AuditEntry | undefined) : undefined;
    case 'deleteFile':
      return result === true ? (args[2] as AuditEntry | undefined) : undefined;
    case 'restoreVersion':
      return result === undefined
        ? undefined
        : (args[3] as { audit?: AuditEntry } | undefined)?.audit;
    default:
      return undefined;
  }
}

/** `catalog` with its requests and failures counted. */
export function meterCatalog<C extends Catalog>(catalog: C, metrics: ServerMetrics): C {
  return new Proxy(catalog, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      const method = value as (...args: unknown[]) => unknown;
      return (...args: unknown[]): unknown => {
        const result = method.apply(target, args);
        if (!(result instanceof Promise)) return result;
        return result.then(
          (resolved: unknown) => {
            for (const entry of auditsOf(property, args, resolved)) {
              metrics.request(entry.requestCode, entry.outcome);
            }
            return resolved;
          },
          (err: unknown) => {
            countFailure(metrics, 'database', err);
            throw err;
          },
        );
      };
    },
  });
}

/** `files` with upload bytes, durations and failures counted; `now` in seconds. */
export function meterFileStore(
  files: FileStore,
  metrics: ServerMetrics,
  now: () => number,
): FileStore {
  const counted = async <T>(work: Promise<T>): Promise<T> => {
    try {
      return await work;
    } catch (err) {
      countFailure(metrics, 'storage', err);
      throw err;
    }
  };
  const adopt = files.adoptUpload?.bind(files);
  return {
    async beginUpload(clientIdHex, fileName): Promise<UploadSink> {
      const sink = await counted(files.beginUpload(clientIdHex, fileName));
      const started = now();
      return {
        async write(data) {
          await counted(sink.write(data));
          metrics.received(data.length);
        },
        async commit() {
          const published = await counted(sink.commit());
          metrics.uploadFinished(now() - started);
          return { ...published, unpublish: () => counted(published.unpublish()) };
        },
        abort: () => counted(sink.abort()),
      };
    },
    // Passed through when there is one: without it a v4 upload would be copied, not moved.
    ...(adopt === undefined
      ? {}
      : {
          async adoptUpload(clientIdHex: string, fileName: string, path: string) {
            const { size } = await stat(path);
            const published = await counted(adopt(clientIdHex, fileName, path));
            metrics.received(size);
            return { ...published, unpublish: () => counted(published.unpublish()) };
          },
        }),
    remove: (clientIdHex, fileName) => counted(files.remove(clientIdHex, fileName)),
    removeClient: (clientIdHex) => counted(files.removeClient(clientIdHex)),
  };
}
