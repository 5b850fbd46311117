/**
 * Field rules: string255 (§2), plain base names (§9), and the 1028 size relations (§5, §9).
 * Bad fields arrive in well-framed packets, so each is a non-fatal ProtocolError.
 */
import {
  ProtocolErrorCode,
  RequestCode,
  STRING255_MAX_TEXT,
  Size,
  assertBaseName,
  decodeRequest,
  decodeString255,
  encodeRequest,
  encodeString255,
  fileNameProblem,
  paddedLength,
  string255Bytes,
  type RequestFrame,
} from '../../protocol';
import {
  catchProtocolError,
  rawRequest,
  rawSendFilePayload,
  rawString255,
  runRequestDecoder,
  type RawSendFile,
} from './support';

const ID = Buffer.alloc(16, 7);

/** A frame as the decoder hands it to decodeRequest. */
function frame(code: number, payload: Buffer): RequestFrame {
  return { clientId: ID, version: 3, code, payloadSize: payload.length, payload };
}

describe('string255 decoding (§2)', () => {
  const decode = (bytes: Buffer): string => decodeString255(rawString255(bytes), 0);
  const badString = (field: Buffer): string =>
    catchProtocolError(() => decodeString255(field, 0, RequestCode.REGISTER)).code;

  it('reads the text up to the first NUL', () => {
    expect(decode(Buffer.from('Fixture Client A'))).toBe('Fixture Client A');
  });

  it('accepts the longest text, 254 bytes and the NUL', () => {
    expect(decode(Buffer.alloc(STRING255_MAX_TEXT, 0x61))).toBe('a'.repeat(254));
  });

  it('ignores stale bytes after the NUL (deployed clients leave them, §9)', () => {
    const field = rawString255('name');
    field.fill(0x5a, 10);
    expect(decodeString255(field, 0)).toBe('name');
  });

  it('reads at an offset, bounded to its 255 bytes', () => {
    const buf = Buffer.concat([Buffer.from('xyz'), rawString255('inner'), Buffer.from([0x41])]);
    expect(decodeString255(buf, 3)).toBe('inner');
  });

  it('accepts multi-byte UTF-8 and keeps a leading byte-order mark', () => {
    expect(decode(Buffer.from('données ✓ 日本', 'utf8'))).toBe('données ✓ 日本');
    expect(decode(Buffer.from('\uFEFFname', 'utf8'))).toBe('\uFEFFname');
  });

  it('rejects a field without NUL', () => {
    expect(badString(Buffer.alloc(255, 0x61))).toBe(ProtocolErrorCode.BAD_STRING);
    // A NUL right after the 255 bytes does not count: it belongs to the next field.
    const next = Buffer.concat([Buffer.alloc(255, 0x61), Buffer.from([0])]);
    expect(badString(next)).toBe(ProtocolErrorCode.BAD_STRING);
  });

  it('rejects an empty text', () => {
    expect(badString(Buffer.alloc(255))).toBe(ProtocolErrorCode.BAD_STRING);
  });

  it.each([
    ['a lone continuation byte', '80'],
    ['an invalid lead byte', 'ff'],
    ['an overlong encoding of "/"', 'c0af'],
    ['a truncated sequence', 'e282'],
    ['an encoded surrogate', 'eda080'],
    ['a code point over U+10FFFF', 'f4908080'],
  ])('rejects invalid UTF-8: %s', (_what, bytes) => {
    expect(badString(rawString255(Buffer.from(`61${bytes}62`, 'hex')))).toBe(
      ProtocolErrorCode.BAD_STRING,
    );
  });

  it.each([
    ['SOH', '01'],
    ['TAB', '09'],
    ['LF', '0a'],
    ['ESC', '1b'],
    ['unit separator', '1f'],
    ['DEL', '7f'],
    ['C1 NEL (U+0085)', 'c285'],
    ['C1 U+009F', 'c29f'],
  ])('rejects a control character: %s', (_what, bytes) => {
    expect(badString(rawString255(Buffer.from(`61${bytes}62`, 'hex')))).toBe(
      ProtocolErrorCode.BAD_STRING,
    );
  });

  it('names the message code in the error', () => {
    const err = catchProtocolError(() => decodeString255(Buffer.alloc(255), 0, 1027));
    expect(err.messageCode).toBe(1027);
    expect(err.fatal).toBe(false);
  });
});

