/**
 * The queue both protocols send files through (client/session/worker-pool.ts), with lanes whose
 * items finish when a test says so: results in the items' order, refused extra lanes dropped,
 * a failure ending the run as one item after the other would.
 */
import { getEventListeners, getMaxListeners } from 'node:events';
import { ClientErrorCode, clientError } from '../../client/errors';
import { runPool, type Lane } from '../../client/session/worker-pool';

/** An item's work, finished (or failed) when the test decides. */
interface Pending {
  readonly item: string;
  readonly lane: string;
  finish(): void;
  fail(err: Error): void;
}

class Lanes {
  readonly pending: Pending[] = [];
  readonly closed: string[] = [];
  readonly opened: string[] = [];
  /** Per lane: items in flight now, and the most it ever had. */
  readonly flights = new Map<string, { now: number; most: number }>();
  /** Items in the order lanes were given them. */
  readonly started: string[] = [];

  lane(
    name: string,
    shape: { window?: number; solo?: (item: string) => boolean } = {},
  ): Lane<string, string> {
    this.opened.push(name);
    const flight = { now: 0, most: 0 };
    this.flights.set(name, flight);
    return {
      ...shape,
      run: (item) => {
        this.started.push(item);
        flight.most = Math.max(flight.most, ++flight.now);
        return new Promise<string>((resolve, reject) => {
          this.pending.push({
            item,
            lane: name,
            finish: () => {
              flight.now--;
              resolve(`${item}@${name}`);
            },
            fail: (err) => {
              flight.now--;
              reject(err);
            },
          });
        });
      },
      close: () => {
        if (!this.closed.includes(name)) this.closed.push(name);
      },
    };
  }

  /** A pool over `items` with as many lanes, all of which open; results' items in `reported`. */
  pool(items: readonly string[], reported: string[]) {
    let extra = 0;
    return runPool({
      items,
      first: this.lane('first'),
      lanes: items.length,
      openExtra: async () => this.lane(`extra${++extra}`),
      onResult: (r) => reported.push(r.split('@')[0] as string),
    });
  }

  /** The pending work of `item`, once a lane has taken it. */
  async take(item: string): Promise<Pending> {
    for (let i = 0; i < 50; i++) {
      const at = this.pending.findIndex((p) => p.item === item);
      if (at >= 0) return this.pending.splice(at, 1)[0] as Pending;
      await new Promise((resolve) => setImmediate(resolve));
    }
    throw new Error(`no lane took ${item}`);
  }
}

const refused = () =>
  clientError(ClientErrorCode.CONNECT_REFUSED, 'connection to the server refused');

