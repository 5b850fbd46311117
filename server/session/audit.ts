/**
 * Audit rows and log lines of requests. A failing audit write is logged and never fails the
 * request; state changes pass their row to the store so both commit together.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { RequestCode } from '../../protocol/v3/constants';
import { assertNever } from '../../protocol/errors';
import type { Request, RequestHeader, Response } from '../../protocol/v3/messages';
import { clientIdToHex } from '../../shared/client-id';
import type { AuditEntry, AuditOutcome, FileCatalog } from '../storage/types';
import type { Sources } from './sources';

export class Auditor {
  constructor(
    private readonly store: Pick<FileCatalog, 'audit'>,
    private readonly sources: Sources,
    private readonly remoteAddress: string,
    private readonly log: Logger,
  ) {}

  /** Writes an audit row now. */
  async write(
    code: number,
    clientId: Buffer | null,
    req: Request | undefined,
    outcome: AuditOutcome,
    reason?: string,
  ): Promise<void> {
    const entry = this.entry(code, clientId, req, outcome, reason);
    try {
      await this.store.audit(entry);
    } catch (err) {
      this.log.error({ err, outcome }, 'could not write the audit trail');
    }
  }

  /** The audit row of a request, for a store call that commits it with its change. */
  entry(
    code: number,
    clientId: Buffer | null,
    req: Request | undefined,
    outcome: AuditOutcome,
    reason?: string,
  ): AuditEntry {
    const names = requestNames(req);
    const detail = [names.file, reason].filter((s) => s !== undefined).join(': ');
    return {
      time: this.sources.now(),
      remoteAddress: this.remoteAddress,
      clientId,
      name: names.name ?? null,
      requestCode: code,
      outcome,
      ...(detail ? { detail } : {}),
    };
  }

  logOutcome(
    req: Request,
    header: RequestHeader,
    response: Response | undefined,
    started: number,
  ): void {
    const client =
      response !== undefined && 'clientId' in response ? response.clientId : header.clientId;
    this.log.info(
      {
        client: clientIdToHex(client),
        code: req.code,
        ...requestNames(req),
        result: response?.code ?? 'none',
        ms: elapsed(started),
      },
      'request',
    );
  }
}

export function requestNames(req: Request | undefined): { name?: string; file?: string } {
  if (req === undefined) return {};
  switch (req.code) {
    case RequestCode.REGISTER:
    case RequestCode.SEND_PUBLIC_KEY:
    case RequestCode.RECONNECT:
      return { name: req.name };
    case RequestCode.SEND_FILE:
    case RequestCode.CHECKSUM_OK:
    case RequestCode.CHECKSUM_RETRY:
    case RequestCode.CHECKSUM_ABORT:
      return { file: req.fileName };
    default:
      return assertNever(req, 'request');
  }
}

export function elapsed(since: number): number {
  return Math.round((performance.now() - since) * 100) / 100;
}

export function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
