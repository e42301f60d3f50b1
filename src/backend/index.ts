/**
 * The only module that imports `@tensorflow/*`. Everything else gets `tf` from here.
 *
 * Backend choice at run time, fastest first: tfjs-node-gpu ("tensorflow" on CUDA), tfjs-node
 * ("tensorflow" on CPU), wasm, then the pure-JS "cpu" kernels. The native packages are optional
 * dependencies: they are tried with `require` and skipped when absent or broken.
 */
import * as tf from '@tensorflow/tfjs';
import { configureWasm } from './wasm';
import { registerTensorflowKernels } from './kernels/tensorflow';
import { registerNativeBiasAdd } from './biasAdd';
import { registerNativeAdamW } from './fusedAdamW';

// Production mode: no debug checks, and no console advice from tfjs about installing tfjs-node.
tf.env().set('PROD', true);

export { tf };
export { biasAdd } from './biasAdd';
export { fusedAdamW } from './fusedAdamW';
export type { AdamWStep } from './fusedAdamW';
export { positiveMask } from './positiveMask';
export type Tensor = tf.Tensor;
export type Tensor1D = tf.Tensor1D;
export type Tensor2D = tf.Tensor2D;
export type Tensor3D = tf.Tensor3D;
export type Tensor4D = tf.Tensor4D;
export type Scalar = tf.Scalar;
export type Variable = tf.Variable;
export type Rank = tf.Rank;
export type DataType = tf.DataType;
export type TypedArray = Float32Array | Int32Array | Uint8Array;

/** Names a user can ask for (`--backend`, `backend:` in a config). */
export const BACKEND_NAMES = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export interface BackendInfo {
  /** What was asked for or chosen. */
  name: BackendName;
  /** tfjs' own backend name (`tensorflow`, `wasm`, `cpu`). */
  tfName: string;
  /** Human-readable detail: versions, threads. */
  detail: string;
  /** Why this one was chosen (or why faster ones were skipped). */
  reason: string;
}

export class BackendUnavailableError extends Error {}

const HOW_TO_GET: Record<BackendName, string> = {
  'tensorflow-gpu':
    'install @tensorflow/tfjs-node-gpu (needs CUDA and network access to its binary download), e.g. `npm install @tensorflow/tfjs-node-gpu`',
  tensorflow:
    'install @tensorflow/tfjs-node, or build it against a local libtensorflow with `npm run setup:native` (see README, "Native TensorFlow")',
  wasm: 'reinstall dependencies: @tensorflow/tfjs-backend-wasm is a regular dependency (`npm install`)',
  cpu: 'the cpu backend is always available',
};

let current: BackendInfo | null = null;

function isBackendName(s: string): s is BackendName {
  return (BACKEND_NAMES as readonly string[]).includes(s);
}

/** Parses a user string (`--backend`) into a backend name, with an error that lists the choices. */
export function parseBackendName(s: string): BackendName {
  const v = s === 'node' || s === 'tfjs-node' ? 'tensorflow' : s === 'gpu' ? 'tensorflow-gpu' : s;
  if (!isBackendName(v)) {
    throw new BackendUnavailableError(`unknown backend "${s}": expected one of ${BACKEND_NAMES.join(', ')}`);
  }
  return v;
}

function packageVersion(pkg: string): string {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return require(`${pkg}/package.json`).version as string;
  } catch {
    return '?';
  }
}

/** Tries to load a native binding; returns an error message instead of throwing. */
function tryRequire(pkg: string): string | null {
  try {
    require(pkg);
    return null;
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    return /Cannot find module/.test(msg) && msg.includes(pkg) ? `${pkg} not installed` : `${pkg} failed to load: ${msg}`;
  }
}

/**
 * TensorFlow settings read from the environment when the library loads; a value the user set wins.
 * oneDNN kernels: measured ~9% faster training steps on the bench config (TensorFlow turns them on by
 * default only on some Intel CPUs). Log level 1: TensorFlow's start-up INFO lines (CPU features, oneDNN
 * notice) stay off the console; warnings and errors still show.
 */
function configureNativeEnvironment(): void {
  process.env.TF_ENABLE_ONEDNN_OPTS ??= '1';
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '1';
}

async function activate(name: BackendName): Promise<BackendInfo> {
  switch (name) {
    case 'tensorflow-gpu':
    case 'tensorflow': {
      const pkg = name === 'tensorflow-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
      configureNativeEnvironment();
      const err = tryRequire(pkg);
      if (err) throw new BackendUnavailableError(`backend ${name} is not available (${err}): ${HOW_TO_GET[name]}`);
      if (!(await tf.setBackend('tensorflow'))) {
        throw new BackendUnavailableError(`backend ${name}: tfjs could not initialise the tensorflow backend`);
      }
      registerTensorflowKernels();
      registerNativeBiasAdd();
      registerNativeAdamW();
      const tfVersion = (tf.backend() as unknown as { binding?: { TF_Version?: string } }).binding?.TF_Version ?? '?';
      const onednn = process.env.TF_ENABLE_ONEDNN_OPTS !== '0' ? ', oneDNN' : '';
      return { name, tfName: 'tensorflow', detail: `${pkg.replace('@tensorflow/', '')} ${packageVersion(pkg)}, TF ${tfVersion}${onednn}`, reason: '' };
    }
    case 'wasm': {
      const detail = await configureWasm();
      if (!(await tf.setBackend('wasm'))) throw new BackendUnavailableError(`backend wasm failed to initialise: ${HOW_TO_GET.wasm}`);
      return { name, tfName: 'wasm', detail, reason: '' };
    }
    case 'cpu':
      await tf.setBackend('cpu');
      return { name, tfName: 'cpu', detail: `tfjs ${packageVersion('@tensorflow/tfjs-core')} pure JS`, reason: '' };
  }
}

/**
 * Selects and initialises the backend. With `requested`, that one or an error saying how to get it;
 * without, the fastest that works. Idempotent for the same request.
 */
export async function initBackend(requested?: BackendName | string): Promise<BackendInfo> {
  if (requested !== undefined) {
    const name = parseBackendName(requested);
    if (current && current.name === name) return current;
    const info = await activate(name);
    info.reason = 'requested';
    current = info;
    return info;
  }
  if (current) return current;
  const skipped: string[] = [];
  for (const name of BACKEND_NAMES) {
    try {
      const info = await activate(name);
      info.reason = skipped.length ? skipped.join('; ') : 'fastest available';
      current = info;
      return info;
    } catch (e) {
      skipped.push((e as Error).message.replace(/^backend \S+ is not available \((.*?)\):.*$/, '$1'));
    }
  }
  throw new BackendUnavailableError('no tfjs backend could be initialised');
}

/** The backend chosen by `initBackend`, or null before it. */
export function currentBackend(): BackendInfo | null {
  return current;
}

/** One line for the console: `backend: wasm (2 threads) — tfjs-node not installed`. */
export function describeBackend(info: BackendInfo): string {
  return `backend: ${info.tfName} (${info.detail})${info.reason ? ` — ${info.reason}` : ''}`;
}
