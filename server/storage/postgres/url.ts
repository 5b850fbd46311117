/** Telling a PostgreSQL `--database` value apart without loading the driver. */

/** True for a `--database` value naming PostgreSQL (`postgres://` or `postgresql://`). */
export function isPostgresUrl(database: string | undefined): database is string {
  return database !== undefined && /^postgres(ql)?:\/\//i.test(database);
}
