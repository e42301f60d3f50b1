/** Data loading: dataset folders, caption choice, aspect buckets, batches, latent cache, Fashion-MNIST. */
export * from './captionChoice';
export * from './manifest';
export * from './buckets';
export * from './images';
export * from './batchPlan';
export * from './dataset';
export * from './latentCache';
export * from './batches';
export * from './fashionMnist';
