/**
 * The uploads of one v4 session (docs/protocol-v4.md §5.4, §5.10). A file that fits one chunk
 * goes pipelined: UPLOAD_BEGIN_FLAGS with PIPELINED, its DATA and UPLOAD_END are sent without
 * waiting, and its answers are read later, strictly in request order, by one chain of reads per
 * session; up to PIPELINE_WINDOW such uploads are in flight (upload-gate.ts). A larger file
 * goes plain (uploadFile: its resume is worth the round trip), alone on the wire. The frames of
 * one upload are never interleaved with another's.
 *
 * The first pipelined upload of a session is a probe: its data waits for its UPLOAD_OFFSET,
 * since a server that does not know PIPELINED answers BAD_MESSAGE; then that file and every
 * later one go plain, one at a time.
 *
 * Whatever leaves the answers out of step with the requests (the connection lost, an answer
 * late or of the wrong kind, a send that failed, a fatal ERROR) breaks the session: the upload
 * it happened to fails with the cause, and every other one in flight or still to come fails too.
 */
import { createHash } from 'node:crypto';
import { assertNever } from '../../protocol/errors';
import {
  RequestCode,
  ResponseCode,
  UploadFlag,
  WireErrorCode,
  wireErrorName,
  type ErrorMessage,
  type Response,
  type Stored,
} from '../../protocol/v4';
import { ClientErrorCode, clientError, toClientError } from '../errors';
import { sendChunk, type UploadOptions } from './compress';
import { expectFailure, serverRefusal } from './errors';
import type { V4Link } from './link';
import type { V4Plan } from './plan';
import {
  readHeld,
  storedResult,
  uploadFile,
  type HeldFile,
  type V4UploadEvents,
  type V4UploadResult,
} from './upload';
import { UploadGate } from './upload-gate';

/** Pipelined uploads in flight on one session at most (docs/protocol-v4.md §5.10). */
export const PIPELINE_WINDOW = 8;

/** The answers to one pipelined upload. */
type Answers =
  | { readonly kind: 'stored'; readonly stored: Stored }
  /** An ERROR to its UPLOAD_BEGIN (`atBegin`: nothing else is answered) or to the rest. */
  | { readonly kind: 'refused'; readonly atBegin: boolean; readonly error: ErrorMessage };

/** What sending the DATA and UPLOAD_END of a pipelined upload gave. */
interface Sent {
  readonly ours: Buffer;
  readonly bytesSent: number;
}

/** A place in the order of sends: `ready` once every upload before it sent its frames. */
interface SendTurn {
  readonly ready: Promise<void>;
  release(): void;
}

const what = (plan: V4Plan): string => `the upload of ${plan.fileName}`;

export class UploadPipeline {
  private readonly gate = new UploadGate(PIPELINE_WINDOW);
  /** Settles once the last upload that took a send turn has sent its frames. */
  private sendTail: Promise<void> = Promise.resolve();
  /** Settles once the last upload that took a read turn has its answers. */
  private readTail: Promise<unknown> = Promise.resolve();
  /** Why the session can carry no more uploads. */
  private broken: Error | undefined;

  constructor(
    private readonly link: V4Link,
    private readonly chunkSize: number,
    private readonly events: V4UploadEvents,
  ) {}

  /** Whether a file of `size` bytes goes pipelined, as far as the session knows yet. */
  pipelines(size: number): boolean {
    return size <= this.chunkSize && this.gate.support !== 'no';
  }

  async upload(plan: V4Plan, options: UploadOptions): Promise<V4UploadResult> {
    const pass = await this.gate.enter(plan.size <= this.chunkSize ? plan.fileName : undefined);
    try {
      if (this.broken) throw this.broken;
      switch (pass) {
        case 'plain':
          return await uploadFile(this.link, plan, this.chunkSize, this.events, options);
        case 'probe':
          return await this.probe(plan, options);
        case 'pipelined':
          return await this.pipelined(plan, options);
        default:
          return assertNever(pass, 'upload pass');
      }
    } finally {
      this.gate.leave(pass, plan.fileName);
    }
  }

  private async pipelined(plan: V4Plan, options: UploadOptions): Promise<V4UploadResult> {
    const started = Date.now();
    const turn = this.takeSendTurn();
    let held: HeldFile;
    try {
      held = readHeld(plan);
      await turn.ready;
      if (this.broken) throw this.broken;
    } catch (err) {
      turn.release();
      throw err;
    }
    // Taken before the first frame goes out, so the reads keep the order of the sends.
    const answers = this.readAnswers(plan);
    answers.catch(() => undefined);
    let sent: Sent;
    try {
      await this.sendBegin(plan, held, options);
      sent = await this.sendBody(plan, held, options);
    } catch (err) {
      throw this.breakWith(err);
    } finally {
      turn.release();
    }
    return this.result(plan, await answers, sent, started);
  }

