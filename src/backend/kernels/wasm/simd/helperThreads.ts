/**
 * Worker threads that run the SIMD kernels on the wasm backend's shared heap alongside the calling
 * thread: a kernel call is split into parts (rows or batch entries of a product), the calling thread
 * runs the first and each helper one of the others, on disjoint output ranges.
 *
 * XNNPACK's own thread pool cannot run our kernels, and a message round trip per call costs more than
 * the small products. So each helper owns a control block in shared memory and sleeps in
 * `Atomics.wait` until the calling thread writes a request into it; the calling thread waits the same
 * way for the results. A helper starts taking parts once it has said it is ready: a worker's start-up
 * needs the calling thread's event loop, which a calling thread blocked in a wait never runs, so until
 * then the calling thread runs every part itself (`ready()` resolves once all are). A helper never
 * keeps the process alive (`unref`), and is stopped with it.
 */
import { Worker } from 'worker_threads';
import { SimdModule, WasmMemory } from './kernels';

/**
 * Control block, Int32 slots: request number, finished request number, kernel, argument count, ready
 * flag, arguments.
 */
const REQUEST = 0;
const FINISHED = 1;
const KERNEL = 2;
const COUNT = 3;
const READY = 4;
const ARGS = 5;
const MAX_ARGS = 28;
/** Written to KERNEL by a helper whose kernel threw (a trap: out-of-bounds address). */
const FAILED = -1;

/** The helper's program (plain JavaScript: a worker evaluates it as is). */
const HELPER_SOURCE = `
const { workerData, parentPort } = require('worker_threads');
const { bytes, memory, control, names } = workerData;
const kernels = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports;
const ctl = new Int32Array(control);
Atomics.store(ctl, ${READY}, 1);
parentPort.postMessage('ready');
let seen = 0;
for (;;) {
  Atomics.wait(ctl, ${REQUEST}, seen);
  seen = Atomics.load(ctl, ${REQUEST});
  try {
    kernels[names[ctl[${KERNEL}]]](...ctl.subarray(${ARGS}, ${ARGS} + ctl[${COUNT}]));
  } catch (e) {
    ctl[${KERNEL}] = ${FAILED};
  }
  Atomics.store(ctl, ${FINISHED}, seen);
  Atomics.notify(ctl, ${FINISHED});
}
`;

export class HelperThreads {
  private readonly controls: Int32Array[] = [];
  private readonly started: Array<Promise<void>> = [];
  private request = 0;

  /**
   * Starts `count` helpers, each instantiating `module` against `memory` (which must be shared);
   * `names` are the kernels calls may name.
   */
  constructor(module: SimdModule, memory: WasmMemory, private readonly names: readonly string[], count: number) {
    for (let i = 0; i < count; i++) {
      const control = new SharedArrayBuffer(4 * (ARGS + MAX_ARGS));
      const worker = new Worker(HELPER_SOURCE, { eval: true, workerData: { bytes: module.bytes, memory, control, names } });
      // Kept referenced until ready, so that awaiting `ready()` holds the process open.
      this.started.push(new Promise<void>((resolve, reject) => {
        worker.once('message', () => {
          worker.unref();
          resolve();
        });
        worker.once('error', (e) => {
          worker.unref();
          reject(e);
        });
      }));
      this.controls.push(new Int32Array(control));
    }
  }

  /** Resolves once every helper is ready; rejects if one failed to start. */
  async ready(): Promise<void> {
    await Promise.all(this.started);
  }

  /** Threads a call can be split over: the helpers and the calling thread. */
  get threads(): number {
    return this.controls.length + 1;
  }

  /**
   * Runs kernel `name` once per part, concurrently: the first parts on the ready helpers (one each), the
   * rest (at least one) on the calling thread. At most `threads` parts. Returns when all have finished;
   * throws if any kernel did.
   */
  run(name: string, parts: number[][], runHere: (args: number[]) => void): void {
    if (parts.length > this.threads) throw new Error(`helper threads: ${parts.length} parts for ${this.threads} threads`);
    const kernel = this.names.indexOf(name);
    if (kernel < 0) throw new Error(`helper threads: unknown kernel "${name}"`);
    const request = ++this.request;
    const ready = this.controls.filter((ctl) => Atomics.load(ctl, READY) === 1);
    const busy = ready.slice(0, parts.length - 1);
    const mine = parts.slice(busy.length);
    busy.forEach((ctl, i) => {
      const args = parts[i];
      if (args.length > MAX_ARGS) throw new Error(`helper threads: ${args.length} arguments (at most ${MAX_ARGS})`);
      ctl[KERNEL] = kernel;
      ctl[COUNT] = args.length;
      ctl.set(args, ARGS); // addresses above 2^31 wrap to the same 32 bits
      Atomics.store(ctl, REQUEST, request);
      Atomics.notify(ctl, REQUEST);
    });
    let error: unknown = null;
    try {
      mine.forEach(runHere);
    } catch (e) {
      error = e;
    }
    let failed = false;
    for (const ctl of busy) {
      // Wait on the value just compared: re-reading it for the wait could see `request` and sleep forever.
      for (let seen = Atomics.load(ctl, FINISHED); seen !== request; seen = Atomics.load(ctl, FINISHED)) Atomics.wait(ctl, FINISHED, seen);
      if (ctl[KERNEL] === FAILED) failed = true;
    }
    if (error) throw error;
    if (failed) throw new Error(`helper threads: kernel "${name}" failed on a helper thread`);
  }
}
