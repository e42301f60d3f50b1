#!/usr/bin/env node
/**
 * Builds `@tensorflow/tfjs-node` against a TensorFlow library found on this machine.
 *
 * tfjs-node's own install script downloads a prebuilt libtensorflow from Google's CDN; where that is
 * unreachable the install fails and npm drops the optional dependency. The `tensorflow-cpu` Python
 * wheel ships `libtensorflow_cc.so.2`, which exports the whole C API the binding calls, plus the C
 * headers; built against it, the binding reports the wheel's TensorFlow version.
 *
 * Where the library comes from (first found wins):
 *   1. `--libtensorflow DIR`: a wheel's `tensorflow/` folder, or a libtensorflow C archive (lib/, include/);
 *   2. the cache of an earlier run (`--cache DIR`, default ~/.cache/sana-tfjs);
 *   3. an installed `tensorflow` Python package;
 *   4. `--wheel FILE`, or `python3 -m pip download --no-deps tensorflow-cpu` from pip's configured index
 *      (about 270 MB; the library and headers are unpacked into the cache, the wheel is deleted).
 * Then it unpacks the tfjs-node tarball (`npm pack`) and whichever of its dependencies are missing at the
 * places package-lock.json records, puts the library and headers into tfjs-node's `deps/`, links the
 * names its binding.gyp links against, rebuilds the addon with node-gyp, and loads it once in a child
 * process to check it.
 *
 *   npm run setup:native [-- --force | --check | --wheel FILE | --libtensorflow DIR | --cache DIR]
 *   node scripts/setup-native.js --auto     (postinstall: never fails; skips quickly when nothing is found;
 *                                            downloads the wheel only with SANA_NATIVE_DOWNLOAD=1)
 *
 * Linux x86-64 only (the wheel's library is built for it). Plain Node, no dependencies.
 */
'use strict';

const cp = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const TFJS_NODE = '@tensorflow/tfjs-node';
const TFJS_NODE_DIR = path.join(ROOT, 'node_modules', TFJS_NODE);
/** tfjs-node's install script looks for this file to decide that libtensorflow is already in place. */
const TFJS_NODE_LIB_NAME = 'libtensorflow.so.2.9.1';
const PIP_SPEC = 'tensorflow-cpu';
/** Headers the binding includes, with what they include in turn (paths inside a wheel's include/). */
const HEADER_DIRS = ['tensorflow/c', 'tensorflow/core/platform', 'tsl', 'xla/tsl'];
const REQUIRED_HEADERS = ['tensorflow/c/c_api.h', 'tensorflow/c/eager/c_api.h'];

class SetupError extends Error {}

// ---------------------------------------------------------------------------------------------------
// Small helpers

/** Set by --auto: the output of pip and node-gyp is kept back unless they fail. */
let quiet = false;
function say(msg) {
  console.log(`setup-native: ${msg}`);
}
function detail(msg) {
  console.log(`  ${msg}`);
}

function elapsed(t0) {
  return `${((Date.now() - t0) / 1000).toFixed(1)} s`;
}

/** Runs a command; returns stdout. Throws a SetupError with the tail of its output when it fails. */
function run(cmd, args, opts = {}) {
  const res = cp.spawnSync(cmd, args, {
    cwd: opts.cwd || ROOT,
    env: opts.env || process.env,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    timeout: opts.timeoutMs,
    stdio: opts.inherit && !quiet ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'],
  });
  const okCodes = opts.okCodes || [0];
  if (res.error || !okCodes.includes(res.status)) {
    const why = res.error ? res.error.message : `exit code ${res.status}`;
    const tail = `${res.stdout || ''}${res.stderr || ''}`.trim().split('\n').slice(-12).join('\n');
    throw new SetupError(`\`${path.basename(cmd)} ${args.slice(0, 3).join(' ')} ...\` failed (${why})${tail ? `:\n${tail}` : ''}`);
  }
  return res.stdout || '';
}

function which(name) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not in this directory
    }
  }
  return null;
}

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

/** Hard-links `src` to `dst` (no copy of ~800 MB when both lie on one file system), else copies. */
function linkOrCopy(src, dst) {
  fs.rmSync(dst, { force: true });
  try {
    fs.linkSync(src, dst);
  } catch {
    fs.copyFileSync(src, dst);
  }
}

