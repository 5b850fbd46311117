/** shared/errno: errno codes out of unknown thrown values. */
import { stat } from 'node:fs/promises';
import { errnoCode, errnoText, firstErrnoCode, isErrno, isNotFound } from '../../shared/errno';

const withCode = (code: unknown): Error => Object.assign(new Error('boom'), { code });

describe('errno helpers', () => {
  it('read the code of a real file-system error', async () => {
    const err = await stat('/definitely/not/here').catch((e: unknown) => e);
    expect(errnoCode(err)).toBe('ENOENT');
    expect(isNotFound(err)).toBe(true);
    expect(isErrno(err, 'EACCES')).toBe(false);
    expect(errnoText(err)).toBe('ENOENT');
  });

  it.each([undefined, null, 'ENOENT', 42, {}, new Error('plain'), withCode(7)])(
    'find no code in %p',
    (value) => {
      expect(errnoCode(value)).toBeUndefined();
      expect(isNotFound(value)).toBe(false);
    },
  );

  it('fall back to the message, or the value, for text', () => {
    expect(errnoText(new Error('plain'))).toBe('plain');
    expect(errnoText('just text')).toBe('just text');
  });

  it('look inside an AggregateError only when asked', () => {
    const agg = new AggregateError([
      new Error('x'),
      withCode('ECONNREFUSED'),
      withCode('EHOSTUNREACH'),
    ]);
    expect(errnoCode(agg)).toBeUndefined();
    expect(firstErrnoCode(agg)).toBe('ECONNREFUSED');
    expect(firstErrnoCode(withCode('ETIMEDOUT'))).toBe('ETIMEDOUT');
    expect(firstErrnoCode(new AggregateError([new Error('none')]))).toBeUndefined();
  });
});
