/**
 * One-at-a-time sections per key, shared by all sessions of a server. A client may hold several
 * connections, and two of them may touch the same stored file at once (an upload committing
 * while a 1031 removes, two uploads of one name): the rename on disk and the row in the
 * database must change together, or the database ends up naming a file that is not there.
 */
export class KeyedLock {
  /** Per key, the promise the next section waits for; deleted when the last one ends. */
  private readonly tails = new Map<string, Promise<void>>();

  /** Runs `work` once every section started earlier for `key` has finished. */
  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key);
    let release!: () => void;
    const done = new Promise<void>((resolve) => (release = resolve));
    const tail = previous === undefined ? done : previous.then(() => done);
    this.tails.set(key, tail);
    try {
      if (previous !== undefined) await previous;
      return await work();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** Keys with a section running or waiting (bounded by the uploads in progress). */
  get size(): number {
    return this.tails.size;
  }
}
