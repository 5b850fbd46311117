/**
 * Which uploads of one v4 session may be on the wire at once (docs/protocol-v4.md §5.10): up to
 * a window of pipelined ones, never two of one file name; a plain upload (a file larger than a
 * chunk, or any file once the server proved not to know PIPELINED) only alone. The first
 * pipelined upload is a probe: nothing else starts until its UPLOAD_OFFSET or ERROR says
 * whether the server pipelines. Uploads are let in first come, first served, so the wire keeps
 * the order the session was asked in.
 */

/** How an upload goes on the wire. */
export type Pass = 'plain' | 'probe' | 'pipelined';

/** What the session knows of the server's support for PIPELINED. */
export type Support = 'unknown' | 'probing' | 'yes' | 'no';

interface Waiter {
  /** Undefined for a file that goes plain whatever the server supports (larger than a chunk). */
  readonly name: string | undefined;
  readonly admit: (pass: Pass) => void;
}

export class UploadGate {
  private readonly waiting: Waiter[] = [];
  /** File names of the probe and pipelined uploads in flight. */
  private readonly names = new Set<string>();
  private pipelined = 0;
  private plain = false;
  private known: Support = 'unknown';

  constructor(private readonly window: number) {}

  get support(): Support {
    return this.known;
  }

  /**
   * Resolves once the upload may go, with how; `name` undefined for a file that goes plain.
   * Every pass given must be handed back with `leave`.
   */
  enter(name: string | undefined): Promise<Pass> {
    return new Promise((admit) => {
      this.waiting.push({ name, admit });
      this.pump();
    });
  }

  leave(pass: Pass, name: string): void {
    if (pass === 'plain') {
      this.plain = false;
    } else {
      this.pipelined--;
      this.names.delete(name);
      // A probe that ended without an answer proved nothing: the next upload probes again.
      if (pass === 'probe' && this.known === 'probing') this.known = 'unknown';
    }
    this.pump();
  }

  /** The probe's first answer: UPLOAD_OFFSET (true), BAD_MESSAGE (false), another ERROR. */
  probed(supported: boolean | undefined): void {
    this.known = supported === undefined ? 'unknown' : supported ? 'yes' : 'no';
    this.pump();
  }

  private pump(): void {
    for (let head = this.waiting[0]; head !== undefined; head = this.waiting[0]) {
      const pass = this.passFor(head.name);
      if (pass === undefined) return;
      this.waiting.shift();
      if (pass === 'plain') {
        this.plain = true;
      } else {
        this.pipelined++;
        this.names.add(head.name as string);
        if (pass === 'probe') this.known = 'probing';
      }
      head.admit(pass);
    }
  }

  private passFor(name: string | undefined): Pass | undefined {
    if (this.plain) return undefined;
    if (name === undefined || this.known === 'no')
      return this.pipelined === 0 ? 'plain' : undefined;
    if (this.known === 'probing' || this.names.has(name)) return undefined;
    if (this.known === 'unknown') return this.pipelined === 0 ? 'probe' : undefined;
    return this.pipelined < this.window ? 'pipelined' : undefined;
  }
}
