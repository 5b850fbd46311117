/** Client ids (§2): 16 raw bytes on the wire, 32 lowercase hex characters for people. */
import { clientIdFromHex, clientIdToHex, randomClientId } from '../../shared/client-id';

describe('client ids', () => {
  const hex = '2c2203c9500fb60642aa2188cffd55b0';

  it('converts between bytes and 32 lowercase hex characters', () => {
    const id = clientIdFromHex(hex);
    expect(id).toEqual(Buffer.from(hex, 'hex'));
    expect(id && clientIdToHex(id)).toBe(hex);
  });

  it('accepts upper case, the dashed UUID form and surrounding white space', () => {
    for (const text of [hex.toUpperCase(), '2c2203c9-500f-b606-42aa-2188cffd55b0', ` ${hex}\n`]) {
      expect(clientIdFromHex(text)?.toString('hex')).toBe(hex);
    }
  });

  it.each(['', 'zz'.repeat(16), hex.slice(1), `${hex}00`, `${hex.slice(0, 31)}g`, '0x' + hex])(
    'refuses %j',
    (text) => {
      expect(clientIdFromHex(text)).toBeUndefined();
    },
  );

  it('makes random v4 UUIDs of 16 bytes, all different', () => {
    const ids = Array.from({ length: 200 }, randomClientId);
    for (const id of ids) {
      expect(id).toHaveLength(16);
      expect(id[6] >> 4).toBe(4); // version 4
      expect(id[8] >> 6).toBe(0b10); // RFC 4122 variant
    }
    expect(new Set(ids.map(clientIdToHex)).size).toBe(ids.length);
  });
});
