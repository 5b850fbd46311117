/**
 * Every request (§3) and response (§4) against an annotated hex fixture written independently of
 * the encoder, from one table: parse, generate and round-trip (mqtt-packet style).
 */
import { createCipheriv } from 'node:crypto';
import {
  PROTOCOL_VERSION,
  RequestCode,
  ResponseCode,
  SEND_FILE_PREFIX_SIZE,
  Size,
  encodeRequest,
  encodeRequestHeader,
  encodeResponse,
  encodeSendFilePrefix,
  type Request,
  type Response,
  type SendFileRequest,
} from '../../protocol';
import { loadHexFixture } from '../helpers/hex-fixture';
import { loadCapture } from './captures';
import { decodeOneRequest, decodeOneResponse } from './support';

const hex = (h: string): Buffer => Buffer.from(h, 'hex');

const captureA = loadCapture('client-a-register-upload');
const captureB = loadCapture('client-b-register-upload');
const captureReconnect = loadCapture('client-a-reconnect-upload');
const captureEmpty = loadCapture('client-a-empty-last-packet');

const ID_A = hex(captureA.connection.client_id);
const ID_B = hex(captureB.connection.client_id);
const ID_EMPTY = hex(captureEmpty.connection.client_id);
const ID_HAND = hex('6f1c9e2a4b7d4e0f9a3b5c7d8e9f0a1b');

/** The last 16 ciphertext bytes of client-a's upload, computed here from the input file. */
function ciphertextTail(): Buffer {
  const cipher = createCipheriv('aes-256-cbc', hex(captureA.connection.aes_key), Buffer.alloc(16));
  const ciphertext = Buffer.concat([cipher.update(captureA.input), cipher.final()]);
  return ciphertext.subarray(captureA.input.length);
}

/** Where a fixture's bytes can also be found in a real capture, to prove it is a faithful copy. */
interface CaptureSource {
  readonly bytes: Buffer;
  readonly from: string;
}

const slice = (buf: Buffer, start: number, end: number): Buffer => buf.subarray(start, end);

interface RequestCase {
  readonly fixture: string;
  readonly message: Request;
  readonly source?: CaptureSource;
}

interface ResponseCase {
  readonly fixture: string;
  readonly message: Response;
  readonly source?: CaptureSource;
}

const requests: readonly RequestCase[] = [
  {
    fixture: 'request-1025-client-a',
    message: {
      code: RequestCode.REGISTER,
      clientId: Buffer.from('0'.repeat(16)),
      name: 'Fixture Client A',
    },
    source: { bytes: slice(captureA.c2s, 0, 278), from: 'client-a conn1.c2s' },
  },
  {
    fixture: 'request-1025-client-b',
    message: { code: RequestCode.REGISTER, clientId: Buffer.alloc(16), name: 'Fixture Client B' },
    source: { bytes: slice(captureB.c2s, 0, 278), from: 'client-b conn1.c2s' },
  },
  {
    fixture: 'request-1026-client-a',
    message: {
      code: RequestCode.SEND_PUBLIC_KEY,
      clientId: ID_A,
      name: 'Fixture Client A',
      publicKey: hex(captureA.connection.public_key_der_hex ?? ''),
    },
    source: { bytes: slice(captureA.c2s, 278, 716), from: 'client-a conn1.c2s' },
  },
  {
    fixture: 'request-1026-client-b',
    message: {
      code: RequestCode.SEND_PUBLIC_KEY,
      clientId: ID_B,
      name: 'Fixture Client B',
      publicKey: hex(captureB.connection.public_key_der_hex ?? ''),
    },
    source: { bytes: slice(captureB.c2s, 278, 716), from: 'client-b conn1.c2s' },
  },
  {
    fixture: 'request-1027-client-a',
    message: { code: RequestCode.RECONNECT, clientId: ID_A, name: 'Fixture Client A' },
    source: { bytes: slice(captureReconnect.c2s, 0, 278), from: 'client-a reconnect conn1.c2s' },
  },
  {
    fixture: 'request-1028-with-content',
    message: {
      code: RequestCode.SEND_FILE,
      clientId: ID_HAND,
      contentSize: 32,
      origSize: 20,
      packetNumber: 1,
      totalPackets: 1,
      fileName: 'notes.txt',
      content: hex('4d3607d3e718ca3cb03be4926172ca13b01a2ef1a25374152da7c718c5a6b75a'),
    },
  },
  {
    fixture: 'request-1028-client-a-last-packet',
    message: {
      code: RequestCode.SEND_FILE,
      clientId: ID_A,
      contentSize: 102416,
      origSize: 102400,
      packetNumber: 101,
      totalPackets: 101,
      fileName: 'sample-100k.bin',
      content: ciphertextTail(),
    },
    source: { bytes: slice(captureA.c2s, 132116, 132422), from: 'client-a conn1.c2s' },
  },
  {
    fixture: 'request-1028-client-a-empty-last-packet',
    message: {
      code: RequestCode.SEND_FILE,
      clientId: ID_EMPTY,
      contentSize: 1024,
      origSize: 1020,
      packetNumber: 2,
      totalPackets: 2,
      fileName: 'sample-1020.bin',
      content: Buffer.alloc(0),
    },
    source: { bytes: slice(captureEmpty.c2s, 2030, 2320), from: 'client-a empty-last conn1.c2s' },
  },
  {
    fixture: 'request-1029-client-a',
    message: { code: RequestCode.CHECKSUM_OK, clientId: ID_A, fileName: 'sample-100k.bin' },
    source: { bytes: slice(captureA.c2s, 132422, 132700), from: 'client-a conn1.c2s' },
  },
  {
    fixture: 'request-1030',
    message: { code: RequestCode.CHECKSUM_RETRY, clientId: ID_HAND, fileName: 'report 2024.pdf' },
  },
  {
    fixture: 'request-1031',
    message: { code: RequestCode.CHECKSUM_ABORT, clientId: ID_HAND, fileName: 'données.csv' },
  },
];

