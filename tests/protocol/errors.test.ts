/**
 * Every ProtocolError code of protocol/errors.ts, each produced through the public API, with
 * its `fatal` flag (§9: only framing errors close the connection). Tests check `code`, never text.
 */
import {
  ProtocolError,
  ProtocolErrorCode,
  RequestCode,
  RequestDecoder,
  ResponseCode,
  assertNever,
  encodeRequest,
  encodeResponse,
  isProtocolError,
  protocolError,
} from '../../protocol';
import {
  IGNORE_REQUESTS,
  catchProtocolError,
  rawRequest,
  rawSendFilePayload,
  rawString255,
  runRequestDecoder,
  runResponseDecoder,
  rawResponse,
} from './support';

/** The first error a stream produces: a non-fatal outcome or the fatal throw. */
function firstRequestError(stream: Buffer): ProtocolError | { code: string; fatal: boolean } {
  const run = runRequestDecoder([stream]);
  const failed = run.outcomes.find((o) => !o.ok);
  if (failed && !failed.ok) return { code: failed.code, fatal: failed.fatal };
  if (run.fatal) return run.fatal;
  throw new Error('the stream produced no error');
}

const sendFile = (f: Parameters<typeof rawSendFilePayload>[0]): Buffer =>
  rawRequest(RequestCode.SEND_FILE, rawSendFilePayload(f));

/** One way to produce each code; a missing key is a type error, so new codes need a case. */
const producers: Record<ProtocolErrorCode, () => { code: string; fatal: boolean }> = {
  PAYLOAD_TOO_LARGE: () =>
    firstRequestError(rawRequest(RequestCode.REGISTER, Buffer.alloc(0), { declaredSize: 256 })),
  DECODER_FAILED: () => {
    const decoder = new RequestDecoder();
    catchProtocolError(() =>
      decoder.push(rawRequest(9999, Buffer.alloc(0), { declaredSize: 1 << 20 }), IGNORE_REQUESTS),
    );
    return catchProtocolError(() => decoder.push(Buffer.alloc(1), IGNORE_REQUESTS));
  },
  BAD_SIZE: () => firstRequestError(rawRequest(RequestCode.CHECKSUM_OK, Buffer.alloc(10))),
  BAD_STRING: () => firstRequestError(rawRequest(RequestCode.REGISTER, Buffer.alloc(255))),
  BAD_FILE_NAME: () =>
    firstRequestError(rawRequest(RequestCode.CHECKSUM_OK, rawString255('../../etc/passwd'))),
  UNKNOWN_CODE: () => firstRequestError(rawRequest(1032, Buffer.alloc(4))),
  BAD_CONTENT_SIZE: () =>
    firstRequestError(sendFile({ contentSize: 1024, origSize: 1024, packet: 1, total: 1 })),
  BAD_PACKET_NUMBER: () =>
    firstRequestError(sendFile({ contentSize: 16, origSize: 3, packet: 2, total: 1 })),
};

const FATAL: ReadonlySet<string> = new Set([
  ProtocolErrorCode.PAYLOAD_TOO_LARGE,
  ProtocolErrorCode.DECODER_FAILED,
]);

describe('ProtocolError codes', () => {
  it('has a producer for every code', () => {
    expect(Object.keys(producers).sort()).toEqual(Object.values(ProtocolErrorCode).sort());
  });

  it.each(Object.values(ProtocolErrorCode))('%s is produced, fatal only for framing', (code) => {
    const err = producers[code]();
    expect(err.code).toBe(code);
    expect(err.fatal).toBe(FATAL.has(code));
  });

  it('is an Error with a name, a code and the message code', () => {
    const err = protocolError(ProtocolErrorCode.BAD_SIZE, 'why', 1025);
    expect(err).toBeInstanceOf(Error);
    expect(err).toBeInstanceOf(ProtocolError);
    expect(isProtocolError(err)).toBe(true);
    expect(isProtocolError(new Error('x'))).toBe(false);
    expect([err.name, err.code, err.messageCode, err.fatal]).toEqual([
      'ProtocolError',
      'BAD_SIZE',
      1025,
      false,
    ]);
  });

  it('assertNever throws on a value the types said could not exist', () => {
    expect(() => assertNever('surprise' as never)).toThrow(Error);
  });
});