describe('string255 encoding (§2)', () => {
  const encoded = (text: string): Buffer => {
    const target = Buffer.alloc(255, 0xee);
    encodeString255(text, target, 0);
    return target;
  };

  it('writes the text then NULs to the end of the field', () => {
    const field = encoded('abc');
    expect(field.subarray(0, 3).toString()).toBe('abc');
    expect(field.subarray(3)).toEqual(Buffer.alloc(252));
  });

  it('writes at an offset and touches nothing outside the field', () => {
    const target = Buffer.alloc(300, 0xee);
    encodeString255('abc', target, 20);
    expect(target.subarray(0, 20)).toEqual(Buffer.alloc(20, 0xee));
    expect(target.subarray(275)).toEqual(Buffer.alloc(25, 0xee));
  });

  it('takes up to 254 bytes of UTF-8, counted in bytes, not characters', () => {
    expect(encoded('a'.repeat(254))[253]).toBe(0x61);
    expect(string255Bytes('é'.repeat(127))).toHaveLength(254);
    const tooLong = ['a'.repeat(255), 'é'.repeat(128), '日'.repeat(85)];
    for (const text of tooLong) {
      expect(catchProtocolError(() => string255Bytes(text)).code).toBe(
        ProtocolErrorCode.BAD_STRING,
      );
    }
  });

  it.each([
    ['empty', ''],
    ['a NUL inside', 'a\u0000b'],
    ['a newline', 'a\nb'],
    ['DEL', 'a\u007fb'],
    ['a C1 control', 'a\u0085b'],
    ['a lone surrogate', 'a\ud800b'],
  ])('refuses %s', (_what, text) => {
    const err = catchProtocolError(() => encoded(text));
    expect(err.code).toBe(ProtocolErrorCode.BAD_STRING);
  });

  it('refuses a bad name in a whole request too, before writing anything', () => {
    const err = catchProtocolError(() =>
      encodeRequest({ code: RequestCode.REGISTER, clientId: ID, name: 'x'.repeat(300) }),
    );
    expect(err.code).toBe(ProtocolErrorCode.BAD_STRING);
    expect(err.messageCode).toBe(RequestCode.REGISTER);
  });
});

describe('file names are plain base names (§9)', () => {
  it.each(['sample-100k.bin', 'a', '.hidden', '..a', 'a..', 'a.b.c', 'with space', 'données.csv'])(
    'accepts %j',
    (name) => {
      expect(fileNameProblem(name)).toBeUndefined();
      expect(assertBaseName(name)).toBe(name);
    },
  );

  it.each([
    ['a slash', 'dir/file'],
    ['a leading slash', '/etc/passwd'],
    ['a backslash', 'dir\\file'],
    ['a parent escape', '../x'],
    ['dot', '.'],
    ['dot dot', '..'],
    ['a control character', 'a\u0001b'],
  ])('refuses %s: %j', (_what, name) => {
    expect(fileNameProblem(name)).toBeDefined();
    expect(catchProtocolError(() => assertBaseName(name)).code).toBe(
      ProtocolErrorCode.BAD_FILE_NAME,
    );
  });

  it.each([RequestCode.CHECKSUM_OK, RequestCode.CHECKSUM_RETRY, RequestCode.CHECKSUM_ABORT])(
    'checks the file name of %i',
    (code) => {
      for (const name of ['..', '.', 'a/b', 'a\\b']) {
        const err = catchProtocolError(() => decodeRequest(frame(code, rawString255(name))));
        expect([err.code, err.messageCode, err.fatal]).toEqual([
          ProtocolErrorCode.BAD_FILE_NAME,
          code,
          false,
        ]);
      }
      // A control character is already a bad string (§2), before the base-name rule.
      const ctl = catchProtocolError(() => decodeRequest(frame(code, rawString255('a\tb'))));
      expect(ctl.code).toBe(ProtocolErrorCode.BAD_STRING);
    },
  );

  it('does not apply the file-name rule to client names', () => {
    const request = decodeRequest(frame(RequestCode.REGISTER, rawString255('a/b')));
    expect(request).toEqual({ code: RequestCode.REGISTER, clientId: ID, name: 'a/b' });
  });
});

