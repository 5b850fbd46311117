/**
 * Node system errors (ENOENT, ECONNREFUSED, ...) for both programs: the one place that looks
 * inside an unknown thrown value for its errno code.
 */

/** The system error code of `err` (`ENOENT`, `ECONNREFUSED`, ...), if it carries one. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const { code } = err as { code: unknown };
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/**
 * Like errnoCode, and also looks inside an AggregateError: a connect to a host name with
 * several addresses (happy eyeballs) fails with one error per address.
 */
export function firstErrnoCode(err: unknown): string | undefined {
  const direct = errnoCode(err);
  if (direct !== undefined || !(err instanceof AggregateError)) return direct;
  for (const inner of err.errors) {
    const code = errnoCode(inner);
    if (code !== undefined) return code;
  }
  return undefined;
}

/** True when `err` is the system error `code`. */
export function isErrno(err: unknown, code: string): boolean {
  return errnoCode(err) === code;
}

/** True for "no such file or directory". */
export function isNotFound(err: unknown): boolean {
  return isErrno(err, 'ENOENT');
}

/** The errno code for a message, else the error's own message: `(ENOENT)` reads better. */
export function errnoText(err: unknown): string {
  return errnoCode(err) ?? (err instanceof Error ? err.message : String(err));
}
