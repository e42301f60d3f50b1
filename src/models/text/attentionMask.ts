/**
 * Attention masks of Gemma-2 as transformers builds them for eager attention (`masking_utils.py`:
 * causal, sliding-window and padding conditions combined, then turned into an additive bias that is 0
 * where attention is allowed and the most negative float32 where it is not).
 *
 * Using a finite bias (not -Infinity) matters: a padded query row on a sliding layer can have every key
 * masked, and a finite bias gives it a uniform softmax instead of NaN. Those rows are garbage by
 * construction, but NaN would leak into valid rows through 0 * NaN in the next layer's value product.
 */
import { tf, Tensor, Tensor2D } from '../../backend';

/** torch.finfo(torch.float32).min, the value the reference adds where attention is not allowed. */
export const MASK_BIAS = -3.4028234663852886e38;

/**
 * Additive causal attention bias for one layer type.
 * @param attentionMask [B, S] (non-zero = token, 0 = padding), or null when nothing is padded.
 * @param window sliding window w: key kv is visible from query q only if q - w < kv <= q; null: kv <= q.
 * @returns [B, 1, S, S] float32 (broadcasts over heads): 0 where query q may attend key kv, MASK_BIAS elsewhere.
 */
export function attentionBias(batch: number, seqLen: number, attentionMask: Tensor2D | null, window: number | null): Tensor {
  return tf.tidy(() => {
    const q = tf.range(0, seqLen, 1, 'int32').reshape([seqLen, 1]);
    const kv = tf.range(0, seqLen, 1, 'int32').reshape([1, seqLen]);
    let allowed: Tensor = kv.lessEqual(q); // [S, S]
    if (window !== null) allowed = tf.logicalAnd(allowed, kv.greater(q.sub(window)));
    let allowed4 = allowed.reshape([1, 1, seqLen, seqLen]);
    if (attentionMask) {
      const keyOk = attentionMask.cast('int32').notEqual(0).reshape([batch, 1, 1, seqLen]);
      allowed4 = tf.logicalAnd(allowed4, keyOk);
    } else {
      allowed4 = tf.tile(allowed4, [batch, 1, 1, 1]);
    }
    // (1 - allowed) * MASK_BIAS: exactly 0 or MASK_BIAS.
    return tf.scalar(1, 'float32').sub(allowed4.cast('float32')).mul(MASK_BIAS);
  });
}