  private async probe(plan: V4Plan, options: UploadOptions): Promise<V4UploadResult> {
    const started = Date.now();
    const turn = this.takeSendTurn();
    let sent: Sent | undefined;
    let answers: Answers;
    try {
      const held = readHeld(plan);
      await turn.ready;
      if (this.broken) throw this.broken;
      const answered = this.readAnswers(plan, async () => {
        this.gate.probed(true);
        sent = await this.sendBody(plan, held, options);
        turn.release();
      });
      answered.catch(() => undefined);
      try {
        await this.sendBegin(plan, held, options);
        answers = await answered;
      } catch (err) {
        throw this.breakWith(err);
      }
    } finally {
      turn.release();
    }
    if (answers.kind === 'refused' && answers.atBegin) {
      if (answers.error.error !== WireErrorCode.BAD_MESSAGE) {
        this.gate.probed(undefined);
      } else {
        // Nothing but its UPLOAD_BEGIN went out: the server has no data of it to drop.
        this.gate.probed(false);
        const events: V4UploadEvents = {
          uploadProgress: (p, bytes) => this.events.uploadProgress?.(p, bytes),
        };
        return uploadFile(this.link, plan, this.chunkSize, events, options);
      }
    }
    return this.result(plan, answers, sent, started);
  }

  private takeSendTurn(): SendTurn {
    let release: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (release = resolve));
    const ready = this.sendTail;
    this.sendTail = ready.then(() => done);
    return { ready, release };
  }

  private async sendBegin(plan: V4Plan, held: HeldFile, options: UploadOptions): Promise<void> {
    this.events.uploadStarted?.(plan, 1);
    await this.link.send({
      code: RequestCode.UPLOAD_BEGIN_FLAGS,
      fileName: plan.fileName,
      size: plan.size,
      check: held.check,
      flags: (options.flags ?? 0) | UploadFlag.PIPELINED,
    });
  }

  /** The whole file from byte 0 (one chunk at most) and UPLOAD_END. */
  private async sendBody(plan: V4Plan, held: HeldFile, options: UploadOptions): Promise<Sent> {
    const before = this.link.dataBytesSent;
    if (held.bytes.length > 0) {
      await sendChunk(this.link, held.bytes, options);
      this.events.uploadProgress?.(plan, held.bytes.length);
    }
    const ours = createHash('sha256').update(held.bytes).digest();
    await this.link.send({ code: RequestCode.UPLOAD_END, sha256: ours });
    return { ours, bytesSent: this.link.dataBytesSent - before };
  }

  /**
   * Queues the reading of one upload's answers behind those of the uploads sent before it.
   * `between` runs after its UPLOAD_OFFSET, before its second answer is read (the probe's data).
   */
  private readAnswers(plan: V4Plan, between?: () => Promise<void>): Promise<Answers> {
    const turn = this.readTail.then(() => this.answersOf(plan, between));
    this.readTail = turn.catch(() => undefined);
    return turn;
  }

  private async answersOf(plan: V4Plan, between?: () => Promise<void>): Promise<Answers> {
    const first = await this.receive(plan);
    if (first.code === ResponseCode.ERROR) return this.refused(first, true);
    if (first.code !== ResponseCode.UPLOAD_OFFSET) {
      throw this.breakWith(expectFailure(this.link.remote, what(plan), first));
    }
    if (first.offset !== 0) {
      throw this.breakWith(
        clientError(
          ClientErrorCode.PROTOCOL_VIOLATION,
          `${this.link.remote} answered the pipelined ${what(plan)} with offset ` +
            `${first.offset}; a pipelined upload starts at 0`,
        ),
      );
    }
    await between?.();
    const second = await this.receive(plan);
    if (second.code === ResponseCode.ERROR) return this.refused(second, false);
    if (second.code !== ResponseCode.STORED) {
      throw this.breakWith(expectFailure(this.link.remote, what(plan), second));
    }
    return { kind: 'stored', stored: second };
  }

  private async receive(plan: V4Plan): Promise<Response> {
    if (this.broken) throw this.broken;
    try {
      return await this.link.receive(what(plan));
    } catch (err) {
      throw this.breakWith(err);
    }
  }

  private refused(error: ErrorMessage, atBegin: boolean): Answers {
    if (error.fatal) {
      // The server closes after it: the uploads sent after this one get no answer.
      this.breakWith(
        clientError(
          ClientErrorCode.CONNECTION_LOST,
          `connection to ${this.link.remote} closed by the server after ` +
            `${wireErrorName(error.error)}: ${error.text}`,
          { hint: 'run again: the files not reported as sent are sent again' },
        ),
      );
    }
    return { kind: 'refused', atBegin, error };
  }

  private result(
    plan: V4Plan,
    answers: Answers,
    sent: Sent | undefined,
    started: number,
  ): V4UploadResult {
    if (answers.kind === 'refused') {
      throw serverRefusal(this.link.remote, what(plan), answers.error);
    }
    return storedResult({
      plan,
      stored: answers.stored,
      ours: sent?.ours,
      started,
      resumedFrom: 0,
      bytesSent: sent?.bytesSent ?? 0,
    });
  }

  /** Marks the session broken by `err` (the first cause wins) and closes it; returns the cause. */
  private breakWith(err: unknown): Error {
    if (this.broken === undefined) {
      this.broken = toClientError(err);
      this.link.close();
    }
    return this.broken;
  }
}
