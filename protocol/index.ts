/** The public surface of protocol/: version 3 bytes, the framer, errors and version dispatch. */
export * from './errors';
export * from './framer';
export * from './version';
export * from './v3/constants';
export * from './v3/fields';
export * from './v3/messages';
export * from './v3/encode';
export * from './v3/decode';
export * from './v3/frame-layouts';
export * from './v3/request-decoder';
export * from './v3/response-decoder';
export * from './v3/send-file-view';
