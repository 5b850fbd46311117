/** Lanes for the worker-pool tests whose items finish (or fail) when a test says so. */
import { ClientErrorCode, clientError } from '../../client/errors';
import { runPool, type Lane } from '../../client/session/worker-pool';

/** An item's work, finished (or failed) when the test decides. */
export interface Pending {
  readonly item: string;
  readonly lane: string;
  finish(): void;
  fail(err: Error): void;
}

export class Lanes {
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

export const refused = () =>
  clientError(ClientErrorCode.CONNECT_REFUSED, 'connection to the server refused');
