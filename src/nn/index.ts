/** Neural-network building blocks: modules with named parameters, layers, initialisers, layouts. */
export * from './module';
export * from './layers';
export * from './activations';
export * from './init';
export * from './layout';
export * from './grad';
export * from './customGradient';
export * from './random';
