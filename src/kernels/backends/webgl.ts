/**
 * Fused normalization kernels for tfjs's `webgl` backend (WebGL 2): GLSL fragment programs run through the
 * backend's `runWebGLProgram`. Nothing here imports the backend package; it is reached through the kernel's
 * `backend` argument, typed by the minimal {@link WebGLBackendLike} interface below.
 *
 * The indexing is that of backends/webgpu.ts (a `rows` layout is a `channels` layout with S = 1, C = K = n).
 * A fragment program writes one value per texel, so every reduction is multi-pass: the first pass writes, per
 * (slice, tile of {@link BLOCK} elements), the sum of a per-element quantity in a loop; each further pass adds
 * blocks of {@link BLOCK} partial sums, until one value per slice is left. Statistics are two-pass in float32:
 * sums of (x - shift), shift = the slice's first element, give the mean m; sums of (x - shift - m)^2 give the
 * variance; then y per element. Backward: the per-slice sums of g = gamma * dy and g * xhat, then dx per
 * element; dgamma and dbeta add dy * xhat and dy per channel over blocks of rows. Sizes are compiled into the
 * shaders (tfjs caches one program per shape), so a model compiles each normalization once per input shape.
 *
 * The kernels need float32 render targets: {@link webglFusedSupported} is false on WebGL 1 and where
 * `WEBGL_RENDER_FLOAT32_ENABLED` is false (float16 textures, e.g. iOS Safari), and the ops then take their
 * composite path (see docs/performance.md).
 */
import type * as tf from '@tensorflow/tfjs-core';
import { narrowBackend, type NormBackwardOutputs, type NormForwardOutputs, type NormKernels } from '../contract.js';
import { normForward, sliceGeometry, type SliceGeometry } from '../norm-math.js';

/** The parts of tfjs's GPGPUProgram that normkit's programs fill in. */
export interface WebGLProgramSpec {
  variableNames: string[];
  outputShape: number[];
  userCode: string;
  packedInputs: false;
  packedOutput: false;
}

/** What normkit uses of tfjs's WebGL backend. */
export interface WebGLBackendLike {
  runWebGLProgram(program: WebGLProgramSpec, inputs: tf.TensorInfo[], outputDtype: 'float32'): tf.TensorInfo;
  makeTensorInfo(shape: number[], dtype: 'float32', values?: Float32Array): tf.TensorInfo;
  disposeIntermediateTensorInfo(info: tf.TensorInfo): void;
}

/** Narrows tfjs's backend object to {@link WebGLBackendLike}, checking the methods normkit calls. */
export function asWebGLBackend(backend: unknown): WebGLBackendLike {
  return narrowBackend<WebGLBackendLike>(backend, 'webgl', 'a tfjs WebGL backend', ['runWebGLProgram', 'makeTensorInfo', 'disposeIntermediateTensorInfo']);
}

/**
 * Whether the WebGL kernels can run with `flags` (tfjs's environment): WebGL 2 with float32 render targets.
 * With float16 textures the statistics of a 1e4-offset slice or a 4096-element sum would lose most digits.
 */
export function webglFusedSupported(flags: { getNumber(name: string): number; getBool(name: string): boolean }): boolean {
  try {
    return flags.getNumber('WEBGL_VERSION') === 2 && flags.getBool('WEBGL_RENDER_FLOAT32_ENABLED');
  } catch {
    return false;
  }
}

/** Elements (first pass) or partial sums (further passes) one texel adds. */
const BLOCK = 64;

/** GLSL float literal. */
const f = (v: number) => {
  const s = String(v);
  return /[.eE]/.test(s) ? s : `${s}.0`;
};

