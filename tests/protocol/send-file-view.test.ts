/**
 * The zero-copy 1028 view, the raw field reader and the packet matcher (§3, §9): the same fields
 * as the validating decoder, read in place, for frames given as (buffer, header offset).
 */
import {
  ProtocolErrorCode,
  RequestCode,
  SendFileFrameMatcher,
  SendFileView,
  Size,
  encodeSendFilePacketNumber,
  encodeSendFilePrefix,
  readRequestHeader,
  readSendFileFrame,
  type SendFileRequest,
} from '../../protocol';
import { loadHexFixture } from '../helpers/hex-fixture';
import { loadCapture } from './captures';
import {
  catchProtocolError,
  decodeOneRequest,
  rawRequest,
  rawSendFilePayload,
  type RawSendFile,
} from './support';

const ID = Buffer.alloc(Size.CLIENT_ID, 0x5a);
const valid: RawSendFile = {
  contentSize: 48,
  origSize: 40,
  packet: 2,
  total: 3,
  fileName: 'report.pdf',
  content: Buffer.alloc(20, 0xc7),
};

/** `frame` copied into a fresh buffer at `at`, with junk around it (offsets must matter). */
function placed(frame: Buffer, at: number): Buffer {
  const buf = Buffer.alloc(at + frame.length + 9, 0xee);
  frame.copy(buf, at);
  return buf;
}

describe('SendFileView', () => {
  it('reads the same fields as the decoder, at any offset, from the real fixture', () => {
    const frame = loadHexFixture('request-1028-with-content');
    const decoded = decodeOneRequest(frame) as SendFileRequest;
    const buf = placed(frame, 37);
    const view = new SendFileView();
    expect(view.wrap(buf, 37)).toBe(true);
    expect(view.clientId.equals(decoded.clientId)).toBe(true);
    expect(view.hasClientId(decoded.clientId)).toBe(true);
    expect(view.hasClientId(ID)).toBe(false);
    expect(view.version).toBe(3);
    expect(view.payloadSize).toBe(frame.length - Size.REQUEST_HEADER);
    expect([view.contentSize, view.origSize, view.packetNumber, view.totalPackets]).toEqual([
      decoded.contentSize,
      decoded.origSize,
      decoded.packetNumber,
      decoded.totalPackets,
    ]);
    expect(view.fileName()).toBe(decoded.fileName);
    expect(view.nameKey()).toBe(decoded.fileName);
    expect(view.content().equals(decoded.content)).toBe(true);
  });

  it('hands out views into the buffer, not copies', () => {
    const buf = placed(rawRequest(RequestCode.SEND_FILE, rawSendFilePayload(valid)), 5);
    const view = new SendFileView();
    view.wrap(buf, 5);
    for (const part of [view.clientId, view.fileNameField, view.content()]) {
      expect(part.buffer).toBe(buf.buffer);
    }
    expect(view.clientId.byteOffset - buf.byteOffset).toBe(5);
    expect(view.fileNameField.byteOffset - buf.byteOffset).toBe(5 + 23 + 12);
    expect(view.fileNameField).toHaveLength(255);
    expect(view.content().byteOffset - buf.byteOffset).toBe(view.contentStart);
    expect(view.contentStart).toBe(5 + 23 + 267);
    expect(view.contentEnd).toBe(5 + 23 + 267 + 20);
  });

  it('clips content to content size, dropping the padding of a padded sender (§9)', () => {
    const padded = rawSendFilePayload({
      ...valid,
      packet: 1,
      total: 1,
      content: Buffer.alloc(100, 7),
    });
    const view = new SendFileView();
    expect(view.wrap(rawRequest(RequestCode.SEND_FILE, padded), 0)).toBe(true);
    expect(view.content()).toEqual(Buffer.alloc(48, 7));
    expect(view.contentEnd - view.contentStart).toBe(48);
  });

  it('keeps a client-b 65536-byte packet whole when it is within content size', () => {
    const capture = loadCapture('client-b-register-upload');
    const [first] = capture.connection.requests.filter((r) => r.code === RequestCode.SEND_FILE);
    const view = new SendFileView();
    expect(view.wrap(capture.c2s, first.offset)).toBe(true);
    expect(view.payloadSize).toBe(65536);
    expect(view.contentSize).toBe(first.content_size);
    const at = first.chunk_offset ?? -1;
    expect(view.content().equals(capture.c2s.subarray(at, at + 65536 - 267))).toBe(true);
  });

  it('gives a name key for a name that does not decode, and fileName() says why', () => {
    const badName = Buffer.from([0x66, 0xff, 0xfe, 0x2e, 0x62]);
    const frame = rawRequest(
      RequestCode.SEND_FILE,
      rawSendFilePayload({ ...valid, fileName: badName }),
    );
    const view = new SendFileView();
    expect(view.wrap(frame, 0)).toBe(true);
    expect(view.nameKey()).toBe(badName.toString('latin1'));
    expect(catchProtocolError(() => view.fileName()).code).toBe(ProtocolErrorCode.BAD_STRING);
    const noNul = rawSendFilePayload({ ...valid, fileName: Buffer.alloc(255, 0x61) });
    view.wrap(rawRequest(RequestCode.SEND_FILE, noNul), 0);
    expect(view.nameKey()).toBe('a'.repeat(255));
  });

  it('refuses a payload too short for the fixed fields, or a frame the buffer does not hold', () => {
    const view = new SendFileView();
    const short = rawRequest(RequestCode.SEND_FILE, Buffer.alloc(266));
    expect(view.wrap(short, 0)).toBe(false);
    const whole = rawRequest(RequestCode.SEND_FILE, rawSendFilePayload(valid));
    expect(view.wrap(whole.subarray(0, whole.length - 1), 0)).toBe(false);
    expect(view.wrap(whole, 0)).toBe(true);
  });
});

