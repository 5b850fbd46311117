/**
 * The queue both protocols send files through (client/session/worker-pool.ts), with lanes whose
 * items finish when a test says so: results in the items' order, refused extra lanes dropped,
 * a failure ending the run as one item after the other would.
 */
import { getEventListeners, getMaxListeners } from 'node:events';
import { ClientErrorCode, clientError } from '../../client/errors';
import { runPool } from '../../client/session/worker-pool';
import { Lanes, refused } from './pool-lanes';

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
});
