/**
 * A small WebAssembly binary writer: enough to write a few numeric loops (i32 addressing, f32 scalars
 * and f32x4 SIMD) that work directly on the wasm backend's heap by importing its memory. It writes the
 * binary format by hand (no toolchain at install or run time): a module with one imported memory and
 * functions whose parameters are all i32.
 *
 * Only the instructions the kernels use are here. Encoding follows the WebAssembly core spec
 * (sections, LEB128 integers) and the fixed-width SIMD proposal (0xfd-prefixed opcodes).
 */

const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    const done = (n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

function name(s: string): number[] {
  const bytes = [...Buffer.from(s, 'utf8')];
  return [...uleb(bytes.length), ...bytes];
}

function vector(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

/** A local variable (parameters first, then declared locals), as the index instructions take. */
export type Local = number;

/**
 * The body of one function. Parameters are locals 0..params-1 (all i32); `i32()`, `f32()` and `v128()`
 * declare more. Instructions append to the body in order; structured control (`block`, `loop`) takes
 * a callback for its contents so that every `end` is written.
 */
export class FunctionBuilder {
  readonly code: number[] = [];
  private readonly localTypes: number[] = [];

  constructor(readonly exportName: string, readonly params: number) {}

  private declare(type: number): Local {
    this.localTypes.push(type);
    return this.params + this.localTypes.length - 1;
  }

  i32(): Local {
    return this.declare(I32);
  }

  f32(): Local {
    return this.declare(F32);
  }

  v128(): Local {
    return this.declare(V128);
  }

  private op(...bytes: number[]): this {
    this.code.push(...bytes);
    return this;
  }

  private simd(opcode: number, ...rest: number[]): this {
    return this.op(0xfd, ...uleb(opcode), ...rest);
  }

  // Locals and constants.
  get(l: Local): this { return this.op(0x20, ...uleb(l)); }
  set(l: Local): this { return this.op(0x21, ...uleb(l)); }
  tee(l: Local): this { return this.op(0x22, ...uleb(l)); }
  const(n: number): this { return this.op(0x41, ...sleb(n | 0)); }

  // i32 arithmetic and comparisons (unsigned where it matters: addresses exceed 2^31 on a 4 GiB heap).
  add(): this { return this.op(0x6a); }
  sub(): this { return this.op(0x6b); }
  mul(): this { return this.op(0x6c); }
  shl(): this { return this.op(0x74); }
  shrU(): this { return this.op(0x76); }
  eqz(): this { return this.op(0x45); }
  ltU(): this { return this.op(0x49); }
  and(): this { return this.op(0x71); }
  geU(): this { return this.op(0x4f); }
  /** [x, y, condition] -> condition ? x : y */
  select(): this { return this.op(0x1b); }

  // f32 scalars: memory at the address on the stack plus a constant byte offset.
  f32Load(offset = 0): this { return this.op(0x2a, 2, ...uleb(offset)); }
  f32Store(offset = 0): this { return this.op(0x38, 2, ...uleb(offset)); }
  f32Add(): this { return this.op(0x92); }
  f32Sub(): this { return this.op(0x93); }
  f32Mul(): this { return this.op(0x94); }
  f32Div(): this { return this.op(0x95); }
  f32Sqrt(): this { return this.op(0x91); }
  /** The i32 on the stack read as the bits of an f32 (how f32 arguments reach these i32-only functions). */
  f32FromBits(): this { return this.op(0xbe); }
  f32Zero(): this { return this.op(0x43, 0, 0, 0, 0); }
  i32Load(offset = 0): this { return this.op(0x28, 2, ...uleb(offset)); }
  i32Store(offset = 0): this { return this.op(0x36, 2, ...uleb(offset)); }

  // f32x4 (128-bit) SIMD. Loads and stores need only 4-byte alignment (the alignment hint says so).
  v128Load(offset = 0): this { return this.simd(0x00, 2, ...uleb(offset)); }
  v128Store(offset = 0): this { return this.simd(0x0b, 2, ...uleb(offset)); }
  v128Zero(): this { return this.simd(0x0c, ...new Array<number>(16).fill(0)); }
  f32x4Splat(): this { return this.simd(0x13); }
  /** Picks four f32 lanes from [x (lanes 0-3), y (lanes 4-7)] on the stack. */
  f32x4Shuffle(lanes: [number, number, number, number]): this {
    return this.simd(0x0d, ...lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3]));
  }
  f32x4Lane(lane: number): this { return this.simd(0x1f, lane); }
  f32x4Add(): this { return this.simd(0xe4); }
  f32x4Sub(): this { return this.simd(0xe5); }
  f32x4Mul(): this { return this.simd(0xe6); }
  f32x4Div(): this { return this.simd(0xe7); }
  f32x4Sqrt(): this { return this.simd(0xe3); }
  /**
   * [a, b, c] -> a * b + c, fused or not as the hardware does it (relaxed SIMD: results may differ in
   * the last bit between machines, never between runs on one).
   */
  f32x4RelaxedMadd(): this { return this.simd(0x105); }

  // Control.
  block(body: () => void): this {
    this.op(0x02, 0x40);
    body();
    return this.op(0x0b);
  }

  loop(body: () => void): this {
    this.op(0x03, 0x40);
    body();
    return this.op(0x0b);
  }

  /** Runs `body` when the i32 on the stack is non-zero. */
  when(body: () => void): this {
    this.op(0x04, 0x40);
    body();
    return this.op(0x0b);
  }

  br(depth: number): this { return this.op(0x0c, ...uleb(depth)); }
  brIf(depth: number): this { return this.op(0x0d, ...uleb(depth)); }

  /**
   * `for (v = from; v < to; v += step) body()`, unsigned compare; `from`, `to` and `step` are locals
   * or constants (numbers). Written as block { loop { br_if exit; body; v += step; br loop } }, so a
   * `br(1)` inside the body (outside nested blocks) leaves the loop.
   */
  for(v: Local, from: Local | { c: number }, to: Local | { c: number }, step: Local | { c: number }, body: () => void): this {
    const push = (x: Local | { c: number }) => (typeof x === 'number' ? this.get(x) : this.const(x.c));
    push(from).set(v);
    return this.block(() => {
      this.loop(() => {
        this.get(v);
        push(to);
        this.geU().brIf(1);
        body();
        this.get(v);
        push(step);
        this.add().set(v).br(0);
      });
    });
  }

  /** `l += x` for a local or constant x. */
  inc(l: Local, x: Local | { c: number }): this {
    this.get(l);
    if (typeof x === 'number') this.get(x);
    else this.const(x.c);
    return this.add().set(l);
  }

  /** The function's code entry: local declarations, then the body. */
  encode(): number[] {
    const groups: number[][] = [];
    for (const t of this.localTypes) {
      const last = groups[groups.length - 1];
      if (last && last[1] === t) last[0]++;
      else groups.push([1, t]);
    }
    const body = [...vector(groups.map(([count, type]) => [...uleb(count), type])), ...this.code, 0x0b];
    return [...uleb(body.length), ...body];
  }
}

/**
 * A module importing memory `env.memory` and exporting each function under its name. All functions
 * take i32 parameters and return nothing. A shared memory must declare its maximum size (in 64 KiB
 * pages), at least that of the memory it will be given.
 */
export function assembleModule(functions: FunctionBuilder[], memory: { shared: boolean; maxPages?: number }): Uint8Array {
  const arities = [...new Set(functions.map((f) => f.params))];
  const types = section(1, vector(arities.map((n) => [0x60, ...vector(new Array<number[]>(n).fill([I32])), 0])));
  const max = memory.maxPages === undefined ? [] : uleb(memory.maxPages);
  const limits = [(memory.shared ? 0x02 : 0) | (max.length > 0 ? 0x01 : 0), ...uleb(1), ...max];
  const imports = section(2, vector([[...name('env'), ...name('memory'), 0x02, ...limits]]));
  const funcs = section(3, vector(functions.map((f) => uleb(arities.indexOf(f.params)))));
  const exports = section(7, vector(functions.map((f, i) => [...name(f.exportName), 0x00, ...uleb(i)])));
  const code = section(10, vector(functions.map((f) => f.encode())));
  return Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...types, ...imports, ...funcs, ...exports, ...code]);
}
