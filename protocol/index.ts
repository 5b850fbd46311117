export * from './v3/constants';
export * from './errors';
export * from './v3/fields';
export * from './v3/messages';
export * from './v3/encode';
export * from './v3/decode';
export { FrameDecoder, type FrameLayout, type FrameCallback } from './frame-decoder';
