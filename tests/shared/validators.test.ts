/** shared/validators: ports, base64, control characters and the §9 base-name rule. */
import {
  CONTROL_CHARACTERS,
  MAX_PORT,
  decodeBase64,
  escapeControlCharacters,
  fileNameProblem,
  hasControlCharacters,
  isBase64Text,
  parsePort,
} from '../../shared/validators';

describe('parsePort', () => {
  it.each([
    ['1', 1],
    ['1256', 1256],
    ['65535', MAX_PORT],
    ['00080', 80],
  ])('%j is port %i', (text, port) => {
    expect(parsePort(text)).toBe(port);
  });

  it.each(['', '0', '65536', '99999', '123456', '-1', '12ab', '1.5', ' 80', '80 ', '0x50', '1e3'])(
    '%j is refused',
    (text) => {
      expect(parsePort(text)).toBeUndefined();
    },
  );

  it('takes 0 only when asked (a listener picks any free port)', () => {
    expect(parsePort('0', { allowZero: true })).toBe(0);
    expect(parsePort('00', { allowZero: true })).toBe(0);
    expect(parsePort('65536', { allowZero: true })).toBeUndefined();
  });
});

describe('control characters', () => {
  it('are C0, DEL and C1, nothing else', () => {
    for (let code = 0; code <= 0x2ff; code++) {
      const expected = code < 0x20 || (code >= 0x7f && code <= 0x9f);
      expect(hasControlCharacters(`a${String.fromCharCode(code)}b`)).toBe(expected);
    }
    expect(CONTROL_CHARACTERS.global).toBe(false);
    expect(hasControlCharacters('Grüße \u00a0 ✓ 😀')).toBe(false);
  });

  it('are escaped as \\xNN for terminals, every one of them', () => {
    expect(escapeControlCharacters('a\u001b[31mb\u0000\u007f\u009bc')).toBe(
      'a\\x1b[31mb\\x00\\x7f\\x9bc',
    );
    expect(escapeControlCharacters('plain')).toBe('plain');
    // The global regex must not keep state between calls.
    expect(escapeControlCharacters('\u0001')).toBe('\\x01');
    expect(escapeControlCharacters('\u0001')).toBe('\\x01');
  });
});

describe('base64', () => {
  const bytes = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x01]);
  const text = bytes.toString('base64'); // 3q2+7wE=

  it('decodes with or without padding and across lines', () => {
    expect(decodeBase64(text)).toEqual(bytes);
    expect(decodeBase64(text.replace(/=+$/, ''))).toEqual(bytes);
    expect(decodeBase64(`${text.slice(0, 4)}\n  ${text.slice(4)}\r\n`)).toEqual(bytes);
  });

  it.each([
    ['empty', ''],
    ['blanks only', ' \n '],
    ['outside the alphabet', '3q2+7wE%'],
    ['url-safe alphabet', '3q2-7wE='],
    ['padding in the middle', '3q==7wE='],
    ['too much padding', '3q2+7w==='],
    ['a length no encoder makes', '3q2+7'],
  ])('refuses %s', (_what, input) => {
    expect(decodeBase64(input)).toBeUndefined();
  });

  it('insists on padding when asked', () => {
    expect(decodeBase64(text, { requirePadding: true })).toEqual(bytes);
    expect(decodeBase64(text.replace(/=+$/, ''), { requirePadding: true })).toBeUndefined();
  });

  it('checks one line of a wrapped key by itself', () => {
    expect(isBase64Text('QUJD')).toBe(true);
    expect(isBase64Text(' QU JD== ')).toBe(true);
    expect(isBase64Text('')).toBe(true);
    expect(isBase64Text('%%%')).toBe(false);
    expect(isBase64Text('QU=JD')).toBe(false);
  });

  it('round-trips random bytes', () => {
    for (let n = 1; n < 70; n++) {
      const data = Buffer.from(Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff));
      expect(decodeBase64(data.toString('base64'), { requirePadding: true })).toEqual(data);
    }
  });
});

describe('fileNameProblem (§9 plain base names)', () => {
  it.each(['a', 'report.pdf', '.hidden', '..a', 'a..', 'ünïcødé 文件.txt', 'x'.repeat(300)])(
    '%j is a base name',
    (name) => {
      expect(fileNameProblem(name)).toBeUndefined();
    },
  );

  it.each([
    ['', /empty/],
    ['.', /dot directory/],
    ['..', /dot directory/],
    ['a/b', /path separator/],
    ['/etc', /path separator/],
    ['a\\b', /path separator/],
    ['a\u0000b', /control/],
    ['a\nb', /control/],
    ['a\u007f', /control/],
    ['a\u0085', /control/],
  ])('%j is refused (%s)', (name, problem) => {
    expect(fileNameProblem(name)).toMatch(problem);
  });
});
