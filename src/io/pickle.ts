/**
 * A restricted pickle virtual machine (CPython `Lib/pickle.py` opcodes, protocols 0-5), enough to read
 * what `torch.save` writes for state dicts and nothing more. It never runs code: every GLOBAL /
 * STACK_GLOBAL / INST must name an entry of the caller's allowlist (tensor reconstruction, OrderedDict,
 * storage types); anything else (os.system, builtins.eval, ...) is an error naming it, raised before
 * the call could happen. Unknown opcodes are errors naming the opcode and its byte offset.
 *
 * Python values map to JS: None -> null, bool -> boolean, int -> number (bigint beyond 2^53), float ->
 * number, str -> string, bytes -> Buffer, list and tuple -> array, dict -> Map.
 */

export class PickleError extends Error {
  constructor(readonly source: string, problem: string) {
    super(`${source}: ${problem}`);
    this.name = 'PickleError';
  }
}

/** Where opcodes come from: a whole buffer, or a buffered file cursor. */
export interface ByteSource {
  readonly pos: number;
  byte(): number;
  bytes(n: number): Buffer;
  /** Reads up to and excluding the next '\n' (protocol-0 text arguments). */
  line(): string;
}

export class BufferSource implements ByteSource {
  pos = 0;
  constructor(private readonly buf: Buffer, private readonly source: string) {}
  byte(): number {
    if (this.pos >= this.buf.length) throw new PickleError(this.source, 'pickle ends without STOP (truncated?)');
    return this.buf[this.pos++];
  }
  bytes(n: number): Buffer {
    if (n < 0 || this.pos + n > this.buf.length) throw new PickleError(this.source, `pickle needs ${n} bytes at offset ${this.pos}, past its end (truncated?)`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  line(): string {
    const end = this.buf.indexOf(0x0a, this.pos);
    if (end < 0) throw new PickleError(this.source, 'pickle text argument has no end of line');
    const s = this.buf.toString('latin1', this.pos, end);
    this.pos = end + 1;
    return s;
  }
}

/** A callable from the allowlist: receives the positional arguments of REDUCE / NEWOBJ. */
export type PyCallable = (args: unknown[]) => unknown;

/** A name resolved by GLOBAL: a callable, or a plain marker value (storage types, classes). */
export interface PyGlobal {
  module: string;
  name: string;
  call?: PyCallable;
}

export function isPyGlobal(v: unknown): v is PyGlobal {
  return typeof v === 'object' && v !== null && typeof (v as PyGlobal).module === 'string' && typeof (v as PyGlobal).name === 'string' && !(v instanceof Map) && !Array.isArray(v);
}

export interface UnpickleOptions {
  /** Resolves `module.name`; returns null to refuse it. */
  resolveGlobal(module: string, name: string): PyGlobal | null;
  /** Turns a persistent id (BINPERSID / PERSID) into a value; absent = persistent ids are an error. */
  persistentLoad?(pid: unknown): unknown;
  /** File name for messages. */
  source: string;
  /** Largest container / string we accept, as a guard against hostile sizes (default 1 GB). */
  maxBytes?: number;
}

const MARK = Symbol('mark');

/** Opcode names for messages. */
const OPNAMES: Record<number, string> = {
  0x28: 'MARK', 0x2e: 'STOP', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP', 0x46: 'FLOAT', 0x49: 'INT', 0x4a: 'BININT',
  0x4b: 'BININT1', 0x4c: 'LONG', 0x4d: 'BININT2', 0x4e: 'NONE', 0x50: 'PERSID', 0x51: 'BINPERSID', 0x52: 'REDUCE',
  0x53: 'STRING', 0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING', 0x56: 'UNICODE', 0x58: 'BINUNICODE', 0x61: 'APPEND',
  0x62: 'BUILD', 0x63: 'GLOBAL', 0x64: 'DICT', 0x7d: 'EMPTY_DICT', 0x65: 'APPENDS', 0x67: 'GET', 0x68: 'BINGET',
  0x69: 'INST', 0x6a: 'LONG_BINGET', 0x6c: 'LIST', 0x5d: 'EMPTY_LIST', 0x6f: 'OBJ', 0x70: 'PUT', 0x71: 'BINPUT',
  0x72: 'LONG_BINPUT', 0x73: 'SETITEM', 0x74: 'TUPLE', 0x29: 'EMPTY_TUPLE', 0x75: 'SETITEMS', 0x47: 'BINFLOAT',
  0x80: 'PROTO', 0x81: 'NEWOBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x85: 'TUPLE1', 0x86: 'TUPLE2',
  0x87: 'TUPLE3', 0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x8a: 'LONG1', 0x8b: 'LONG4', 0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES', 0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8', 0x8e: 'BINBYTES8', 0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS', 0x91: 'FROZENSET', 0x92: 'NEWOBJ_EX', 0x93: 'STACK_GLOBAL', 0x94: 'MEMOIZE', 0x95: 'FRAME',
  0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER',
};

/** Little-endian two's-complement bytes -> number (or bigint when not exactly representable). */
function decodeLong(b: Buffer): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
  if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** Python literal from protocol-0 INT/LONG text. */
function parseIntText(s: string, source: string): number | bigint | boolean {
  const t = s.trim().replace(/L$/, '');
  if (t === '00') return false;
  if (t === '01') return true;
  if (!/^[-+]?\d+$/.test(t)) throw new PickleError(source, `bad integer literal ${JSON.stringify(s)}`);
  const v = BigInt(t);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** Unquotes a protocol-0 STRING argument ('...' or "..." with Python escapes for the common cases). */
function parseQuoted(s: string, source: string): string {
  const q = s[0];
  if ((q !== "'" && q !== '"') || s[s.length - 1] !== q) throw new PickleError(source, `bad STRING argument ${JSON.stringify(s)}`);
  return s.slice(1, -1).replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_m, e: string) => {
    if (e[0] === 'x') return String.fromCharCode(parseInt(e.slice(1), 16));
    return ({ n: '\n', r: '\r', t: '\t', '\\': '\\', "'": "'", '"': '"' } as Record<string, string>)[e] ?? `\\${e}`;
  });
}

/** Decodes protocol-0 UNICODE's raw-unicode-escape text. */
function parseRawUnicode(s: string): string {
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, a?: string, b?: string) => String.fromCodePoint(parseInt((a ?? b)!, 16)));
}

