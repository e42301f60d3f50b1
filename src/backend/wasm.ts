/**
 * Set-up of the wasm backend under Node: both cores, and composite kernels for what wasm lacks or
 * runs slowly (./kernels/wasm).
 *
 * tfjs-backend-wasm 4.22 ships a threaded SIMD build but keeps it off under Node:
 *  1. its `WASM_HAS_MULTITHREAD_SUPPORT` flag answers false whenever `IS_NODE`;
 *  2. the pthread workers are started from a `blob:` URL, which `worker_threads.Worker` cannot load,
 *     and each worker then imports the module factory from a Blob as well;
 *  3. the C++ side sizes its thread pool as min(requested, logical cores / 2), so 2 cores give 1 thread;
 *  4. each pthread worker is `ref()`ed while it runs, so the process never exits.
 * Here: (1) the flag is forced on; (2) during start-up `worker_threads.Worker` is swapped for a class
 * that loads the worker source from a file, whose prelude points the Blob import at the package's
 * threaded-SIMD glue file; (3) `os.cpus()` reports twice the requested count during start-up;
 * (4) that class never refs its workers. The workers only run while the main thread waits inside a
 * kernel, so they never need to keep the event loop alive.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import * as wasmBackend from '@tensorflow/tfjs-backend-wasm';
import { registerWasmKernels } from './kernels/wasm';
import { registerWasmAdamW } from './kernels/wasm/adamW';
import { wasmHeap } from './kernels/wasm/heap';

// The module objects themselves (not import namespaces): their members are swapped during start-up.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const os: typeof import('os') = require('os');
// eslint-disable-next-line @typescript-eslint/no-var-requires
const workerThreads: typeof import('worker_threads') = require('worker_threads');

/** The threaded build's pool holds 8 pthread workers and its thread pool never uses more. */
const MAX_THREADS = 8;

export interface WasmOptions {
  /** XNNPACK threads; default `setWasmThreads()`'s value, else the number of cores (1..8). */
  threads?: number;
}

let defaultThreads: number | null = null;
let detail: string | null = null;

/** Sets the thread count used when the wasm backend starts (no effect once it has started). */
export function setWasmThreads(threads: number): void {
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`wasm threads must be a positive integer, got ${threads}`);
  defaultThreads = threads;
}

function coreCount(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/**
 * The pthread worker source as a file: tfjs' worker script, preceded by a prelude that resolves the
 * Blob the main thread sends (the module factory) to the package's threaded-SIMD glue file.
 */
function workerFile(): string {
  const glue = require.resolve('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js');
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { wasmWorkerContents } = require('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.worker.js') as {
    wasmWorkerContents: string;
  };
  const prelude = `URL.createObjectURL = () => ${JSON.stringify(glue)};\nURL.revokeObjectURL = () => {};\n`;
  // The exported string is a template literal whose "\n" escapes arrived as newlines; tfjs escapes
  // them back the same way before it makes its Blob.
  const source = prelude + wasmWorkerContents.replace(/\n/g, '\\n');
  const file = path.join(os.tmpdir(), `sana-tfjs-wasm-worker-${wasmBackend.version_wasm}-${process.getuid?.() ?? 0}.js`);
  if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== source) {
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, source);
    fs.renameSync(tmp, file); // atomic: parallel test workers may race here
  }
  return file;
}

/** Runs `start` with the Node shims for the threaded build in place, and removes them afterwards. */
async function withThreadShims<T>(threads: number, start: () => Promise<T>): Promise<T> {
  const file = workerFile();
  const NodeWorker = workerThreads.Worker;
  class PthreadWorker extends NodeWorker {
    constructor(url: string | URL, options?: import('worker_threads').WorkerOptions) {
      super(typeof url === 'string' && url.startsWith('blob:') ? file : url, options);
      this.unref();
    }
    override ref(): void {
      // Never keeps the process alive (see the file header, 4).
    }
  }
  const mutableThreads = workerThreads as { Worker: typeof NodeWorker };
  const cpus = os.cpus;
  mutableThreads.Worker = PthreadWorker;
  (os as { cpus: typeof os.cpus }).cpus = () => {
    const one = cpus()[0];
    return Array.from({ length: 2 * threads }, () => one);
  };
  try {
    return await start();
  } finally {
    mutableThreads.Worker = NodeWorker;
    (os as { cpus: typeof os.cpus }).cpus = cpus;
  }
}

/**
 * Starts the wasm backend with threads and registers the composite kernels; returns a detail for the
 * start-up line (`tfjs-backend-wasm 4.22.0, 2 threads, SIMD, FMA`: FMA where the products and AdamW run
 * in this package's relaxed-SIMD kernels). Leaves the current backend as it was.
 * Idempotent: thread options only take effect on the first call.
 */
export async function configureWasm(options: WasmOptions = {}): Promise<string> {
  registerWasmKernels();
  if (detail !== null && tf.engine().findBackend('wasm')) return detail;
  const requested = Math.min(MAX_THREADS, Math.max(1, Math.floor(options.threads ?? defaultThreads ?? coreCount())));
  const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) as boolean;
  const threaded = simd && requested > 1 && !tf.engine().findBackend('wasm');
  const previous = tf.engine().backendName;
  const start = async () => {
    if (!(await tf.setBackend('wasm'))) throw new Error('tfjs-backend-wasm failed to initialise');
  };
  if (threaded) {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
    wasmBackend.setThreadsCount(requested);
    await withThreadShims(requested, start);
  } else {
    await start();
  }
  // The SIMD kernels' helper threads start now, while an event loop can run their start-up.
  const started = tf.engine().findBackend('wasm');
  const heap = wasmHeap(started);
  await heap?.ready();
  registerWasmAdamW(started);
  if (previous && previous !== 'wasm') await tf.setBackend(previous);
  const threads = wasmBackend.getThreadsCount();
  detail = `tfjs-backend-wasm ${wasmBackend.version_wasm}, ${threads} thread${threads === 1 ? '' : 's'}${simd ? ', SIMD' : ''}${heap?.fusedMultiplyAdd ? ', FMA' : ''}`;
  return detail;
}
