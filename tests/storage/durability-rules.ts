/**
 * The rules an answered upload must satisfy in the probe's log (durability-probe.ts): its file
 * synced after its last write and before its rename, its folder synced after the rename (a new
 * client folder into the data directory), and its row committed, all before the answer.
 */
import type { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Reply } from '../helpers/raw-client';
import type { Probe, ProbeEvent } from './durability-probe';

/** True when a statement's parameters name this client's file (its id and its name). */
function isRowOf(params: unknown[], clientHex: string, fileName: string): boolean {
  return (
    params.includes(fileName) &&
    params.some((p) => Buffer.isBuffer(p) && p.toString('hex') === clientHex)
  );
}

/**
 * True when a transaction was open on the connection when the statement starting at `seq` began:
 * a BEGIN done before it without a COMMIT or ROLLBACK (not a ROLLBACK TO a savepoint) after.
 */
function inTransactionAt(events: readonly ProbeEvent[], seq: number): boolean {
  let open = false;
  for (const e of events) {
    if (e.kind !== 'sql' || e.done > seq) continue;
    if (/^\s*BEGIN/i.test(e.sql)) open = true;
    else if (/^\s*(COMMIT|END|ROLLBACK(?!\s+TO))/i.test(e.sql)) open = false;
  }
  return open;
}

/** The rules of durability.test.ts this file's 1603 broke (none if it was durable in time). */
export function brokenRules(
  probe: Probe,
  dataDir: string,
  clientHex: string,
  fileName: string,
): string[] {
  const answer = probe.events.find(
    (e) =>
      e.kind === 'answer' &&
      e.code === Reply.FILE_RECEIVED &&
      e.clientHex === clientHex &&
      e.fileName === fileName,
  );
  if (answer === undefined) return [`${fileName}: no 1603 was written`];
  return brokenRulesBefore(probe, dataDir, clientHex, fileName, { seq: answer.seq, name: '1603' });
}

/**
 * The rules the answer at `answer.seq` broke for this file (none if the file, its folder entry
 * and its row were durable before it): the same for a 1603 and a version-4 STORED.
 */
export function brokenRulesBefore(
  probe: Probe,
  dataDir: string,
  clientHex: string,
  fileName: string,
  answer: { readonly seq: number; readonly name: string },
): string[] {
  const events = probe.events;
  const before = (seq: number): boolean => seq < answer.seq;
  const destination = join(dataDir, clientHex, fileName);
  const broken: string[] = [];
  const rule = (ok: boolean, text: string): void => {
    if (!ok) broken.push(`${fileName}: ${text} before its ${answer.name}`);
  };
  const handlesOf = (path: string): Set<FileHandle> =>
    new Set(events.flatMap((e) => (e.kind === 'open' && e.path === path ? [e.handle] : [])));
  const syncedBetween = (handles: Set<FileHandle>, after: number): boolean =>
    events.some(
      (e) => e.kind === 'sync' && handles.has(e.handle) && e.ok && e.seq > after && before(e.done),
    );

  // The file: synced after its last write, before the rename that published it.
  const rename = events
    .flatMap((e) => (e.kind === 'rename' && e.to === destination && before(e.done) ? [e] : []))
    .at(-1);
  if (rename === undefined)
    return [`${fileName}: not renamed into place before its ${answer.name}`];
  const temp = handlesOf(rename.from);
  rule(temp.size > 0, 'temp file opened through fs');
  const lastWrite = Math.max(
    0,
    ...events.flatMap((e) => (e.kind === 'write' && temp.has(e.handle) ? [e.done] : [])),
  );
  rule(
    events.some(
      (e) =>
        e.kind === 'sync' && temp.has(e.handle) && e.ok && e.seq > lastWrite && e.done < rename.seq,
    ),
    'file synced after its last write and before its rename',
  );

  // Its directory entry: the folder synced after the rename.
  const folder = dirname(destination);
  rule(syncedBetween(handlesOf(folder), rename.done), 'folder synced after the rename');

  // A new client folder: its entry in the data directory synced after it was made.
  const made = events.find((e) => e.kind === 'mkdir' && e.path === folder);
  if (made !== undefined && made.kind === 'mkdir') {
    rule(
      syncedBetween(handlesOf(dataDir), made.done),
      'new client folder synced into the data directory',
    );
  }

  // The row: written outside a transaction (SQLite commits a statement alone as it completes),
  // or written in one, then a COMMIT with no rollback in between.
  const row = events
    .flatMap((e) =>
      e.kind === 'row' && isRowOf(e.params, clientHex, fileName) && before(e.done) ? [e] : [],
    )
    .at(-1);
  let committed = row !== undefined && !inTransactionAt(events, row.seq);
  if (row !== undefined && !committed) {
    for (const e of events) {
      if (e.kind !== 'sql' || e.seq < row.done || !before(e.done)) continue;
      if (/^ROLLBACK/i.test(e.sql)) break;
      if (/^COMMIT/i.test(e.sql)) {
        committed = true;
        break;
      }
    }
  }
  rule(committed, 'row written and committed');
  return broken;
}
