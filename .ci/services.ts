/**
 * The services CI's tests need beside the code: a throwaway PostgreSQL cluster and an
 * S3-compatible server (tests/helpers/postgres.ts, tests/helpers/s3.ts). Writes
 * `NAME=value` lines for the test environment to the file given as the argument once both
 * are up, then keeps them running until SIGTERM or SIGINT, and stops both.
 */
import { writeFileSync } from 'node:fs';
import { PG_URL_ENV, startPgCluster, type PgCluster } from '../tests/helpers/postgres';
import { S3_ENDPOINT_ENV, startS3Server, type S3TestServer } from '../tests/helpers/s3';

async function main(envFile: string): Promise<void> {
  let cluster: PgCluster | undefined;
  let s3: S3TestServer | undefined;
  const stop = async (): Promise<void> => {
    await s3?.stop().catch((err: unknown) => console.error('stopping s3rver:', err));
    await cluster?.destroy().catch((err: unknown) => console.error('stopping PostgreSQL:', err));
  };
  try {
    cluster = await startPgCluster();
    s3 = await startS3Server();
  } catch (err) {
    await stop();
    throw err;
  }
  writeFileSync(envFile, `${PG_URL_ENV}=${cluster.url}\n${S3_ENDPOINT_ENV}=${s3.endpoint}\n`);
  console.error(`test services: PostgreSQL ${cluster.url}, S3 ${s3.endpoint}`);
  const onSignal = (): void => {
    void stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}

const envFile = process.argv[2];
if (envFile === undefined) {
  console.error('usage: ts-node .ci/services.ts ENV_FILE');
  process.exit(2);
}
main(envFile).catch((err: unknown) => {
  console.error('test services failed to start:', err);
  process.exit(1);
});
