/** shared/exit-codes: one table for every program, every code documented. */
import { EXIT_CODE_MEANINGS, ExitCode, formatExitCodes } from '../../shared/exit-codes';

describe('exit codes', () => {
  it('keep the numbers scripts rely on', () => {
    expect(ExitCode).toEqual({
      OK: 0,
      FAILURE: 1,
      USAGE: 2,
      CONNECTION: 3,
      REJECTED: 4,
      CHECKSUM: 5,
      IDENTITY_MISMATCH: 6,
    });
  });

  it('are distinct and each has a meaning', () => {
    const codes = Object.values(ExitCode);
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) expect(EXIT_CODE_MEANINGS[code]).toMatch(/\w/);
    expect(EXIT_CODE_MEANINGS[ExitCode.IDENTITY_MISMATCH]).toMatch(/version 4/);
  });

  it('format as an indented two-column block', () => {
    const text = formatExitCodes([ExitCode.OK, ExitCode.USAGE]);
    expect(text.split('\n')).toEqual([
      `  0  ${EXIT_CODE_MEANINGS[0]}`,
      `  2  ${EXIT_CODE_MEANINGS[2]}`,
    ]);
    expect(formatExitCodes().split('\n')).toHaveLength(7);
  });
});
