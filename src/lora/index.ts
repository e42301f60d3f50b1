/** LoRA: adapters on Linear / 1x1 Conv2d layers, target selection, fusing. */
export * from './lora';
export * from './targets';
