/** The text encoder of SANA: Gemma-2 (decoder stack up to the last hidden state) and its tokenizer. */
export * from './gemma2Config';
export * from './gemma2';
export * from './attentionMask';
export * from './rotary';
export * from './gemmaTokenizer';
