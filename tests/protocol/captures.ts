/**
 * The real C++ client captures (tests/fixtures/real-clients, see its README) and their manifests,
 * typed as far as the codec and crypto tests read them.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

export const CAPTURES_DIR = path.resolve(__dirname, '..', 'fixtures', 'real-clients');

/** One request as the manifest lists it; snake_case as in the file. */
export interface ManifestRequest {
  readonly index: number;
  readonly offset: number;
  readonly header_client_id: string;
  readonly version: number;
  readonly code: number;
  readonly payload_size: number;
  readonly name?: string;
  readonly public_key_len?: number;
  readonly content_size?: number;
  readonly orig_size?: number;
  readonly packet?: number;
  readonly total?: number;
  readonly file_name?: string;
  readonly chunk_len?: number;
  readonly chunk_offset?: number;
  readonly bytes_beyond_content_size?: number;
}

export interface ManifestExpected {
  readonly after_request: number;
  readonly code: number;
  readonly payload_size: number;
  readonly client_id?: string;
  readonly content_size?: number;
  readonly file_name?: string;
  readonly cksum?: number;
  readonly bytes_hex?: string;
}

export interface PeerResponse {
  readonly offset: number;
  readonly version: number;
  readonly code: number;
  readonly payload_size: number;
  readonly client_id?: string;
  readonly content_size?: number;
  readonly file_name?: string;
  readonly cksum?: number;
  readonly wrapped_key_len?: number;
  readonly undeclared_payload_len?: number;
  readonly undeclared_bytes_after?: number;
  readonly undeclared_bytes_hex_prefix?: string;
}

export interface ManifestConnection {
  readonly c2s: string;
  readonly c2s_size: number;
  readonly s2c: string;
  readonly s2c_size: number;
  readonly client_id: string;
  readonly aes_key: string;
  readonly requests: readonly ManifestRequest[];
  readonly expected: readonly ManifestExpected[];
  readonly peer_server_responses: readonly PeerResponse[];
  readonly public_key_der_hex?: string;
  readonly public_key_exponent?: number;
}

export interface Manifest {
  readonly name: string;
  readonly client: string;
  readonly input_file: {
    readonly name: string;
    readonly size: number;
    readonly cksum: number;
    readonly sha256: string;
  };
  readonly connections: readonly ManifestConnection[];
}

export interface Capture {
  readonly name: string;
  readonly dir: string;
  readonly manifest: Manifest;
  readonly connection: ManifestConnection;
  readonly c2s: Buffer;
  readonly s2c: Buffer;
  readonly input: Buffer;
  /** priv.key decoded from base64 (PKCS#8 DER). */
  readonly privateKeyDer: Buffer;
  /** Lines of me.info: name, client id hex, then the base64 key lines. */
  readonly meInfo: readonly string[];
}

/** Folder names of all captures, sorted. */
export const CAPTURE_NAMES: readonly string[] = readdirSync(CAPTURES_DIR, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name)
  .sort();

export function loadCapture(name: string): Capture {
  const dir = path.join(CAPTURES_DIR, name);
  const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
  // Every capture has exactly one connection (see the README); the tests rely on it.
  if (manifest.connections.length !== 1) {
    throw new Error(`${name}: expected one connection, got ${manifest.connections.length}`);
  }
  const connection = manifest.connections[0];
  return {
    name,
    dir,
    manifest,
    connection,
    c2s: readFileSync(path.join(dir, connection.c2s)),
    s2c: readFileSync(path.join(dir, connection.s2c)),
    input: readFileSync(path.join(dir, manifest.input_file.name)),
    privateKeyDer: Buffer.from(readFileSync(path.join(dir, 'priv.key'), 'utf8'), 'base64'),
    meInfo: readFileSync(path.join(dir, 'me.info'), 'utf8').split(/\r?\n/),
  };
}