const expectedBytes = (code: number): Buffer => {
  const entry = captureA.connection.expected.find((e) => e.code === code);
  if (!entry?.bytes_hex) throw new Error(`manifest has no bytes_hex for ${code}`);
  return hex(entry.bytes_hex);
};

const responses: readonly ResponseCase[] = [
  {
    fixture: 'response-1600',
    message: { code: ResponseCode.REGISTERED, clientId: ID_A },
    source: { bytes: expectedBytes(1600), from: 'client-a manifest expected bytes_hex' },
  },
  { fixture: 'response-1601', message: { code: ResponseCode.REGISTRATION_FAILED } },
  {
    fixture: 'response-1602',
    message: {
      code: ResponseCode.KEY_ACCEPTED,
      clientId: ID_A,
      wrappedKey: slice(captureA.s2c, 23 + 7 + 16, 174),
    },
    source: { bytes: slice(captureA.s2c, 23, 174), from: 'client-a conn1.s2c' },
  },
  {
    fixture: 'response-1603',
    message: {
      code: ResponseCode.FILE_RECEIVED,
      clientId: ID_A,
      contentSize: 102416,
      fileName: 'sample-100k.bin',
      cksum: captureA.manifest.input_file.cksum,
    },
    source: { bytes: expectedBytes(1603), from: 'client-a manifest expected bytes_hex' },
  },
  {
    fixture: 'response-1604',
    message: { code: ResponseCode.ACKNOWLEDGED, clientId: ID_A },
    source: { bytes: expectedBytes(1604), from: 'client-a manifest expected bytes_hex' },
  },
  {
    fixture: 'response-1605',
    message: {
      code: ResponseCode.RECONNECTED,
      clientId: ID_A,
      wrappedKey: slice(captureReconnect.s2c, 7 + 16, 151),
    },
    source: { bytes: slice(captureReconnect.s2c, 0, 151), from: 'client-a reconnect conn1.s2c' },
  },
  {
    fixture: 'response-1606',
    message: { code: ResponseCode.RECONNECT_REFUSED, clientId: ID_HAND },
  },
  {
    fixture: 'response-1607',
    message: { code: ResponseCode.GENERAL_ERROR },
    source: { bytes: slice(captureEmpty.s2c, 174, 181), from: 'client-a empty-last conn1.s2c' },
  },
];

describe('the table covers the protocol', () => {
  it('has a fixture for every request code and every response code', () => {
    expect(new Set(requests.map((c) => c.message.code))).toEqual(
      new Set(Object.values(RequestCode)),
    );
    expect(new Set(responses.map((c) => c.message.code))).toEqual(
      new Set(Object.values(ResponseCode)),
    );
    expect(requests.some((c) => 'content' in c.message && c.message.content.length > 0)).toBe(true);
  });
});

