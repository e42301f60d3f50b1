/**
 * Exponential moving average of weights, as SANA's `ema_update` (NVlabs/Sana `diffusion/utils/misc.py`):
 * ema = decay * ema + (1 - decay) * param after every optimizer step. Shadow copies are keyed like
 * the parameters and kept on device in memory layout.
 */
import { tf, Tensor } from '../backend';
import { Parameter } from '../nn/module';
import { tfToTorch, torchToTfHost } from '../nn/layout';

export class Ema {
  private readonly shadow = new Map<string, Tensor>();

  /** Starts from a copy of the current weights. */
  constructor(readonly params: Array<[string, Parameter]>, readonly decay: number) {
    for (const [key, p] of params) this.shadow.set(key, tf.keep(p.value.clone()));
  }

  update(): void {
    for (const [key, p] of this.params) {
      const old = this.shadow.get(key)!;
      const next = tf.tidy(() => old.mul(this.decay).add(p.value.mul(1 - this.decay)));
      this.shadow.set(key, tf.keep(next));
      old.dispose();
    }
  }

  /** The averaged weights in PyTorch layout, keyed like the model's state dict. */
  stateDict(): Map<string, { shape: number[]; data: Float32Array }> {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [key, p] of this.params) {
      const t = tfToTorch(p.layout, this.shadow.get(key)!);
      out.set(key, { shape: [...p.torchShape], data: t.dataSync() as Float32Array });
      t.dispose();
    }
    return out;
  }

  /** Restores averaged weights saved by `stateDict` (PyTorch layout); every key must be present. */
  load(weights: Map<string, { shape: readonly number[]; data: Float32Array }>, sourceName: string): void {
    const missing = this.params.filter(([k]) => !weights.has(k)).map(([k]) => k);
    if (missing.length) throw new Error(`${sourceName}: EMA weights missing ${missing.length} keys: ${missing.slice(0, 10).join(', ')}`);
    for (const [key, p] of this.params) {
      const w = weights.get(key)!;
      if (w.data.length !== p.size) throw new Error(`${sourceName}: EMA "${key}" has ${w.data.length} values, expected ${p.size}`);
      this.shadow.get(key)!.dispose();
      this.shadow.set(key, tf.keep(tf.tensor(torchToTfHost(p.layout, p.torchShape, w.data), p.shape, 'float32')));
    }
  }

  dispose(): void {
    for (const t of this.shadow.values()) t.dispose();
    this.shadow.clear();
  }
}