describe('readRequestHeader', () => {
  it('reads client id (a view), version, code and payload size at an offset', () => {
    const frame = rawRequest(RequestCode.SEND_FILE, rawSendFilePayload(valid), {
      clientId: ID,
      version: 7,
    });
    const buf = placed(frame, 11);
    const header = readRequestHeader(buf, 11);
    expect(header).toEqual({
      clientId: ID,
      version: 7,
      code: 1028,
      payloadSize: frame.length - 23,
    });
    expect(header.clientId.buffer).toBe(buf.buffer);
  });
});

describe('readSendFileFrame', () => {
  it('reads the fixed fields of a payload without validating them', () => {
    const payload = rawSendFilePayload({ ...valid, packet: 0, total: 0, fileName: 'x/..' });
    expect(readSendFileFrame(payload)).toEqual({
      contentSize: 48,
      origSize: 40,
      packetNumber: 0,
      totalPackets: 0,
      nameKey: 'x/..',
    });
    expect(readSendFileFrame(payload.subarray(0, 266))).toBeUndefined();
  });
});

describe('SendFileFrameMatcher', () => {
  const identity = {
    clientId: ID,
    fileName: 'report.pdf',
    contentSize: 48,
    origSize: 40,
    totalPackets: 3,
  };
  const frameOf = (
    f: Partial<RawSendFile>,
    options: { clientId?: Buffer; version?: number } = {},
  ) =>
    rawRequest(RequestCode.SEND_FILE, rawSendFilePayload({ ...valid, ...f }), {
      clientId: ID,
      ...options,
    });
  const matches = (frame: Buffer): boolean =>
    new SendFileFrameMatcher(identity).matches(placed(frame, 3), 3, frame.length - 23);

  it('matches any packet of the upload whatever its version byte, number and content', () => {
    expect(matches(frameOf({}))).toBe(true);
    expect(matches(frameOf({ packet: 3, content: Buffer.alloc(0) }, { version: 9 }))).toBe(true);
  });

  it.each<[string, Partial<RawSendFile>, { clientId?: Buffer }]>([
    ['another client', {}, { clientId: Buffer.alloc(16, 1) }],
    ['another name', { fileName: 'report.pdg' }, {}],
    ['another content size', { contentSize: 64 }, {}],
    ['another orig size', { origSize: 41 }, {}],
    ['another total', { total: 4 }, {}],
    ['stale bytes after the name NUL', { fileName: Buffer.from('report.pdf\0junk') }, {}],
  ])('does not match %s', (_what, fields, options) => {
    expect(matches(frameOf(fields, options))).toBe(false);
  });

  it('reads the packet number and the content range of a raw frame', () => {
    const buf = placed(frameOf({ packet: 2 }), 3);
    const matcher = new SendFileFrameMatcher(identity);
    const payloadSize = buf.readUInt32LE(3 + 19);
    expect(matcher.packetNumberAt(buf, 3)).toBe(2);
    expect(matcher.contentStart(3)).toBe(3 + 290);
    expect(matcher.frameEnd(3, payloadSize)).toBe(3 + 290 + 20);
    expect(matcher.matches(buf, 3, 266)).toBe(false);
  });
});

describe('encodeSendFilePacketNumber', () => {
  it('turns one encoded prefix into the prefix of another packet, and nothing else', () => {
    const fields = { ...identity(), packetNumber: 1 };
    const target = Buffer.alloc(400, 0x11);
    encodeSendFilePrefix(ID, fields, 100, target, 50);
    encodeSendFilePacketNumber(target, 50, 7);
    const expected = Buffer.alloc(400, 0x11);
    encodeSendFilePrefix(ID, { ...fields, packetNumber: 7 }, 100, expected, 50);
    expect(target.equals(expected)).toBe(true);
  });

  function identity() {
    return { fileName: 'report.pdf', contentSize: 48, origSize: 40, totalPackets: 9 };
  }
});