function symlink(target, linkPath) {
  fs.rmSync(linkPath, { force: true });
  fs.symlinkSync(target, linkPath);
}

function compareVersions(a, b) {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] || 0) - (pb[i] || 0);
    if (d) return d;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------------
// Arguments

function parseArgs(argv) {
  const opts = { auto: false, force: false, check: false, wheel: null, libDir: null, cacheDir: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new SetupError(`${a} needs a value`);
      return path.resolve(argv[++i]);
    };
    if (a === '--auto') opts.auto = true;
    else if (a === '--force') opts.force = true;
    else if (a === '--check') opts.check = true;
    else if (a === '--wheel') opts.wheel = value();
    else if (a === '--libtensorflow') opts.libDir = value();
    else if (a === '--cache') opts.cacheDir = value();
    else if (a === '--help' || a === '-h') opts.help = true;
    else throw new SetupError(`unknown option ${a} (try --help)`);
  }
  if (!opts.cacheDir) {
    const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
    opts.cacheDir = path.join(base, 'sana-tfjs');
  }
  return opts;
}

const HELP = `Builds @tensorflow/tfjs-node against a local TensorFlow library (see README, "Native TensorFlow").

usage: npm run setup:native [-- OPTIONS]
  --force               rebuild even when tfjs-node already loads
  --check               only report whether tfjs-node loads, and which TensorFlow it uses
  --wheel FILE          take the library from this tensorflow(-cpu) wheel
  --libtensorflow DIR   take it from this folder (a wheel's tensorflow/ folder or a libtensorflow archive)
  --cache DIR           where unpacked libraries are kept between installs (default ~/.cache/sana-tfjs)
  --auto                mode for postinstall: never fail, skip quickly when nothing is found`;

// ---------------------------------------------------------------------------------------------------
// Finding a library

/**
 * Describes a TensorFlow library folder, or null when `dir` holds none. Two layouts: a wheel's
 * `tensorflow/` folder (libtensorflow_cc.so.2, include/) and a libtensorflow C archive (lib/, include/).
 */
function inspectLibDir(dir) {
  const pick = (names) => names.map((n) => path.join(dir, n)).find((p) => fs.existsSync(p)) || null;
  const cc = pick(['libtensorflow_cc.so.2', 'lib/libtensorflow_cc.so.2', 'lib/libtensorflow.so.2', 'libtensorflow.so.2']);
  const framework = pick(['libtensorflow_framework.so.2', 'lib/libtensorflow_framework.so.2']);
  const include = path.join(dir, 'include');
  if (!cc || !framework) return null;
  if (!REQUIRED_HEADERS.every((h) => fs.existsSync(path.join(include, h)))) return null;
  let version = '?';
  try {
    version = readJson(path.join(dir, 'sana-source.json')).version;
  } catch {
    const m = /tensorflow(?:_cpu)?-(\d+\.\d+\.\d+)/.exec(dir);
    if (m) version = m[1];
  }
  return { dir, cc, framework, include, version };
}

/** Unpacked libraries kept by earlier runs, newest version first. */
function cachedLibs(cacheDir) {
  if (!fs.existsSync(cacheDir)) return [];
  return fs
    .readdirSync(cacheDir)
    .filter((n) => /^libtensorflow-\d+\.\d+\.\d+$/.test(n))
    .sort((a, b) => compareVersions(b.slice(14), a.slice(14)))
    .map((n) => inspectLibDir(path.join(cacheDir, n)))
    .filter(Boolean);
}

function findPython() {
  return which('python3') || which('python');
}

/** The folder of an installed `tensorflow` Python package, located without importing it. */
function installedPythonTensorflow(python) {
  const code = [
    'import importlib.util, importlib.metadata, json',
    "s = importlib.util.find_spec('tensorflow')",
    'v = None',
    "for d in ('tensorflow-cpu', 'tensorflow', 'tf-nightly-cpu', 'tf-nightly'):",
    '    try:',
    '        v = importlib.metadata.version(d); break',
    '    except Exception: pass',
    "print(json.dumps({'dirs': list(s.submodule_search_locations) if s and s.submodule_search_locations else [], 'version': v}))",
  ].join('\n');
  try {
    const out = JSON.parse(run(python, ['-c', code], { timeoutMs: 30000 }));
    for (const dir of out.dirs) {
      const lib = inspectLibDir(dir);
      if (lib) return { ...lib, version: out.version || lib.version };
    }
  } catch {
    // no usable Python
  }
  return null;
}