describe('response decoding errors', () => {
  it('UNKNOWN_CODE for an unknown response code, and the stream goes on', () => {
    const run = runResponseDecoder([
      Buffer.concat([rawResponse(1608, Buffer.alloc(3)), rawResponse(1607, Buffer.alloc(0))]),
    ]);
    expect(run.outcomes.map((o) => (o.ok ? o.response.code : o.code))).toEqual([
      ProtocolErrorCode.UNKNOWN_CODE,
      ResponseCode.GENERAL_ERROR,
    ]);
  });

  it.each([
    [ResponseCode.REGISTERED, 15],
    [ResponseCode.REGISTRATION_FAILED, 1],
    [ResponseCode.KEY_ACCEPTED, 143],
    [ResponseCode.FILE_RECEIVED, 280],
    [ResponseCode.ACKNOWLEDGED, 17],
    [ResponseCode.RECONNECTED, 145],
    [ResponseCode.RECONNECT_REFUSED, 0],
    [ResponseCode.GENERAL_ERROR, 16],
  ])('BAD_SIZE for %i with a %i-byte payload, and the stream goes on', (code, size) => {
    const run = runResponseDecoder([
      Buffer.concat([rawResponse(code, Buffer.alloc(size)), rawResponse(1601, Buffer.alloc(0))]),
    ]);
    expect(run.outcomes.map((o) => (o.ok ? o.response.code : o.code))).toEqual([
      ProtocolErrorCode.BAD_SIZE,
      ResponseCode.REGISTRATION_FAILED,
    ]);
  });

  it('BAD_STRING for a 1603 whose file name has no NUL', () => {
    const payload = Buffer.concat([Buffer.alloc(20), Buffer.alloc(255, 0x61), Buffer.alloc(4)]);
    const run = runResponseDecoder([rawResponse(ResponseCode.FILE_RECEIVED, payload)]);
    expect(run.outcomes.map((o) => (o.ok ? o.response.code : o.code))).toEqual([
      ProtocolErrorCode.BAD_STRING,
    ]);
  });

  it('PAYLOAD_TOO_LARGE past the response limit, then DECODER_FAILED', () => {
    const run = runResponseDecoder([rawResponse(1603, Buffer.alloc(0), 1025)]);
    expect(run.fatal?.code).toBe(ProtocolErrorCode.PAYLOAD_TOO_LARGE);
    const again = catchProtocolError(() => run.decoder.push(Buffer.alloc(1), () => undefined));
    expect(again.code).toBe(ProtocolErrorCode.DECODER_FAILED);
  });
});

describe('encoder errors', () => {
  const id = Buffer.alloc(16);

  it('BAD_SIZE for a client id that is not 16 bytes', () => {
    for (const clientId of [Buffer.alloc(15), Buffer.alloc(17), Buffer.alloc(0)]) {
      expect(
        catchProtocolError(() =>
          encodeRequest({ code: RequestCode.RECONNECT, clientId, name: 'n' }),
        ).code,
      ).toBe(ProtocolErrorCode.BAD_SIZE);
      expect(
        catchProtocolError(() => encodeResponse({ code: ResponseCode.ACKNOWLEDGED, clientId }))
          .code,
      ).toBe(ProtocolErrorCode.BAD_SIZE);
    }
  });

  it('BAD_SIZE for a public key over 160 bytes; a shorter one is zero-padded', () => {
    const err = catchProtocolError(() =>
      encodeRequest({
        code: RequestCode.SEND_PUBLIC_KEY,
        clientId: id,
        name: 'n',
        publicKey: Buffer.alloc(162, 1),
      }),
    );
    expect(err.code).toBe(ProtocolErrorCode.BAD_SIZE);
    const padded = encodeRequest({
      code: RequestCode.SEND_PUBLIC_KEY,
      clientId: id,
      name: 'n',
      publicKey: Buffer.alloc(100, 1),
    });
    expect(padded).toHaveLength(23 + 415);
    expect(padded.subarray(23 + 255)).toEqual(
      Buffer.concat([Buffer.alloc(100, 1), Buffer.alloc(60)]),
    );
  });

  it.each([ResponseCode.KEY_ACCEPTED, ResponseCode.RECONNECTED] as const)(
    'BAD_SIZE for a %i wrapped key that is not 128 bytes',
    (code) => {
      for (const wrappedKey of [Buffer.alloc(127), Buffer.alloc(256)]) {
        const err = catchProtocolError(() => encodeResponse({ code, clientId: id, wrappedKey }));
        expect([err.code, err.messageCode]).toEqual([ProtocolErrorCode.BAD_SIZE, code]);
      }
    },
  );

  it('BAD_STRING for a 1603 file name that cannot be a string255', () => {
    const err = catchProtocolError(() =>
      encodeResponse({
        code: ResponseCode.FILE_RECEIVED,
        clientId: id,
        contentSize: 16,
        fileName: '',
        cksum: 1,
      }),
    );
    expect(err.code).toBe(ProtocolErrorCode.BAD_STRING);
  });

  it('BAD_STRING for a 1028 file name that cannot be a string255', () => {
    const err = catchProtocolError(() =>
      encodeRequest({
        code: RequestCode.SEND_FILE,
        clientId: id,
        contentSize: 16,
        origSize: 1,
        packetNumber: 1,
        totalPackets: 1,
        fileName: 'x'.repeat(255),
        content: Buffer.alloc(16),
      }),
    );
    expect(err.code).toBe(ProtocolErrorCode.BAD_STRING);
  });
});
