/**
 * Runs of several kinds taken in turn (a, b, c, a, b, c, …) rather than one kind after the
 * other, so that the load of a shared machine falls on every kind alike and their ratios mean
 * something. Each run comes after a `sync` and gets its own server peak RSS (VmHWM, reset
 * before it); a kind's peak is the highest of its runs.
 */
import { settleDisk } from './disk';
import { peakRss, resetPeakRss } from './rss';

export interface KindFigures {
  readonly runsMs: number[];
  /** Bytes; undefined off Linux. */
  readonly peakRss: number | undefined;
}

export type Run = (i: number) => Promise<number>;

export async function alternate<K extends string>(
  serverPid: number,
  times: number,
  runs: Readonly<Partial<Record<K, Run>>>,
): Promise<Partial<Record<K, KindFigures>>> {
  const kinds = (Object.keys(runs) as K[]).filter((k) => runs[k] !== undefined);
  const ms = new Map<K, number[]>(kinds.map((k) => [k, []]));
  const peaks = new Map<K, number | undefined>();
  for (let i = 0; i < times; i++) {
    for (const kind of kinds) {
      settleDisk();
      resetPeakRss(serverPid);
      ms.get(kind)!.push(await runs[kind]!(i));
      const peak = peakRss(serverPid);
      const before = peaks.get(kind);
      peaks.set(kind, peak === undefined ? before : Math.max(before ?? 0, peak));
    }
  }
  const out: Partial<Record<K, KindFigures>> = {};
  for (const kind of kinds) out[kind] = { runsMs: ms.get(kind)!, peakRss: peaks.get(kind) };
  return out;
}
