/** The annotated hex fixture format (tests/helpers/hex-fixture.ts). */
import { readdirSync } from 'node:fs';
import { FIXTURE_DIR, loadHexFixture, parseHexFixture } from '../helpers/hex-fixture';

describe('parseHexFixture', () => {
  it('reads hex bytes, with or without spaces, and ignores comments and blank lines', () => {
    const text = ['# a header comment', '', '01 02  # two bytes', '0304', 'AbCd # case'].join('\n');
    expect(parseHexFixture(text)).toEqual(Buffer.from([1, 2, 3, 4, 0xab, 0xcd]));
  });

  it('expands <hex>*<count> runs', () => {
    expect(parseHexFixture('00*3 ff\nabcd*2  # run of a pair')).toEqual(
      Buffer.from('000000ffabcdabcd', 'hex'),
    );
  });

  it('accepts CRLF line ends', () => {
    expect(parseHexFixture('01 # x\r\n02\r\n')).toEqual(Buffer.from([1, 2]));
  });

  it.each([
    ['an odd number of digits', '012'],
    ['a non-hex character', '0g'],
    ['a zero repeat count', '00*0'],
    ['a run without a count', '00*'],
    ['a prefix', '0x01'],
  ])('refuses %s, naming the line', (_what, line) => {
    expect(() => parseHexFixture(`00\n${line}`, 'f.hex')).toThrow('f.hex:2');
  });
});

describe('the fixture files', () => {
  const names = readdirSync(FIXTURE_DIR)
    .filter((f) => f.endsWith('.hex'))
    .map((f) => f.slice(0, -'.hex'.length));

  it.each(names)('%s parses to one whole frame as its header declares', (name) => {
    const bytes = loadHexFixture(name);
    const isRequest = name.startsWith('request-');
    expect(isRequest || name.startsWith('response-')).toBe(true);
    const headerSize = isRequest ? 23 : 7;
    const declared = bytes.readUInt32LE(headerSize - 4);
    // The server-b quirk fixture declares 0 and carries the 16-byte id anyway (§9).
    const undeclared = name === 'response-1600-size-0-quirk' ? 16 : 0;
    expect(bytes.length).toBe(headerSize + declared + undeclared);
  });
});