describe('1028 size relations (§5, §9)', () => {
  const valid: RawSendFile = { contentSize: 32, origSize: 20, packet: 1, total: 1 };
  const decodeSendFile = (f: Partial<RawSendFile>): unknown =>
    decodeRequest(frame(RequestCode.SEND_FILE, rawSendFilePayload({ ...valid, ...f })));
  const errorOf = (f: Partial<RawSendFile>): string =>
    catchProtocolError(() => decodeSendFile(f)).code;

  it('paddedLength is the PKCS#7 length: always a whole extra block on a block boundary', () => {
    expect([0, 1, 15, 16, 17, 1020, 1024, 102400].map(paddedLength)).toEqual([
      16, 16, 16, 32, 32, 1024, 1040, 102416,
    ]);
  });

  it('accepts a consistent packet', () => {
    expect(decodeSendFile({})).toMatchObject({
      contentSize: 32,
      origSize: 20,
      fileName: 'file.bin',
    });
  });

  it.each([
    ['content size of the wrong block count', { contentSize: 48 }],
    ['content size not a multiple of 16', { contentSize: 33 }],
    ['content size 0', { contentSize: 0, origSize: 0 }],
    ['a full last block without the padding block', { contentSize: 16, origSize: 16 }],
    ['content size equal to orig size', { contentSize: 20 }],
  ])('rejects %s: BAD_CONTENT_SIZE', (_what, f) => {
    expect(errorOf(f)).toBe(ProtocolErrorCode.BAD_CONTENT_SIZE);
  });

  it('handles orig sizes near 2^32: the PKCS#7 length must still fit a u32', () => {
    expect(decodeSendFile({ origSize: 0xffffffef, contentSize: 0xfffffff0 })).toMatchObject({
      origSize: 0xffffffef,
      contentSize: 0xfffffff0,
    });
    for (const origSize of [0xfffffff0, 0xfffffffe, 0xffffffff]) {
      for (const contentSize of [0xfffffff0, 0xffffffff, 0]) {
        expect(errorOf({ origSize, contentSize })).toBe(ProtocolErrorCode.BAD_CONTENT_SIZE);
      }
    }
  });

  it.each([
    ['packet 0', { packet: 0 }],
    ['packet past the total', { packet: 3, total: 2 }],
    ['total 0', { packet: 1, total: 0 }],
    ['packet 0 of 0', { packet: 0, total: 0 }],
  ])('rejects %s: BAD_PACKET_NUMBER', (_what, f) => {
    expect(errorOf(f)).toBe(ProtocolErrorCode.BAD_PACKET_NUMBER);
  });

  it('accepts the last of 65535 packets', () => {
    expect(decodeSendFile({ packet: 0xffff, total: 0xffff })).toMatchObject({
      packetNumber: 0xffff,
      totalPackets: 0xffff,
    });
  });

  it('rejects a bad file name: BAD_FILE_NAME or BAD_STRING', () => {
    expect(errorOf({ fileName: '..' })).toBe(ProtocolErrorCode.BAD_FILE_NAME);
    expect(errorOf({ fileName: 'a/b' })).toBe(ProtocolErrorCode.BAD_FILE_NAME);
    expect(errorOf({ fileName: '' })).toBe(ProtocolErrorCode.BAD_STRING);
    expect(errorOf({ fileName: Buffer.alloc(255, 0x61) })).toBe(ProtocolErrorCode.BAD_STRING);
  });

  it('rejects a payload shorter than the 267 fixed bytes: BAD_SIZE', () => {
    const short = rawSendFilePayload(valid).subarray(0, Size.SEND_FILE_FIXED - 1);
    const err = catchProtocolError(() => decodeRequest(frame(RequestCode.SEND_FILE, short)));
    expect([err.code, err.fatal]).toEqual([ProtocolErrorCode.BAD_SIZE, false]);
  });

  it('accepts an empty packet and content past content size (padding senders, §9)', () => {
    expect(decodeSendFile({ content: Buffer.alloc(0) })).toMatchObject({
      content: Buffer.alloc(0),
    });
    expect(decodeSendFile({ content: Buffer.alloc(100, 1) })).toMatchObject({
      content: Buffer.alloc(100, 1),
    });
  });

  it('keeps the stream usable after each bad 1028', () => {
    const bad = [{ contentSize: 33 }, { packet: 0 }, { fileName: '..' }, { fileName: '' }];
    const stream = Buffer.concat([
      ...bad.map((f) => rawRequest(RequestCode.SEND_FILE, rawSendFilePayload({ ...valid, ...f }))),
      rawRequest(RequestCode.SEND_FILE, rawSendFilePayload(valid)),
    ]);
    const run = runRequestDecoder([stream]);
    expect(run.outcomes.map((o) => (o.ok ? o.request.code : o.code))).toEqual([
      ProtocolErrorCode.BAD_CONTENT_SIZE,
      ProtocolErrorCode.BAD_PACKET_NUMBER,
      ProtocolErrorCode.BAD_FILE_NAME,
      ProtocolErrorCode.BAD_STRING,
      RequestCode.SEND_FILE,
    ]);
  });
});