/** GLSL: slice geometry, and flat reads of inputs kept in their own (possibly multi-axis) shapes. */
function common(g: SliceGeometry, flatInputs: Array<[string, readonly number[]]>): string {
  const getters = flatInputs.map(([name, shape]) => {
    const cap = name.charAt(0).toUpperCase() + name.slice(1);
    if (shape.length <= 1) return `float nk${cap}(int i) { return get${cap}(i); }`;
    const strides = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
    const lines = strides.slice(0, -1).map((st, d) => `int c${d} = r / ${st}; r -= c${d} * ${st};`);
    const args = [...strides.slice(0, -1).map((_, d) => `c${d}`), 'r'].join(', ');
    return `float nk${cap}(int i) { int r = i; ${lines.join(' ')} return get${cap}(${args}); }`;
  });
  return `
int nkSliceBase(int s) { int b = s / ${g.G}; return b * ${g.S * g.C} + (s - b * ${g.G}) * ${g.K}; }
int nkSliceOffset(int j) { int p = j / ${g.K}; return p * ${g.C} + (j - p * ${g.K}); }
int nkSliceOf(int i) { int b = i / ${g.S * g.C}; return b * ${g.G} + (i - (i / ${g.C}) * ${g.C}) / ${g.K}; }
${getters.join('\n')}
`;
}

function program(variableNames: string[], length: number, userCode: string): WebGLProgramSpec {
  return { variableNames, outputShape: [length], userCode, packedInputs: false, packedOutput: false };
}

type Run = (p: WebGLProgramSpec, inputs: tf.TensorInfo[]) => tf.TensorInfo;

/**
 * Adds `partials` ([rows, width] as a flat tensor) over each row in passes of {@link BLOCK}, returning [rows].
 * Intermediate passes are disposed; `partials` is not.
 */
function reduceRows(run: Run, dispose: (t: tf.TensorInfo) => void, partials: tf.TensorInfo, rows: number, width: number): tf.TensorInfo {
  let cur = partials;
  let w = width;
  while (w > 1) {
    const out = Math.ceil(w / BLOCK);
    const code = `
void main() {
  int o = getOutputCoords();
  int r = o / ${out};
  int start = (o - r * ${out}) * ${BLOCK};
  float sum = 0.0;
  for (int j = 0; j < ${BLOCK}; j++) {
    int k = start + j;
    if (k >= ${w}) break;
    sum += getP(r * ${w} + k);
  }
  setOutput(sum);
}`;
    const next = run(program(['p'], rows * out, code), [cur]);
    if (cur !== partials) dispose(cur);
    cur = next;
    w = out;
  }
  return cur;
}

/** First pass over each slice: per (slice, tile) the sum of `term` (GLSL using x_i, shift, m, rs, gd). */
function slicePartials(g: SliceGeometry, names: string[], flatInputs: Array<[string, readonly number[]]>, setup: string, term: string): { program: WebGLProgramSpec; tiles: number } {
  const tile = Math.min(BLOCK, Math.max(g.count, 1));
  const tiles = Math.ceil(g.count / tile);
  const code = `${common(g, flatInputs)}
void main() {
  int o = getOutputCoords();
  int s = o / ${tiles};
  int start = (o - s * ${tiles}) * ${tile};
  int base = nkSliceBase(s);
  ${setup}
  float sum = 0.0;
  for (int j = 0; j < ${tile}; j++) {
    int jj = start + j;
    if (jj >= ${g.count}) break;
    int i = base + nkSliceOffset(jj);
    sum += ${term};
  }
  setOutput(sum);
}`;
  return { program: program(names, g.slices * tiles, code), tiles };
}

/** Per (channel, block of rows) the sum of `term` over rows r = b*S + p (GLSL using i, s). */
function columnPartials(g: SliceGeometry, names: string[], flatInputs: Array<[string, readonly number[]]>, term: string): { program: WebGLProgramSpec; tiles: number } {
  const rows = g.B * g.S;
  const tiles = Math.ceil(rows / BLOCK);
  const code = `${common(g, flatInputs)}
void main() {
  int o = getOutputCoords();
  int c = o / ${tiles};
  int start = (o - c * ${tiles}) * ${BLOCK};
  float sum = 0.0;
  for (int j = 0; j < ${BLOCK}; j++) {
    int r = start + j;
    if (r >= ${rows}) break;
    int i = r * ${g.C} + c;
    int s = (r / ${g.S}) * ${g.G} + c / ${g.K};
    sum += ${term};
  }
  setOutput(sum);
}`;
  return { program: program(names, g.C * tiles, code), tiles };
}