describe('runPool', () => {
  it('hands results out in the items’ order, whichever lane finishes first', async () => {
    const lanes = new Lanes();
    const reported: string[] = [];
    const run = lanes.pool(['a', 'b', 'c'], reported);
    const [a, b, c] = [await lanes.take('a'), await lanes.take('b'), await lanes.take('c')];
    c.finish();
    b.finish();
    await new Promise((resolve) => setImmediate(resolve));
    expect(reported).toEqual([]);
    a.finish();
    const outcome = await run;
    expect(outcome.results.map((r) => r.split('@')[0])).toEqual(['a', 'b', 'c']);
    expect(reported).toEqual(['a', 'b', 'c']);
    expect(outcome.used).toBe(3);
    expect(outcome.degraded).toBeUndefined();
    expect(lanes.closed.sort()).toEqual(['extra1', 'extra2', 'first']);
  });

  it('opens no more lanes than there are items', async () => {
    const lanes = new Lanes();
    let opens = 0;
    const run = runPool({
      items: ['only'],
      first: lanes.lane('first'),
      lanes: 8,
      openExtra: async () => lanes.lane(`extra${++opens}`),
    });
    (await lanes.take('only')).finish();
    await run;
    expect(opens).toBe(0);
  });

  it('drops refused extra lanes and sends everything over the others, saying so', async () => {
    const lanes = new Lanes();
    let opens = 0;
    const run = runPool({
      items: ['a', 'b', 'c', 'd'],
      first: lanes.lane('first'),
      lanes: 4,
      openExtra: async () => {
        opens++;
        if (opens > 1) throw refused();
        return lanes.lane('extra');
      },
    });
    for (const item of ['a', 'b', 'c', 'd']) (await lanes.take(item)).finish();
    const outcome = await run;
    expect(outcome.results).toHaveLength(4);
    expect(outcome.used).toBe(2);
    expect(outcome.degraded).toEqual({
      asked: 4,
      refused: 2,
      used: 2,
      reason: 'connection to the server refused',
    });
  });

  it('ends the run on a failed item as one after the other would: earlier ones reported, later ones abandoned', async () => {
    const lanes = new Lanes();
    const reported: string[] = [];
    const run = lanes.pool(['a', 'b', 'c'], reported);
    run.catch(() => undefined);
    const [a, b, c] = [await lanes.take('a'), await lanes.take('b'), await lanes.take('c')];
    const broken = clientError(ClientErrorCode.REJECTED, 'the server refused b');
    b.fail(broken);
    await new Promise((resolve) => setImmediate(resolve));
    // The lane on c (after the failed b) is closed at once; a (before it) still runs.
    expect(lanes.closed).toContain(c.lane);
    expect(lanes.closed).not.toContain(a.lane);
    a.finish();
    await expect(run).rejects.toBe(broken);
    expect(reported).toEqual(['a']);
  });

  it('ends the run when an extra lane fails to open for a reason other than a refusal', async () => {
    const lanes = new Lanes();
    const bug = new Error('not a refusal');
    const run = runPool({
      items: ['a', 'b'],
      first: lanes.lane('first'),
      lanes: 2,
      openExtra: async () => {
        throw bug;
      },
    });
    run.catch(() => undefined);
    await expect(run).rejects.toBe(bug);
    expect(lanes.closed).toContain('first');
  });

  it('does not wait for a lane still opening once every item is done, and closes it when it opens', async () => {
    const lanes = new Lanes();
    let release!: () => void;
    let signal: AbortSignal | undefined;
    const late = new Promise<void>((resolve) => (release = resolve));
    const run = runPool({
      items: ['a', 'b'],
      first: lanes.lane('first'),
      lanes: 2,
      openExtra: async (s) => {
        signal = s;
        await late;
        return lanes.lane('late');
      },
    });
    (await lanes.take('a')).finish();
    (await lanes.take('b')).finish();
    const outcome = await run;
    expect(outcome.used).toBe(1);
    expect(signal?.aborted).toBe(true);
    release();
    await new Promise((resolve) => setImmediate(resolve));
    expect(lanes.closed).toContain('late');
  });

  it('opens 16 lanes at once without piling their abort listeners onto one signal', async () => {
    const lanes = new Lanes();
    const items = Array.from({ length: 16 }, (_, i) => `f${i}`);
    /** Per signal handed out: the most abort listeners it carried, and its warning limit. */
    const seen = new Map<AbortSignal, { most: number; limit: number }>();
    let opening = 0;
    let release!: () => void;
    const allOpening = new Promise<void>((resolve) => (release = resolve));
    const run = runPool({
      items,
      first: lanes.lane('first'),
      lanes: 16,
      openExtra: async (signal) => {
        // Each opening connection listens for the abort, as parallel.ts and channel.ts do; past
        // the signal's limit Node prints MaxListenersExceededWarning on the user's terminal.
        const giveUp = (): void => undefined;
        signal.addEventListener('abort', giveUp, { once: true });
        const most = Math.max(
          seen.get(signal)?.most ?? 0,
          getEventListeners(signal, 'abort').length,
        );
        seen.set(signal, { most, limit: getMaxListeners(signal) });
        if (++opening === 15) release();
        await allOpening;
        signal.removeEventListener('abort', giveUp);
        return lanes.lane(`extra${opening}`);
      },
    });
    for (const item of items) (await lanes.take(item)).finish();
    expect((await run).used).toBe(16);
    expect(opening).toBe(15);
    for (const { most, limit } of seen.values()) expect(most).toBeLessThanOrEqual(limit);
  });

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
});
