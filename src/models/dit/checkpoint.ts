/**
 * Gradient checkpointing (activation recomputation), the counterpart of PyTorch's
 * `torch.utils.checkpoint` that diffusers applies per transformer block: the forward pass keeps only
 * a segment's inputs; the backward pass runs the segment again under a fresh tape and backpropagates
 * through it. Gradients are the same; peak memory holds one segment's activations instead of all.
 */
import { tf, Tensor, Variable } from '../../backend';

/** The engine internals touched here (tfjs-core `engine.ts`): its one active tape and `gradients`. */
interface EngineWithTape {
  state: { activeTape: unknown };
  gradients(f: () => Tensor, xs: Tensor[], dy?: Tensor, allowNoGradients?: boolean): { value: Tensor; grads: Array<Tensor | null> };
}

/**
 * Computes `f(inputs)` keeping only `inputs` for the backward pass. `variables` must list every
 * trainable variable `f` reads whose gradient the caller may want (the segment's parameters and any
 * adapters on its layers): gradients flow to them, to `inputs`, and nowhere else.
 *
 * Outside a gradient computation this is just `f(inputs)`.
 * @returns f's output (one tensor)
 */
export function recomputeInBackward(f: (inputs: Tensor[]) => Tensor, inputs: Tensor[], variables: Variable[]): Tensor {
  const n = inputs.length;
  const op = tf.customGrad((...args: unknown[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const xs = args.slice(0, n) as Tensor[];
    save(xs);
    return {
      value: f(xs),
      gradFunc: (dy: Tensor | Tensor[], saved: Tensor[]) => {
        const engine = tf.engine() as unknown as EngineWithTape;
        // A nested `gradients` call at tape depth 0 replaces and then clears the engine's single
        // active tape, which the outer backward pass still needs afterwards: put it back.
        const outerTape = engine.state.activeTape;
        try {
          const { value, grads } = engine.gradients(() => f(saved), [...saved, ...variables], dy as Tensor, true);
          value.dispose();
          const all = [...saved, ...variables];
          return grads.map((g, i) => g ?? tf.zerosLike(all[i]));
        } finally {
          engine.state.activeTape = outerTape;
        }
      },
    };
  });
  return (op as unknown as (...xs: Tensor[]) => Tensor)(...inputs, ...variables);
}