/** An elementwise program over `length` outputs, `expr` in terms of the output index `o`. */
function elementwise(g: SliceGeometry, names: string[], flatInputs: Array<[string, readonly number[]]>, length: number, body: string): WebGLProgramSpec {
  return program(names, length, `${common(g, flatInputs)}
void main() {
  int o = getOutputCoords();
  ${body}
}`);
}

const reshaped = (t: tf.TensorInfo, shape: number[]): tf.TensorInfo => ({ dataId: t.dataId, shape, dtype: t.dtype });

/** normkit's fused kernels on WebGL 2 (see the file comment). */
export const webglNormKernels: NormKernels<WebGLBackendLike> = {
  forward({ inputs, attrs: a, backend }): NormForwardOutputs {
    const g = sliceGeometry(a);
    if (g.total === 0) {
      const y = new Float32Array(0);
      const stats = Array.from({ length: 4 }, () => new Float32Array(g.slices));
      normForward(a, a.epsilon, y, null, null, y, stats[0], stats[1], { mean: stats[2], variance: stats[3] });
      return [backend.makeTensorInfo(inputs.x.shape, 'float32', y), ...stats.map((v) => backend.makeTensorInfo([g.slices], 'float32', v))] as NormForwardOutputs;
    }
    const run: Run = (p, ins) => backend.runWebGLProgram(p, ins, 'float32');
    const dispose = (t: tf.TensorInfo) => backend.disposeIntermediateTensorInfo(t);
    const { x } = inputs;
    const xs: Array<[string, readonly number[]]> = [['x', x.shape]];
    const n = f(g.count);
    let mean: tf.TensorInfo;
    let sqTerm: string;
    let sqSetup: string;
    if (a.center) {
      const p1 = slicePartials(g, ['x'], xs, 'float shift = nkX(base);', 'nkX(i) - shift');
      const partial = run(p1.program, [x]);
      const total = reduceRows(run, dispose, partial, g.slices, p1.tiles);
      mean = run(elementwise(g, ['t'], [], g.slices, `setOutput(getT(o) / ${n});`), [total]);
      dispose(partial);
      if (total !== partial) dispose(total);
      sqSetup = 'float shift = nkX(base); float m = getMean(s);';
      sqTerm = '(nkX(i) - shift - m) * (nkX(i) - shift - m)';
    } else {
      mean = run(elementwise(g, [], [], g.slices, 'setOutput(0.0);'), []);
      sqSetup = '';
      sqTerm = 'nkX(i) * nkX(i)';
    }
    const p2 = slicePartials(g, a.center ? ['x', 'mean'] : ['x'], xs, sqSetup, sqTerm);
    const partial2 = run(p2.program, a.center ? [x, mean] : [x]);
    const sq = reduceRows(run, dispose, partial2, g.slices, p2.tiles);
    const rstd = run(elementwise(g, ['t'], [], g.slices, `setOutput(1.0 / sqrt(getT(o) / ${n} + ${f(a.epsilon)}));`), [sq]);
    const variance = run(elementwise(g, ['t'], [], g.slices, `setOutput(getT(o) / ${n});`), [sq]);
    const plainMean = a.center
      ? run(elementwise(g, ['x', 'mean'], xs, g.slices, 'setOutput(nkX(nkSliceBase(o)) + getMean(o));'), [x, mean])
      : run(elementwise(g, [], [], g.slices, 'setOutput(0.0);'), []);
    dispose(partial2);
    if (sq !== partial2) dispose(sq);
    const names = ['x', ...(a.center ? ['mean'] : []), 'rstd', ...(a.hasGamma ? ['gamma'] : []), ...(a.hasBeta ? ['beta'] : [])];
    const params: Array<[string, readonly number[]]> = [...(a.hasGamma ? [['gamma', inputs.gamma.shape] as [string, number[]]] : []), ...(a.hasBeta ? [['beta', inputs.beta.shape] as [string, number[]]] : [])];
    const body = `
  int s = nkSliceOf(o);
  int c = o - (o / ${g.C}) * ${g.C};
  float v = ${a.center ? '(nkX(o) - nkX(nkSliceBase(s)) - getMean(s)) * getRstd(s)' : 'nkX(o) * getRstd(s)'};
  ${a.hasGamma ? 'v *= nkGamma(c);' : ''}
  ${a.hasBeta ? 'v += nkBeta(c);' : ''}
  setOutput(v);`;
    const y = run(elementwise(g, names, [...xs, ...params], g.total, body), [x, ...(a.center ? [mean] : []), rstd, ...(a.hasGamma ? [inputs.gamma] : []), ...(a.hasBeta ? [inputs.beta] : [])]);
    return [reshaped(y, x.shape), mean, rstd, plainMean, variance];
  },

  backward({ inputs, attrs: a, backend }): NormBackwardOutputs {
    const g = sliceGeometry(a);
    const emptyParam = () => backend.makeTensorInfo([0], 'float32', new Float32Array(0));
    if (g.total === 0) {
      const zeros = (k: number) => backend.makeTensorInfo([k], 'float32', new Float32Array(k));
      return [backend.makeTensorInfo(inputs.x.shape, 'float32', new Float32Array(0)), a.hasGamma ? zeros(g.C) : emptyParam(), a.hasBeta ? zeros(g.C) : emptyParam()];
    }
    const run: Run = (p, ins) => backend.runWebGLProgram(p, ins, 'float32');
    const dispose = (t: tf.TensorInfo) => backend.disposeIntermediateTensorInfo(t);
    const { x, dy, gamma, mean, rstd } = inputs;
    const flat: Array<[string, readonly number[]]> = [['x', x.shape], ['dy', dy.shape], ...(a.hasGamma ? [['gamma', gamma.shape] as [string, number[]]] : [])];
    const names = ['x', 'dy', ...(a.hasGamma ? ['gamma'] : []), 'mean', 'rstd'];
    const ins = [x, dy, ...(a.hasGamma ? [gamma] : []), mean, rstd];
    const shift = (base: string) => (a.center ? `nkX(${base})` : '0.0');
    const gd = (i: string) => (a.hasGamma ? `nkGamma(${i} - (${i} / ${g.C}) * ${g.C}) * nkDy(${i})` : `nkDy(${i})`);
    const setup = `float shift = ${shift('base')}; float m = getMean(s); float rs = getRstd(s);`;
    const sums: tf.TensorInfo[] = [];
    for (const term of [gd('i'), `${gd('i')} * (nkX(i) - shift - m) * rs`]) {
      const p = slicePartials(g, names, flat, setup, term);
      const partial = run(p.program, ins);
      const total = reduceRows(run, dispose, partial, g.slices, p.tiles);
      if (total !== partial) dispose(partial);
      sums.push(total);
    }
    const n = f(g.count);
    const body = `
  int s = nkSliceOf(o);
  float rs = getRstd(s);
  float xh = (nkX(o) - ${shift('nkSliceBase(s)')} - getMean(s)) * rs;
  setOutput(rs * (${gd('o')} - ${a.center ? `getSg(s) / ${n}` : '0.0'} - xh * (getSgx(s) / ${n})));`;
    const dx = run(elementwise(g, [...names, 'sg', 'sgx'], flat, g.total, body), [...ins, sums[0], sums[1]]);
    for (const t of sums) dispose(t);
    const param = (term: string) => {
      const p = columnPartials(g, ['x', 'dy', 'mean', 'rstd'], flat.slice(0, 2), term);
      const partial = run(p.program, [x, dy, mean, rstd]);
      const total = reduceRows(run, dispose, partial, g.C, p.tiles);
      if (total !== partial) dispose(partial);
      return total;
    };
    const dgamma = a.hasGamma ? param(`nkDy(i) * (nkX(i) - ${shift('nkSliceBase(s)')} - getMean(s)) * getRstd(s)`) : emptyParam();
    const dbeta = a.hasBeta ? param('nkDy(i)') : emptyParam();
    return [reshaped(dx, x.shape), dgamma, dbeta];
  },
};
