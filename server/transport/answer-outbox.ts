/**
 * The answers of one v4 connection, in request order (docs/protocol-v4.md §5.10): most are
 * sent at once; a pipelined UPLOAD_END's answer settles later, and every answer after it waits
 * for it. Knows nothing of sockets: `send` writes one answer.
 */
import { ResponseCode, type Response } from '../../protocol/v4';

export class AnswerOutbox {
  /** Later answers not sent yet. */
  private owed = 0;
  /** Answers waiting in the chain, not sent yet. */
  private queued = 0;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly send: (response: Response, fatal: boolean) => void,
    /** A later answer that failed to settle: the connection cannot go on. */
    private readonly broken: (err: unknown) => void,
  ) {}

  /** True while a later answer is still to be sent. */
  get owing(): boolean {
    return this.owed > 0;
  }

  /** Sends `response` after every answer before it: now, unless some wait. */
  answer(response: Response): void {
    if (this.queued === 0) this.send(response, isFatal(response));
    else this.enqueue(Promise.resolve(response), false);
  }

  /** An answer that settles later; the ones after it wait for it. */
  answerLater(later: Promise<Response>): void {
    this.owed++;
    this.enqueue(later, true);
  }

  private enqueue(answer: Promise<Response>, owed: boolean): void {
    this.queued++;
    this.chain = this.chain
      .then(() => answer)
      .then((response) => this.send(response, isFatal(response)))
      .catch((err: unknown) => this.broken(err))
      .finally(() => {
        this.queued--;
        if (owed) this.owed--;
      });
  }
}

function isFatal(response: Response): boolean {
  return response.code === ResponseCode.ERROR && response.fatal;
}
