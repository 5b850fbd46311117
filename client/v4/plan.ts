/**
 * Upload plans for both protocols. The v3 checks run first and unchanged (readable files,
 * names, duplicates); only a file too large for v3 (past 65535 packets, about 4 GiB) is let
 * through when v4 may carry it (64-bit sizes, docs/protocol-v4.md §4.4), and refused as before
 * if the run ends up on v3.
 */
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { FileArgument } from '../config/transfer-info';
import { ClientErrorCode, isClientError } from '../errors';
import { prepareUploads, type UploadPlan } from '../session/upload-plan';
import type { ProtocolChoice } from './protocol-choice';

/** What a v4 upload needs of a file. */
export interface V4Plan {
  readonly path: string;
  readonly fileName: string;
  readonly size: number;
}

export interface PreparedUploads {
  readonly v4: readonly V4Plan[];
  /** The v3 plans; throws the v3 refusal when a file is too large for v3. */
  v3(): readonly UploadPlan[];
}

export async function prepareUploadPlans(
  protocol: ProtocolChoice,
  files: readonly FileArgument[],
): Promise<PreparedUploads> {
  try {
    const plans = prepareUploads(files);
    return { v4: plans, v3: () => plans };
  } catch (err) {
    if (protocol === 'v3' || !isClientError(err) || err.code !== ClientErrorCode.FILE_TOO_LARGE) {
      throw err;
    }
    const v4 = await Promise.all(
      files.map(async (file) => ({
        path: file.path,
        fileName: basename(file.path),
        size: (await stat(file.path)).size,
      })),
    );
    return {
      v4,
      v3: () => {
        throw err;
      },
    };
  }
}
