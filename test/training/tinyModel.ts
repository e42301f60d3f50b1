/**
 * A tiny conditional velocity model and a synthetic batch source for trainer tests: small enough to
 * run many steps in a test, with the same inputs and outputs as SanaTransformer2DModel (NHWC latents,
 * caption states with a mask, timesteps in model units).
 */
import * as path from 'path';
import { tf, Tensor1D, Tensor2D, Tensor3D, Tensor4D } from '../../src/backend';
import { Linear, Module, silu, rngFor } from '../../src/nn';
import { SafetensorsCheckpoint, writeSafetensors } from '../../src/io/safetensors';
import { BatchSource } from '../../src/training/trainer';
import { FlowBatch } from '../../src/training/objectives';

export const DIMS = { B: 2, H: 4, W: 4, C: 4, L: 3, D: 5, hidden: 8 };

export class TinyVelocityModel extends Module {
  readonly projIn = this.module('proj_in', new Linear(DIMS.C, DIMS.hidden));
  readonly time = this.module('time_proj', new Linear(1, DIMS.hidden));
  readonly text = this.module('text_proj', new Linear(DIMS.D, DIMS.hidden));
  readonly projOut = this.module('proj_out', new Linear(DIMS.hidden, DIMS.C));

  forward(inputs: { hiddenStates: Tensor4D; encoderHiddenStates: Tensor3D; encoderAttentionMask: Tensor2D; timestep: Tensor1D }): Tensor4D {
    return tf.tidy(() => {
      const [B] = inputs.hiddenStates.shape;
      const mask = inputs.encoderAttentionMask.toFloat().expandDims(2); // [B, L, 1]
      const pooled = inputs.encoderHiddenStates.mul(mask).sum(1).div(mask.sum(1).maximum(1)); // [B, D]
      const cond = this.time.forward(inputs.timestep.div(1000).reshape([B, 1])).add(this.text.forward(pooled)); // [B, hidden]
      const h = silu(this.projIn.forward(inputs.hiddenStates).add(cond.reshape([B, 1, 1, DIMS.hidden])));
      return this.projOut.forward(h) as Tensor4D;
    });
  }
}

/** Deterministic synthetic batches: batch `index` is a pure function of the index. */
export function syntheticBatches(opts: { poisonAt?: number } = {}): BatchSource<FlowBatch> & { live: number } {
  const src = {
    live: 0,
    get(index: number): FlowBatch {
      const { B, H, W, C, L, D } = DIMS;
      const rng = rngFor(99, 'test-data', index);
      const lat = rng.normalArray(B * H * W * C);
      if (opts.poisonAt === index) lat[3] = NaN;
      src.live++;
      return {
        ids: Array.from({ length: B }, (_, b) => `img-${index}-${b}`),
        latents: tf.tensor4d(lat, [B, H, W, C]),
        captionEmbeds: tf.tensor3d(rng.normalArray(B * L * D), [B, L, D]),
        captionMask: tf.tensor2d([1, 1, 0, 1, 1, 1], [B, L]),
      };
    },
    release(b: FlowBatch): void {
      src.live--;
      tf.dispose([b.latents, b.captionEmbeds, b.captionMask]);
    },
  };
  return src;
}

export function nullCaption() {
  return { embeds: tf.zeros([DIMS.L, DIMS.D]) as Tensor2D, mask: tf.tensor1d([1, 0, 0]) };
}

export function saveTiny(model: Module, dir: string): void {
  const sd = new Map([...model.stateDict()].map(([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape, data: v.data }]));
  writeSafetensors(path.join(dir, 'model', 'model.safetensors'), sd);
}

export function loadTiny(model: Module, dir: string): void {
  const ck = SafetensorsCheckpoint.open(path.join(dir, 'model', 'model.safetensors'));
  try {
    model.loadStateDict(ck, { sourceName: dir });
  } finally {
    ck.close();
  }
}
