/** DC-AE (`AutoencoderDC`): config, model, blocks, tiling and NCHW/NHWC helpers. */
export * from './config';
export * from './autoencoder';
export * from './encoder';
export * from './decoder';
export * from './blocks';
export * from './attention';
export * from './norms';
export * from './tiling';
export { nchwToNhwc, nhwcToNchw } from './ops';