/** Runs the pickle program in `src` to its STOP and returns the result. */
export function unpickle(src: ByteSource, opts: UnpickleOptions): unknown {
  const { source } = opts;
  const maxBytes = opts.maxBytes ?? 1 << 30;
  let stack: unknown[] = [];
  const marks: unknown[][] = [];
  const memo = new Map<number, unknown>();
  const fail = (msg: string): never => {
    throw new PickleError(source, msg);
  };
  const pop = (): unknown => {
    if (stack.length === 0) fail(`stack underflow at offset ${src.pos}`);
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail(`stack underflow at offset ${src.pos}`);
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const items = stack;
    const prev = marks.pop();
    if (!prev) fail(`MARK missing at offset ${src.pos}`);
    stack = prev!;
    return items;
  };
  const size = (n: number | bigint, what: string): number => {
    const v = Number(n);
    if (!Number.isSafeInteger(v) || v < 0 || v > maxBytes) fail(`${what} of ${n} bytes at offset ${src.pos} is out of range`);
    return v;
  };
  const global = (module: string, name: string): PyGlobal => {
    const g = opts.resolveGlobal(module, name);
    if (!g) {
      fail(`refuses to load "${module}.${name}": a checkpoint may only rebuild tensors and plain containers (tensor reconstruction, OrderedDict, storage types); this file asks for something else and may be malicious`);
    }
    return g!;
  };
  const call = (fn: unknown, args: unknown, how: string): unknown => {
    if (!isPyGlobal(fn) || !fn.call) fail(`${how}: "${isPyGlobal(fn) ? `${fn.module}.${fn.name}` : typeof fn}" cannot be called here`);
    if (!Array.isArray(args)) fail(`${how}: arguments of ${(fn as PyGlobal).module}.${(fn as PyGlobal).name} are not a tuple`);
    return (fn as PyGlobal).call!(args as unknown[]);
  };
  const setItems = (d: unknown, items: unknown[]) => {
    if (!(d instanceof Map)) fail(`SETITEM(S) on a ${Array.isArray(d) ? 'list' : typeof d}, not a dict, at offset ${src.pos}`);
    if (items.length % 2) fail(`odd number of items for SETITEMS at offset ${src.pos}`);
    for (let i = 0; i < items.length; i += 2) (d as Map<unknown, unknown>).set(items[i], items[i + 1]);
  };
  const append = (l: unknown, items: unknown[]) => {
    if (!Array.isArray(l)) fail(`APPEND(S) on a ${typeof l}, not a list, at offset ${src.pos}`);
    (l as unknown[]).push(...items);
  };

  for (;;) {
    const at = src.pos;
    const op = src.byte();
    switch (op) {
      case 0x80: { // PROTO
        const v = src.byte();
        if (v > 5) fail(`unsupported pickle protocol ${v}`);
        break;
      }
      case 0x95: src.bytes(8); break; // FRAME: framing is transparent to a sequential reader
      case 0x2e: return pop(); // STOP
      case 0x28: marks.push(stack); stack = []; break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(src.bytes(4).readInt32LE(0)); break; // BININT
      case 0x4b: stack.push(src.byte()); break; // BININT1
      case 0x4d: stack.push(src.bytes(2).readUInt16LE(0)); break; // BININT2
      case 0x8a: stack.push(decodeLong(src.bytes(src.byte()))); break; // LONG1
      case 0x8b: stack.push(decodeLong(src.bytes(size(src.bytes(4).readInt32LE(0), 'LONG4')))); break;
      case 0x49: stack.push(parseIntText(src.line(), source)); break; // INT
      case 0x4c: stack.push(parseIntText(src.line(), source)); break; // LONG
      case 0x47: stack.push(src.bytes(8).readDoubleBE(0)); break; // BINFLOAT
      case 0x46: stack.push(parseFloat(src.line())); break; // FLOAT
      case 0x58: stack.push(src.bytes(size(src.bytes(4).readUInt32LE(0), 'BINUNICODE')).toString('utf8')); break;
      case 0x8c: stack.push(src.bytes(src.byte()).toString('utf8')); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(src.bytes(size(src.bytes(8).readBigUInt64LE(0), 'BINUNICODE8')).toString('utf8')); break;
      case 0x56: stack.push(parseRawUnicode(src.line())); break; // UNICODE
      case 0x55: stack.push(src.bytes(src.byte()).toString('latin1')); break; // SHORT_BINSTRING (py2 str)
      case 0x54: stack.push(src.bytes(size(src.bytes(4).readInt32LE(0), 'BINSTRING')).toString('latin1')); break;
      case 0x53: stack.push(parseQuoted(src.line(), source)); break; // STRING
      case 0x43: stack.push(Buffer.from(src.bytes(src.byte()))); break; // SHORT_BINBYTES
      case 0x42: stack.push(Buffer.from(src.bytes(size(src.bytes(4).readUInt32LE(0), 'BINBYTES')))); break;
      case 0x8e: stack.push(Buffer.from(src.bytes(size(src.bytes(8).readBigUInt64LE(0), 'BINBYTES8')))); break;
      case 0x96: stack.push(Buffer.from(src.bytes(size(src.bytes(8).readBigUInt64LE(0), 'BYTEARRAY8')))); break;
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x8f: stack.push([]); break; // EMPTY_SET (as a list)
      // TUPLE, LIST, FROZENSET: popMark swaps `stack`, so take the items before pushing.
      case 0x74: case 0x6c: case 0x91: { const items = popMark(); stack.push(items); break; }
      case 0x85: stack.push([pop()]); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push([a, b]); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push([a, b, c]); break; } // TUPLE3
      case 0x64: { const items = popMark(); const d = new Map(); setItems(d, items); stack.push(d); break; } // DICT
      case 0x61: { const v = pop(); append(top(), [v]); break; } // APPEND
      case 0x65: { const items = popMark(); append(top(), items); break; } // APPENDS
      case 0x90: { const items = popMark(); append(top(), items); break; } // ADDITEMS
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x71: memo.set(src.byte(), top()); break; // BINPUT
      case 0x72: memo.set(src.bytes(4).readUInt32LE(0), top()); break; // LONG_BINPUT
      case 0x70: memo.set(Number(parseIntText(src.line(), source)), top()); break; // PUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: case 0x6a: case 0x67: { // BINGET, LONG_BINGET, GET
        const k = op === 0x68 ? src.byte() : op === 0x6a ? src.bytes(4).readUInt32LE(0) : Number(parseIntText(src.line(), source));
        if (!memo.has(k)) fail(`memo key ${k} missing at offset ${at}`);
        stack.push(memo.get(k));
        break;
      }
      case 0x63: { // GLOBAL
        const module = src.line();
        const name = src.line();
        stack.push(global(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail(`STACK_GLOBAL needs two strings at offset ${at}`);
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: { const args = pop(); const fn = pop(); stack.push(call(fn, args, 'REDUCE')); break; } // REDUCE
      case 0x81: { const args = pop(); const cls = pop(); stack.push(call(cls, args, 'NEWOBJ')); break; } // NEWOBJ
      case 0x92: { // NEWOBJ_EX: keyword arguments are not part of any tensor reconstruction
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!(kwargs instanceof Map) || kwargs.size) fail(`NEWOBJ_EX with keyword arguments at offset ${at} is not supported`);
        stack.push(call(cls, args, 'NEWOBJ_EX'));
        break;
      }
      case 0x69: { // INST module\nname\n: instantiate with the marked arguments
        const module = src.line();
        const name = src.line();
        const args = popMark();
        stack.push(call(global(module, name), args, 'INST'));
        break;
      }
      case 0x6f: { // OBJ: class and arguments after the mark
        const items = popMark();
        if (items.length === 0) fail(`OBJ without a class at offset ${at}`);
        stack.push(call(items[0], items.slice(1), 'OBJ'));
        break;
      }
      case 0x62: { // BUILD: state for the object below; kept only on dicts (e.g. OrderedDict._metadata)
        const state = pop();
        const obj = top();
        if (obj instanceof Map) {
          Object.defineProperty(obj, 'pickleState', { value: state, enumerable: false, configurable: true });
        } else if (state !== null && !(state instanceof Map && state.size === 0)) {
          fail(`BUILD with state on a ${Array.isArray(obj) ? 'list/tuple' : typeof obj} at offset ${at} is not supported`);
        }
        break;
      }
      case 0x51: case 0x50: { // BINPERSID, PERSID
        const pid = op === 0x51 ? pop() : src.line();
        if (!opts.persistentLoad) fail(`persistent id at offset ${at} but no storage loader`);
        stack.push(opts.persistentLoad!(pid));
        break;
      }
      default:
        fail(`pickle opcode ${OPNAMES[op] ?? `0x${op.toString(16).padStart(2, '0')}`} at offset ${at} is not supported (not used by tensor checkpoints)`);
    }
  }
}
