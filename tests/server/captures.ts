/** Loading the real-client captures of tests/fixtures/real-clients (see its README). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { privateKeyFromBase64 } from './harness';

export const CAPTURES_DIR = join(__dirname, '..', 'fixtures', 'real-clients');

export interface ExpectedResponse {
  readonly after_request: number;
  readonly code: number;
  readonly payload_size: number;
  readonly client_id?: string;
  readonly bytes_hex?: string;
  readonly content_size?: number;
  readonly file_name?: string;
  readonly cksum?: number;
}

export interface CaptureRequest {
  readonly index: number;
  readonly offset: number;
  readonly code: number;
  readonly payload_size: number;
}

export interface Capture {
  readonly name: string;
  readonly manifest: {
    readonly inject: {
      readonly client_ids_in_issue_order: string[];
      readonly aes_keys_in_issue_order: string[];
    };
    readonly input_file: { readonly name: string; readonly size: number; readonly cksum: number };
    readonly expected_stored_file: {
      readonly owner_client_id: string;
      readonly file_name: string;
      readonly verified: boolean;
    };
    readonly replay_prefix?: { readonly c2s_end_offset: number; readonly expected_codes: number[] };
    readonly connections: Array<{
      readonly c2s: string;
      readonly client_id: string;
      readonly aes_key: string;
      readonly requests: CaptureRequest[];
      readonly expected: ExpectedResponse[];
    }>;
  };
  readonly c2s: Buffer[];
  readonly input: Buffer;
  readonly privateKey: KeyObject;
}

export const CAPTURE_NAMES = [
  'client-a-register-upload',
  'client-a-reconnect-upload',
  'client-a-empty-last-packet',
  'client-b-register-upload',
] as const;

export function loadCapture(name: string): Capture {
  const dir = join(CAPTURES_DIR, name);
  const manifest = JSON.parse(
    readFileSync(join(dir, 'manifest.json'), 'utf8'),
  ) as Capture['manifest'];
  return {
    name,
    manifest,
    c2s: manifest.connections.map((c) => readFileSync(join(dir, c.c2s))),
    input: readFileSync(join(dir, manifest.input_file.name)),
    privateKey: privateKeyFromBase64(readFileSync(join(dir, 'priv.key'), 'utf8')),
  };
}

export const hex = (s: string): Buffer => Buffer.from(s, 'hex');
