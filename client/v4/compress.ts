/**
 * Compression before encryption (docs/protocol-v4.md §5.8): with --compress each chunk is
 * deflated and sent as DATA_DEFLATE when that makes it smaller, else sent as it is, so data
 * that does not shrink (already compressed, encrypted, random) costs only the attempt. Off by
 * default: the sizes of compressed records leak how attacker-chosen and secret bytes compress
 * together (CRIME, BREACH).
 */
import { deflateRawSync } from 'node:zlib';
import { RequestCode } from '../../protocol/v4';
import type { V4Link } from './link';

/** Per-upload choices beyond the file itself. */
export interface UploadOptions {
  /** Deflate chunks that shrink (--compress). */
  readonly compress?: boolean;
  /** FileFlag bits for UPLOAD_BEGIN_FLAGS (E2E); 0 or absent sends a plain UPLOAD_BEGIN. */
  readonly flags?: number;
}

/** Sends one chunk, deflated when asked and smaller; returns whether it went deflated. */
export async function sendChunk(
  link: V4Link,
  chunk: Buffer,
  options: UploadOptions,
): Promise<boolean> {
  if (options.compress === true) {
    const deflated = deflateRawSync(chunk);
    if (deflated.length < chunk.length) {
      await link.send({ code: RequestCode.UPLOAD_DATA_DEFLATE, data: deflated });
      link.dataBytesSent += deflated.length;
      return true;
    }
  }
  await link.sendData(chunk);
  return false;
}