/** Downloads the tensorflow-cpu wheel with pip into `destDir`; returns its path. */
function pipDownload(python, destDir, auto) {
  fs.mkdirSync(destDir, { recursive: true });
  const args = ['-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--disable-pip-version-check', '-d', destDir];
  // Be brief where no index can serve it: one try, short time-outs.
  if (auto) args.push('--timeout', '20', '--retries', '1', '--progress-bar', 'off');
  args.push(PIP_SPEC);
  run(python, args, { inherit: !auto, timeoutMs: 30 * 60 * 1000 });
  const wheel = fs.readdirSync(destDir).find((n) => /^tensorflow_cpu-.*\.whl$/.test(n));
  if (!wheel) throw new SetupError(`pip reported success but left no tensorflow_cpu wheel in ${destDir}`);
  return path.join(destDir, wheel);
}

/** Unpacks the library and headers of a wheel into `<cacheDir>/libtensorflow-<version>`. */
function unpackWheel(wheel, cacheDir, python) {
  const m = /^tensorflow(?:_cpu)?-(\d+\.\d+\.\d+)/.exec(path.basename(wheel));
  if (!m) throw new SetupError(`${wheel} does not look like a tensorflow or tensorflow-cpu wheel`);
  const version = m[1];
  const final = path.join(cacheDir, `libtensorflow-${version}`);
  const partial = `${final}.partial`;
  fs.rmSync(partial, { recursive: true, force: true });
  fs.mkdirSync(partial, { recursive: true });
  const members = ['tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2'];
  const headerGlobs = HEADER_DIRS.map((d) => `tensorflow/include/${d}/*`);
  const unzip = which('unzip');
  if (unzip) {
    // Exit code 11 is "some pattern matched nothing" (header folders vary a little between versions).
    run(unzip, ['-q', '-o', wheel, ...members, ...headerGlobs, '-d', partial], { okCodes: [0, 11] });
  } else if (python) {
    const code = [
      'import sys, zipfile, fnmatch',
      'wheel, dest, pats = sys.argv[1], sys.argv[2], sys.argv[3:]',
      'with zipfile.ZipFile(wheel) as z:',
      '    z.extractall(dest, [n for n in z.namelist() if any(fnmatch.fnmatch(n, p) for p in pats)])',
    ].join('\n');
    run(python, ['-c', code, wheel, partial, ...members, ...headerGlobs]);
  } else {
    throw new SetupError('neither `unzip` nor Python is available to unpack the wheel');
  }
  const inner = path.join(partial, 'tensorflow');
  if (!inspectLibDir(inner)) throw new SetupError(`${path.basename(wheel)} lacks libtensorflow_cc.so.2 or the C headers`);
  fs.writeFileSync(path.join(inner, 'sana-source.json'), JSON.stringify({ version, wheel: path.basename(wheel) }) + '\n');
  fs.rmSync(final, { recursive: true, force: true });
  fs.renameSync(inner, final);
  fs.rmSync(partial, { recursive: true, force: true });
  return inspectLibDir(final);
}

