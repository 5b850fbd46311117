/**
 * Worker-pool lanes with a window (client/session/worker-pool.ts): several items in flight per
 * lane (a pipelining v4 connection), results still in the items' order, at most the window per
 * lane, solo items alone, and a failure ending the run as one item after the other would.
 */
import { ClientErrorCode, clientError } from '../../client/errors';
import { runPool } from '../../client/session/worker-pool';
import { Lanes } from './pool-lanes';

describe('lanes with a window', () => {
  const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  const items = (count: number): string[] => Array.from({ length: count }, (_, i) => `f${i}`);

  it('keeps up to the window in flight on one lane and hands results out in order', async () => {
    const lanes = new Lanes();
    const reported: string[] = [];
    const run = runPool({
      items: items(7),
      first: lanes.lane('first', { window: 3 }),
      lanes: 1,
      openExtra: async () => {
        throw new Error('no extra lanes in this test');
      },
      onResult: (r) => reported.push(r.split('@')[0] as string),
    });
    await tick();
    expect(lanes.started).toEqual(['f0', 'f1', 'f2']);
    // Done last to first: nothing is handed out before f0, and each finish starts one more.
    (await lanes.take('f2')).finish();
    (await lanes.take('f1')).finish();
    await tick();
    expect(reported).toEqual([]);
    expect(lanes.started).toEqual(['f0', 'f1', 'f2', 'f3', 'f4']);
    (await lanes.take('f0')).finish();
    for (const item of ['f4', 'f3', 'f6', 'f5']) (await lanes.take(item)).finish();
    const outcome = await run;
    expect(outcome.results.map((r) => r.split('@')[0])).toEqual(items(7));
    expect(reported).toEqual(items(7));
    expect(lanes.flights.get('first')?.most).toBe(3);
    expect(lanes.closed).toEqual(['first']);
  });

  it('never has more than its window in flight on any lane, and spreads items over lanes', async () => {
    const lanes = new Lanes();
    let extra = 0;
    const all = items(20);
    const run = runPool({
      items: all,
      first: lanes.lane('first', { window: 4 }),
      lanes: 3,
      openExtra: async () => lanes.lane(`extra${++extra}`, { window: 4 }),
    });
    // Finish in a shuffled order, a few at a time, as a server answering out of step would.
    for (let round = 0; lanes.started.length < all.length || lanes.pending.length > 0; round++) {
      await tick();
      const now = lanes.pending.splice(0);
      for (const [i, p] of now.entries()) if ((i + round) % 2 === 0) p.finish();
      lanes.pending.push(...now.filter((_, i) => (i + round) % 2 !== 0));
    }
    const outcome = await run;
    expect(outcome.results.map((r) => r.split('@')[0])).toEqual(all);
    expect(outcome.used).toBe(3);
    for (const [, flight] of lanes.flights) expect(flight.most).toBeLessThanOrEqual(4);
    expect([...lanes.flights.values()].map((f) => f.most)).toContain(4);
    const perLane = new Map<string, number>();
    for (const r of outcome.results) {
      const lane = r.split('@')[1] as string;
      perLane.set(lane, (perLane.get(lane) ?? 0) + 1);
    }
    expect(perLane.size).toBe(3);
  });

  it('a failure with several items in flight on the lane: earlier ones finish, later ones are abandoned, nothing new starts', async () => {
    const lanes = new Lanes();
    const reported: string[] = [];
    const run = runPool({
      items: items(8),
      first: lanes.lane('first', { window: 4 }),
      lanes: 1,
      openExtra: async () => {
        throw new Error('no extra lanes in this test');
      },
      onResult: (r) => reported.push(r.split('@')[0] as string),
    });
    run.catch(() => undefined);
    const [f0, f1, f2, f3] = [
      await lanes.take('f0'),
      await lanes.take('f1'),
      await lanes.take('f2'),
      await lanes.take('f3'),
    ];
    const broken = clientError(ClientErrorCode.REJECTED, 'the server refused f2');
    f2.fail(broken);
    await tick();
    // f0 and f1 (before f2) are still on the lane: it stays open, and takes nothing more.
    expect(lanes.closed).toEqual([]);
    expect(lanes.started).toEqual(['f0', 'f1', 'f2', 'f3']);
    f1.finish();
    await tick();
    expect(reported).toEqual([]);
    expect(lanes.closed).toEqual([]);
    f0.finish();
    await expect(run).rejects.toBe(broken);
    // Once only f3 (after f2) was left, the lane was closed.
    expect(lanes.closed).toEqual(['first']);
    expect(reported).toEqual(['f0', 'f1']);
    expect(lanes.started).toEqual(['f0', 'f1', 'f2', 'f3']);
    f3.fail(new Error('closed under it'));
  });

  it('the first failure in item order is the one the run ends with, whichever fails first', async () => {
    const lanes = new Lanes();
    const run = runPool({
      items: items(4),
      first: lanes.lane('first', { window: 4 }),
      lanes: 1,
      openExtra: async () => {
        throw new Error('no extra lanes in this test');
      },
    });
    run.catch(() => undefined);
    const pending = [];
    for (const item of items(4)) pending.push(await lanes.take(item));
    const later = new Error('f3 failed first');
    const earlier = new Error('f1 failed second');
    pending[3]?.fail(later);
    await tick();
    pending[1]?.fail(earlier);
    pending[0]?.finish();
    await expect(run).rejects.toBe(earlier);
  });

  it('starts a solo item only on an idle lane and nothing beside it', async () => {
    const lanes = new Lanes();
    const big = (item: string): boolean => item.startsWith('big');
    const run = runPool({
      items: ['s0', 's1', 'big2', 's3', 's4'],
      first: lanes.lane('first', { window: 8, solo: big }),
      lanes: 1,
      openExtra: async () => {
        throw new Error('no extra lanes in this test');
      },
    });
    await tick();
    expect(lanes.started).toEqual(['s0', 's1']);
    (await lanes.take('s1')).finish();
    await tick();
    expect(lanes.started).toEqual(['s0', 's1']);
    (await lanes.take('s0')).finish();
    await tick();
    expect(lanes.started).toEqual(['s0', 's1', 'big2']);
    expect(lanes.flights.get('first')?.now).toBe(1);
    (await lanes.take('big2')).finish();
    await tick();
    expect(lanes.started).toEqual(['s0', 's1', 'big2', 's3', 's4']);
    (await lanes.take('s3')).finish();
    (await lanes.take('s4')).finish();
    expect((await run).results).toHaveLength(5);
  });

  it('leaves an item for each lane still opening, and an idle lane never waits for them', async () => {
    const lanes = new Lanes();
    let release!: () => void;
    const late = new Promise<void>((resolve) => (release = resolve));
    let extra = 0;
    const run = runPool({
      items: items(6),
      first: lanes.lane('first', { window: 8 }),
      lanes: 4,
      openExtra: async () => {
        await late;
        return lanes.lane(`extra${++extra}`, { window: 8 });
      },
    });
    await tick();
    // Three extra lanes opening: three items wait for them.
    expect(lanes.started).toEqual(['f0', 'f1', 'f2']);
    (await lanes.take('f0')).finish();
    await tick();
    expect(lanes.started).toEqual(['f0', 'f1', 'f2']);
    release();
    for (const item of ['f1', 'f2', 'f3', 'f4', 'f5']) (await lanes.take(item)).finish();
    const outcome = await run;
    expect(outcome.used).toBe(4);
    expect(
      outcome.results
        .slice(3)
        .map((r) => r.split('@')[1])
        .sort(),
    ).toEqual(['extra1', 'extra2', 'extra3']);

    // Extra lanes that never open: the first one, once idle, takes the rest one by one.
    const alone = new Lanes();
    const never = runPool({
      items: items(4),
      first: alone.lane('first', { window: 8 }),
      lanes: 3,
      openExtra: () => new Promise<never>(() => undefined),
    });
    for (const item of items(4)) (await alone.take(item)).finish();
    expect((await never).results).toHaveLength(4);
  });
});
