/** SanaTransformer2DModel (diffusers `sana_transformer.py`): config, presets, layers, model. */
export * from './config';
export * from './presets';
export * from './init';
export * from './embeddings';
export * from './attention';
export * from './glumbconv';
export * from './block';
export * from './checkpoint';
export * from './model';
export * from './info';
