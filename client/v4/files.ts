/**
 * Listing and deleting this client's files over version 4 (docs/protocol-v4.md §5.6, §5.7).
 */
import { FileFlag, RequestCode, ResponseCode } from '../../protocol/v4';
import { plaintextSize } from '../../shared/e2e-stream';
import { filePathProblem } from '../../shared/validators';
import { ClientErrorCode, clientError } from '../errors';
import { expect } from './errors';
import type { V4Link } from './link';

export interface ListedFile {
  readonly name: string;
  /** Bytes stored: for an e2e file, its ciphertext. */
  readonly size: number;
  /** An e2e file's plaintext bytes. */
  readonly plainSize?: number;
  /** Hex; undefined when the server does not know it (a file stored over version 3). */
  readonly sha256: string | undefined;
  /** ISO 8601. */
  readonly storedAt: string;
  readonly verified: boolean;
  readonly e2e: boolean;
  readonly compressed: boolean;
}

/** Every file of this client, newest first, fetched page by page. */
export async function listFiles(link: V4Link): Promise<ListedFile[]> {
  const out: ListedFile[] = [];
  for (;;) {
    await link.send({ code: RequestCode.LIST, start: out.length });
    const page = expect(link.remote, 'LIST', await link.receive('LIST'), ResponseCode.FILE_LIST);
    for (const file of page.files) {
      const e2e = (file.flags & FileFlag.E2E) !== 0;
      const plainSize = e2e ? plaintextSize(file.size) : undefined;
      out.push({
        name: file.fileName,
        size: file.size,
        ...(plainSize === undefined ? {} : { plainSize }),
        sha256: file.sha256.every((b) => b === 0) ? undefined : file.sha256.toString('hex'),
        storedAt: new Date(file.storedAt).toISOString(),
        verified: (file.flags & FileFlag.VERIFIED) !== 0,
        e2e,
        compressed: (file.flags & FileFlag.COMPRESSED) !== 0,
      });
    }
    // A page shorter than asked, or files deleted meanwhile, ends the walk.
    if (page.files.length === 0 || out.length >= page.total) return out;
  }
}

export async function deleteFile(link: V4Link, fileName: string): Promise<number> {
  await link.send({ code: RequestCode.DELETE, fileName });
  const what = `the deletion of ${fileName}`;
  const answer = await link.receive(what);
  return expect(link.remote, what, answer, ResponseCode.DELETED).size;
}

/** A name the protocol cannot carry is refused before connecting (docs/protocol-v4.md §3.2). */
export function checkRemoteName(name: string): string {
  const problem = filePathProblem(name);
  if (problem !== undefined) {
    throw clientError(
      ClientErrorCode.BAD_FILE_NAME,
      `"${name}" is not a file name the server stores (${problem}; names are plain names, ` +
        'or folders and a name joined by /, as `sft-client list` shows them)',
    );
  }
  return name;
}