/** Finds (or fetches) a library; returns `{lib, source}` or throws a SetupError that says what was tried. */
function findLibrary(opts) {
  if (opts.libDir) {
    const lib = inspectLibDir(opts.libDir);
    if (!lib) throw new SetupError(`${opts.libDir} holds no libtensorflow_cc.so.2 / libtensorflow_framework.so.2 with include/tensorflow/c`);
    return { lib, source: opts.libDir };
  }
  if (!opts.wheel) {
    const cached = cachedLibs(opts.cacheDir)[0];
    if (cached) return { lib: cached, source: `cache ${cached.dir}` };
  }
  const python = findPython();
  if (!opts.wheel && python) {
    const installed = installedPythonTensorflow(python);
    if (installed) return { lib: installed, source: `installed Python package ${installed.dir}` };
  }
  let wheel = opts.wheel;
  let downloaded = false;
  if (!wheel) {
    if (!python) throw new SetupError('no TensorFlow library found: no cached one, and no Python to ask pip for tensorflow-cpu');
    // A 270 MB download does not belong in every `npm install`; SANA_NATIVE_DOWNLOAD=1 allows it there.
    if (opts.auto && process.env.SANA_NATIVE_DOWNLOAD !== '1') {
      throw new SetupError(`no TensorFlow library found locally (set SANA_NATIVE_DOWNLOAD=1 to let install fetch ${PIP_SPEC} with pip)`);
    }
    const t0 = Date.now();
    say(`downloading the ${PIP_SPEC} wheel with pip (about 270 MB) ...`);
    try {
      wheel = pipDownload(python, path.join(opts.cacheDir, 'download'), opts.auto);
    } catch (e) {
      throw new SetupError(`no TensorFlow library found: pip could not fetch ${PIP_SPEC} (${e.message.split('\n').slice(-1)[0]})`);
    }
    downloaded = true;
    detail(`${path.basename(wheel)} in ${elapsed(t0)}`);
  }
  const t0 = Date.now();
  const lib = unpackWheel(wheel, opts.cacheDir, python);
  detail(`unpacked libtensorflow ${lib.version} into ${lib.dir} in ${elapsed(t0)}`);
  if (downloaded) fs.rmSync(wheel, { force: true });
  return { lib, source: path.basename(wheel) };
}

// ---------------------------------------------------------------------------------------------------
// Installing tfjs-node and its dependencies

/**
 * Entries of package-lock.json's `packages` that tfjs-node needs at run time and at build time: the
 * closure of its dependencies under Node's resolution, over the paths the lockfile records.
 * Returns `[{path, name, version}]` (paths relative to the project root), tfjs-node first.
 */
function dependencyClosure(lockPackages, start) {
  const resolve = (from, name) => {
    let dir = from;
    for (;;) {
      const candidate = `${dir ? `${dir}/` : ''}node_modules/${name}`;
      if (lockPackages[candidate]) return candidate;
      if (!dir) return null;
      const i = dir.lastIndexOf('/node_modules/');
      dir = i < 0 ? '' : dir.slice(0, i);
    }
  };
  const seen = new Set();
  const order = [];
  const queue = [start];
  while (queue.length) {
    const p = queue.shift();
    if (seen.has(p)) continue;
    seen.add(p);
    const entry = lockPackages[p];
    if (!entry) throw new SetupError(`package-lock.json has no entry ${p}`);
    order.push({ path: p, name: entry.name || p.slice(p.lastIndexOf('node_modules/') + 13), version: entry.version });
    for (const dep of Object.keys({ ...entry.dependencies, ...entry.optionalDependencies })) {
      const r = resolve(p, dep);
      if (r) queue.push(r);
      else if (!(entry.optionalDependencies && dep in entry.optionalDependencies)) {
        throw new SetupError(`package-lock.json resolves no ${dep} for ${p}`);
      }
    }
  }
  return order;
}

/** The N-API build version node-pre-gyp picks: the highest listed one this Node supports. */
function napiBuildVersion(binary, nodeNapi) {
  const ok = (binary.napi_versions || []).map(Number).filter((v) => v <= nodeNapi);
  if (!ok.length) throw new SetupError(`tfjs-node supports N-API ${binary.napi_versions}, this Node ${nodeNapi}`);
  return Math.max(...ok);
}

function npmCommand() {
  const execPath = process.env.npm_execpath;
  if (execPath && /\.c?js$/.test(execPath) && /npm/.test(path.basename(execPath))) return [process.execPath, [execPath]];
  return ['npm', []];
}

/** `npm pack`s the given `name@version` specs into `destDir`; returns a map spec -> tarball path. */
function npmPack(specs, destDir) {
  fs.mkdirSync(destDir, { recursive: true });
  const [cmd, pre] = npmCommand();
  const out = run(cmd, [...pre, 'pack', '--json', '--silent', '--pack-destination', destDir, ...specs], { timeoutMs: 10 * 60 * 1000 });
  const files = new Map();
  for (const p of JSON.parse(out.slice(out.indexOf('[')))) files.set(`${p.name}@${p.version}`, path.join(destDir, p.filename));
  return files;
}

