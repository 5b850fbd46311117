/** Timed runs for the benchmark. */
import { settleDisk } from './disk';

/** Times `times` runs of `run`, each after a `sync` so none pays for another's writeback. */
export async function timed(times: number, run: (i: number) => Promise<number>): Promise<number[]> {
  const all: number[] = [];
  for (let i = 0; i < times; i++) {
    settleDisk();
    all.push(await run(i));
  }
  return all;
}
