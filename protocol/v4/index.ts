/** Protocol version 4: frames inside TLS 1.3 (docs/protocol-v4.md). Bytes only. */
export * from './constants';
export type * from './messages';
export * from './encode';
export * from './decode';
export { FieldReader } from './fields';
export { migrationStatement } from './migration';
export { keySetStatement, keyStatusName } from './key-set';