function unpackTarball(tgz, dest) {
  fs.rmSync(dest, { recursive: true, force: true });
  fs.mkdirSync(dest, { recursive: true });
  run('tar', ['-xzf', tgz, '-C', dest, '--strip-components=1', '--no-same-owner']);
}

/** Puts tfjs-node and whichever of its dependencies are absent into node_modules. */
function installPackages(opts) {
  const lockFile = path.join(ROOT, 'package-lock.json');
  if (!fs.existsSync(lockFile)) throw new SetupError('package-lock.json is missing: run `npm install` first');
  const lock = readJson(lockFile).packages;
  const start = `node_modules/${TFJS_NODE}`;
  if (!lock || !lock[start]) throw new SetupError(`package-lock.json records no ${TFJS_NODE}: run \`npm install\` first`);
  const core = lock['node_modules/@tensorflow/tfjs-core'];
  if (core && core.version !== lock[start].version) {
    throw new SetupError(`${TFJS_NODE} ${lock[start].version} needs @tensorflow/tfjs-core ${lock[start].version}, the project has ${core.version}`);
  }
  const needed = dependencyClosure(lock, start);
  const missing = needed.filter((n) => {
    const pj = path.join(ROOT, n.path, 'package.json');
    if (!fs.existsSync(pj)) return true;
    // A tfjs-node folder left by an earlier build is kept; a different version is replaced.
    return n.path === start && readJson(pj).version !== n.version;
  });
  if (!missing.length) return;
  const t0 = Date.now();
  const specs = [...new Set(missing.map((n) => `${n.name}@${n.version}`))];
  const packDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sana-tfjs-pack-'));
  try {
    const files = npmPack(specs, packDir);
    for (const n of missing) {
      const tgz = files.get(`${n.name}@${n.version}`);
      if (!tgz) throw new SetupError(`npm pack returned no tarball for ${n.name}@${n.version}`);
      unpackTarball(tgz, path.join(ROOT, n.path));
    }
  } finally {
    fs.rmSync(packDir, { recursive: true, force: true });
  }
  const names = missing.map((n) => n.name);
  detail(`unpacked ${names.length} packages with npm pack (${names.slice(0, 4).join(', ')}${names.length > 4 ? ', ...' : ''}) in ${elapsed(t0)}`);
}

/** Fills tfjs-node's deps/ with the library (linked or copied), the names binding.gyp links, and headers. */
function stageLibrary(lib) {
  const deps = path.join(TFJS_NODE_DIR, 'deps');
  const libDir = path.join(deps, 'lib');
  fs.rmSync(deps, { recursive: true, force: true });
  fs.mkdirSync(libDir, { recursive: true });
  const ccName = path.basename(lib.cc);
  const fwName = path.basename(lib.framework);
  linkOrCopy(lib.cc, path.join(libDir, ccName));
  linkOrCopy(lib.framework, path.join(libDir, fwName));
  // binding.gyp links -ltensorflow -ltensorflow_framework; at run time the loader follows the
  // libraries' own sonames (libtensorflow_cc.so.2, ...) through the addon's rpath, deps/lib.
  symlink(ccName, path.join(libDir, 'libtensorflow.so'));
  symlink(ccName, path.join(libDir, TFJS_NODE_LIB_NAME));
  symlink(fwName, path.join(libDir, 'libtensorflow_framework.so'));
  for (const d of HEADER_DIRS) {
    const src = path.join(lib.include, d);
    if (fs.existsSync(src)) fs.cpSync(src, path.join(deps, 'include', d), { recursive: true });
  }
}