describe.each(requests)('request fixture $fixture', ({ fixture, message, source }) => {
  const bytes = loadHexFixture(fixture);

  it('parses to the message', () => {
    expect(decodeOneRequest(bytes)).toEqual(message);
  });

  it('is generated byte for byte by encodeRequest', () => {
    expect(encodeRequest(message).toString('hex')).toBe(bytes.toString('hex'));
  });

  it('round-trips: decode(encode(message)) equals the message', () => {
    expect(decodeOneRequest(encodeRequest(message))).toEqual(message);
  });

  if (source) {
    it(`holds the same bytes as ${source.from}`, () => {
      expect(bytes.toString('hex')).toBe(source.bytes.toString('hex'));
    });
  }
});

describe.each(responses)('response fixture $fixture', ({ fixture, message, source }) => {
  const bytes = loadHexFixture(fixture);

  it('parses to the message', () => {
    expect(decodeOneResponse(bytes)).toEqual(message);
  });

  it('is generated byte for byte by encodeResponse', () => {
    expect(encodeResponse(message).toString('hex')).toBe(bytes.toString('hex'));
  });

  it('round-trips: decode(encode(message)) equals the message', () => {
    expect(decodeOneResponse(encodeResponse(message))).toEqual(message);
  });

  if (source) {
    it(`holds the same bytes as ${source.from}`, () => {
      expect(bytes.toString('hex')).toBe(source.bytes.toString('hex'));
    });
  }
});

describe('the 1600-with-payload-size-0 quirk fixture (server-b, §9)', () => {
  const bytes = loadHexFixture('response-1600-size-0-quirk');

  it('holds the bytes server-b really sent', () => {
    expect(bytes.toString('hex')).toBe(captureB.s2c.subarray(0, 23).toString('hex'));
  });

  it('still parses to a 1600 with the undeclared client id', () => {
    expect(decodeOneResponse(bytes)).toEqual({ code: ResponseCode.REGISTERED, clientId: ID_B });
  });

  it('is never what we send: our 1600 declares its 16 bytes', () => {
    const ours = encodeResponse({ code: ResponseCode.REGISTERED, clientId: ID_B });
    expect(ours.readUInt32LE(3)).toBe(Size.CLIENT_ID);
    expect(ours.subarray(Size.RESPONSE_HEADER)).toEqual(bytes.subarray(Size.RESPONSE_HEADER));
  });
});

describe('header-only encoders', () => {
  const withContent = requests.find((c) => c.fixture === 'request-1028-with-content');
  const message = withContent?.message as SendFileRequest;
  const bytes = loadHexFixture('request-1028-with-content');

  it('encodeSendFilePrefix writes the 290 bytes before the content', () => {
    expect(SEND_FILE_PREFIX_SIZE).toBe(290);
    const prefix = encodeSendFilePrefix(message.clientId, message, message.content.length);
    expect(prefix.toString('hex')).toBe(bytes.subarray(0, SEND_FILE_PREFIX_SIZE).toString('hex'));
  });

  it('encodeSendFilePrefix writes in place, so content can follow without a copy', () => {
    const offset = 7;
    const target = Buffer.alloc(offset + SEND_FILE_PREFIX_SIZE + message.content.length, 0xee);
    const returned = encodeSendFilePrefix(
      message.clientId,
      message,
      message.content.length,
      target,
      offset,
    );
    expect(returned).toBe(target);
    message.content.copy(target, offset + SEND_FILE_PREFIX_SIZE);
    expect(target.subarray(0, offset)).toEqual(Buffer.alloc(offset, 0xee));
    expect(target.subarray(offset).toString('hex')).toBe(bytes.toString('hex'));
  });

  it('encodeRequestHeader writes the 23-byte header, version 3 unless told otherwise', () => {
    const header = encodeRequestHeader(ID_HAND, RequestCode.CHECKSUM_RETRY, 255);
    expect(header.toString('hex')).toBe(
      loadHexFixture('request-1030').subarray(0, Size.REQUEST_HEADER).toString('hex'),
    );
    expect(header[Size.CLIENT_ID]).toBe(PROTOCOL_VERSION);
    const v4 = encodeRequestHeader(ID_HAND, RequestCode.CHECKSUM_RETRY, 255, undefined, 0, 4);
    expect(v4[Size.CLIENT_ID]).toBe(4);
  });
});
