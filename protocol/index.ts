export * from './constants';
export * from './errors';
export * from './fields';
export * from './messages';
export * from './encode';
export * from './decode';
export { FrameDecoder, type FrameLayout, type FrameCallback } from './frame-decoder';
