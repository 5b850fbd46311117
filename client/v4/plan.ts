/**
 * Upload plans for both protocols, checked before anything is connected. Over version 4 a file
 * found below a directory argument keeps its folders in its name (`-r photos` →
 * `photos/2024/a.jpg`, docs/protocol-v4.md §3.2); over v3 every file is named by its base name,
 * so files of one base name clash. The v3 plans are made first for `--protocol v3`, and
 * otherwise only when the run falls back to v3, still before any file byte is sent.
 */
import type { FileArgument } from '../config/transfer-info';
import {
  planV4Upload,
  prepareUploads,
  refuseClashes,
  type UploadPlan,
} from '../session/upload-plan';
import type { ProtocolChoice } from './protocol-choice';

/** What a v4 upload needs of a file. */
export interface V4Plan {
  readonly path: string;
  readonly fileName: string;
  readonly size: number;
}

export interface PreparedUploads {
  readonly v4: readonly V4Plan[];
  /** The v3 plans; throws the v3 refusal (a file too large for v3, a clash of base names). */
  v3(): readonly UploadPlan[];
}

export function prepareUploadPlans(
  protocol: ProtocolChoice,
  files: readonly FileArgument[],
): PreparedUploads {
  if (protocol === 'v3') {
    const plans = prepareUploads(files);
    return { v4: plans, v3: () => plans };
  }
  const v4 = files.map(planV4Upload);
  refuseClashes(v4);
  return { v4, v3: () => prepareUploads(files) };
}