function nodeGypCommand() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  const execPath = process.env.npm_execpath;
  if (execPath) candidates.push(path.join(path.dirname(execPath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  const script = candidates.find((p) => p && fs.existsSync(p));
  if (script) return [process.execPath, [script]];
  const bin = which('node-gyp');
  if (bin) return [bin, []];
  throw new SetupError("node-gyp not found (it ships with npm): install it with `npm install -g node-gyp`");
}

/** Rebuilds tfjs_binding.node where node-pre-gyp's `find` looks for it. */
function buildAddon() {
  const t0 = Date.now();
  const pkg = readJson(path.join(TFJS_NODE_DIR, 'package.json'));
  const napi = napiBuildVersion(pkg.binary, Number(process.versions.napi));
  const modulePath = path.resolve(TFJS_NODE_DIR, pkg.binary.module_path.replace('{napi_build_version}', String(napi)));
  const [cmd, pre] = nodeGypCommand();
  const args = [...pre, 'rebuild', '--jobs=max', `--module_name=${pkg.binary.module_name}`, `--module_path=${modulePath}`, `--napi_build_version=${napi}`];
  // Use the headers installed with Node when present, so node-gyp need not download them.
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
  run(cmd, args, { cwd: TFJS_NODE_DIR });
  detail(`built ${path.relative(ROOT, path.join(modulePath, `${pkg.binary.module_name}.node`))} (N-API ${napi}) in ${elapsed(t0)}`);
}

/** Loads tfjs-node in a child process and runs one op; returns `{ok, tfVersion, version, error}`. */
function probe() {
  const code = `
    const tf = require(require.resolve(${JSON.stringify(TFJS_NODE)}, { paths: [${JSON.stringify(ROOT)}] }));
    const y = tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[1], [1]])).dataSync();
    if (tf.getBackend() !== 'tensorflow' || y[0] !== 3 || y[1] !== 7) throw new Error('wrong result ' + y);
    console.log(JSON.stringify({ tfVersion: tf.backend().binding.TF_Version, version: tf.version['tfjs-node'] }));`;
  const res = cp.spawnSync(process.execPath, ['-e', code], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' },
    timeout: 120000,
  });
  if (res.status === 0) {
    try {
      return { ok: true, ...JSON.parse(res.stdout.trim().split('\n').pop()) };
    } catch {
      // fall through to the failure below
    }
  }
  const lines = `${res.stderr || ''}`.split('\n').filter((l) => /Error|error:|cannot|not found/i.test(l));
  return { ok: false, error: (lines[0] || res.error?.message || `exit code ${res.status}`).trim() };
}

// ---------------------------------------------------------------------------------------------------

function main(argv) {
  const opts = parseArgs(argv);
  if (opts.help) {
    console.log(HELP);
    return 0;
  }
  quiet = opts.auto;
  const t0 = Date.now();
  const installed = fs.existsSync(path.join(TFJS_NODE_DIR, 'package.json'));

  if (opts.check || (!opts.force && installed)) {
    const p = installed ? probe() : { ok: false, error: `${TFJS_NODE} is not installed` };
    if (p.ok) {
      say(`${TFJS_NODE} ${p.version} loads, TensorFlow ${p.tfVersion}; nothing to do${opts.force ? '' : ' (--force rebuilds)'}`);
      return 0;
    }
    if (opts.check) {
      say(`${TFJS_NODE} is not usable: ${p.error}`);
      return 1;
    }
    detail(`${TFJS_NODE} is present but does not load (${p.error}); rebuilding`);
  }
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new SetupError(`only Linux x86-64 is handled here (this is ${process.platform}-${process.arch}); install ${TFJS_NODE} normally`);
  }

  const { lib, source } = findLibrary(opts);
  detail(`libtensorflow ${lib.version} from ${source}`);
  installPackages(opts);
  stageLibrary(lib);
  buildAddon();
  const p = probe();
  if (!p.ok) throw new SetupError(`the rebuilt ${TFJS_NODE} does not load: ${p.error}`);
  say(`built ${TFJS_NODE} ${p.version} against TensorFlow ${p.tfVersion} (${source}) in ${elapsed(t0)}; the default backend is now 'tensorflow'`);
  return 0;
}

if (require.main === module) {
  const auto = process.argv.includes('--auto');
  let code;
  try {
    code = main(process.argv.slice(2));
  } catch (e) {
    const msg = e instanceof SetupError ? e.message : (e && e.stack) || String(e);
    if (auto) {
      say(`skipped: ${msg}`);
      say('the wasm backend will be used; `npm run setup:native` retries (README, "Native TensorFlow")');
      code = 0;
    } else {
      say(`failed: ${msg}`);
      code = 1;
    }
  }
  process.exitCode = auto ? 0 : code;
}

module.exports = { dependencyClosure, napiBuildVersion, inspectLibDir, compareVersions, parseArgs };
