/**
 * Fused normalization kernels for tfjs's `webgpu` backend: WGSL compute programs run through the backend's
 * `runWebGPUProgram`. Nothing here imports the backend package; it is reached through the kernel's `backend`
 * argument, typed by the minimal {@link WebGPUBackendLike} interface below.
 *
 * Both layouts of norm-math.ts are one indexing scheme here: a `rows` layout is a `channels` layout with
 * B = rows, S = 1, C = K = n. Slice s = (b, g) holds count = S * K elements; its element j = (p, k) sits at
 * b*S*C + p*C + g*K + k and uses parameter channel g*K + k.
 *
 * Forward (all float32, no E[x^2] - E[x]^2):
 * 1. partial sums of (x - shift) per (slice, tile), shift = the slice's first element: one workgroup of 64
 *    threads per (slice, tile), each thread striding over the tile, then a tree reduction in workgroup memory;
 * 2. per slice, m = sum / count (a thread per slice adds the tiles' partials);
 * 3. partial sums of (x - shift - m)^2 (RMS: x^2), then rstd = 1 / sqrt(var + eps), var, plain mean;
 * 4. y = (x - shift - m) * rstd * gamma + beta, one thread per element.
 * Tiles split a slice only when there are too few slices to fill the device (BatchNorm's per-channel slices of
 * N*H*W elements, a single long row); a row of up to 1024 elements or a layer with many rows is one workgroup per
 * slice. Backward: per (slice, tile) the two sums of g = gamma*dy and g*xhat, then dx per element; dgamma and
 * dbeta reduce dy*xhat and dy per channel over tiles of rows, a thread per channel and 64 neighbouring channels
 * per workgroup, so reads of consecutive channels are coalesced.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { narrowBackend, type NormBackwardOutputs, type NormForwardOutputs, type NormKernelAttrs, type NormKernels } from '../contract.js';
import { normForward, sliceGeometry, type SliceGeometry } from '../norm-math.js';

/** The parts of tfjs's WebGPUProgram that normkit's programs fill in. */
export interface WebGPUProgramSpec {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  uniforms: string;
  getUserCode(): string;
}

/** A uniform value as runWebGPUProgram takes it. */
export interface WebGPUUniform {
  type: 'int32' | 'float32';
  data: number[];
}

/** What normkit uses of tfjs's WebGPU backend. */
export interface WebGPUBackendLike {
  runWebGPUProgram(program: WebGPUProgramSpec, inputs: tf.TensorInfo[], outputDtype: 'float32', uniforms?: WebGPUUniform[]): tf.TensorInfo;
  makeTensorInfo(shape: number[], dtype: 'float32', values?: Float32Array): tf.TensorInfo;
  disposeData(dataId: tf.DataId): boolean;
}

/** Narrows tfjs's backend object to {@link WebGPUBackendLike}, checking the methods normkit calls. */
export function asWebGPUBackend(backend: unknown): WebGPUBackendLike {
  return narrowBackend<WebGPUBackendLike>(backend, 'webgpu', 'a tfjs WebGPU backend', ['runWebGPUProgram', 'makeTensorInfo', 'disposeData']);
}

/**
 * Threads per reduction workgroup. 64, as tfjs's own reductions use below 4096 elements: on a real GPU a row
 * of 16384 elements is then 256 elements per thread, and a software renderer (SwiftShader), which runs a
 * workgroup's invocations as coroutines switched at every barrier, measured about 10x slower with 256.
 */
const THREADS = 64;
/** Work items per tile, at least: below this a slice is never split. */
const MIN_TILE = 1024;
/** Workgroups a reduction aims for, to keep a device busy when there are few slices. */
const TARGET_WORKGROUPS = 2048;

interface Geometry extends SliceGeometry {
  /** Tiles per slice and elements per tile. */
  tiles: number;
  tile: number;
  /** Row tiles of the per-channel parameter reduction and rows per tile. */
  rtiles: number;
  rtile: number;
}

function geometry(a: NormKernelAttrs): Geometry {
  const g = sliceGeometry(a);
  const tiles = Math.max(1, Math.min(Math.ceil(g.count / MIN_TILE), Math.ceil(TARGET_WORKGROUPS / Math.max(g.slices, 1))));
  const R = g.B * g.S;
  const cBlocks = Math.ceil(g.C / 64);
  const rtiles = Math.max(1, Math.min(Math.ceil(R / 64), Math.ceil(TARGET_WORKGROUPS / Math.max(cBlocks, 1))));
  return { ...g, tiles, tile: Math.ceil(g.count / tiles), rtiles, rtile: Math.ceil(R / rtiles) };
}

const UNIFORMS = 'B : i32, S : i32, C : i32, K : i32, G : i32, count : i32, slices : i32, tiles : i32, tile : i32, rtiles : i32, rtile : i32, total : i32, eps : f32,';

function uniformValues(g: Geometry, eps: number): WebGPUUniform[] {
  const ints = [g.B, g.S, g.C, g.K, g.G, g.count, g.slices, g.tiles, g.tile, g.rtiles, g.rtile, g.total];
  return [...ints.map((v): WebGPUUniform => ({ type: 'int32', data: [v] })), { type: 'float32', data: [eps] }];
}

/** WGSL shared by all programs: the workgroup's linear index and the slice geometry. */
const COMMON = `
fn nkWorkgroup() -> i32 {
  return i32(workgroupId.z * numWorkgroups.x * numWorkgroups.y + workgroupId.y * numWorkgroups.x + workgroupId.x);
}
// Flat index of the first element of slice s (also its shift when centred).
fn nkSliceBase(s : i32) -> i32 {
  let b = s / uniforms.G;
  return b * uniforms.S * uniforms.C + (s - b * uniforms.G) * uniforms.K;
}
// Offset of element j of a slice from the slice's first element.
fn nkSliceOffset(j : i32) -> i32 {
  let p = j / uniforms.K;
  return p * uniforms.C + (j - p * uniforms.K);
}
// Slice of the element at flat index i, and its channel.
fn nkSliceOf(i : i32) -> i32 {
  let b = i / (uniforms.S * uniforms.C);
  return b * uniforms.G + (i % uniforms.C) / uniforms.K;
}
`;

function program(key: string, variableNames: string[], outputLength: number, workgroups: number, workgroupSize: [number, number, number], body: string): WebGPUProgramSpec {
  return {
    variableNames,
    outputShape: [outputLength],
    shaderKey: `normkit_${key}`,
    dispatchLayout: { x: [0] },
    dispatch: [Math.max(workgroups, 1), 1, 1],
    workgroupSize,
    uniforms: UNIFORMS,
    getUserCode: () => COMMON + body,
  };
}

/** The tree reduction of `names` (workgroup arrays of THREADS floats) into element 0. */
function treeReduce(names: string[]): string {
  const adds = names.map((n) => `${n}[lid] = ${n}[lid] + ${n}[lid + h];`).join(' ');
  return `
  workgroupBarrier();
  for (var h = ${THREADS / 2}; h > 0; h = h / 2) {
    if (lid < h) { ${adds} }
    workgroupBarrier();
  }`;
}

type SliceSum = 'shifted' | 'sqdev' | 'square';

/** Partial sums per (slice, tile) of one per-element quantity of the forward statistics. */
function slicePartials(g: Geometry, what: SliceSum): WebGPUProgramSpec {
  const term = what === 'shifted' ? 'x[i] - shift' : what === 'sqdev' ? 'x[i] - shift - mean[s]' : 'x[i]';
  const body = `
var<workgroup> acc : array<f32, ${THREADS}>;
fn main(index : i32) {
  let w = nkWorkgroup();
  let lid = i32(localId.x);
  let s = w / uniforms.tiles;
  let start = (w - s * uniforms.tiles) * uniforms.tile;
  var sum = 0.0;
  if (s < uniforms.slices) {
    let base = nkSliceBase(s);
    let shift = ${what === 'square' ? '0.0' : 'x[base]'};
    let end = min(start + uniforms.tile, uniforms.count);
    for (var j = start + lid; j < end; j = j + ${THREADS}) {
      let i = base + nkSliceOffset(j);
      let d = ${term};
      sum = sum + ${what === 'shifted' ? 'd' : 'd * d'};
    }
  }
  acc[lid] = sum;
  ${treeReduce(['acc'])}
  if (lid == 0 && s < uniforms.slices) { result[w] = acc[0]; }
}`;
  return program(`partials_${what}`, what === 'sqdev' ? ['x', 'mean'] : ['x'], g.slices * g.tiles, g.slices * g.tiles, [THREADS, 1, 1], body);
}

type Finish = 'mean' | 'zero' | 'rstd' | 'variance' | 'plainMean';

/** Per slice, from the partial sums: one thread per slice adds its tiles. */
function finish(g: Geometry, what: Finish): WebGPUProgramSpec {
  const value: Record<Finish, string> = {
    mean: 'total / f32(uniforms.count)',
    zero: '0.0',
    rstd: '1.0 / sqrt(total / f32(uniforms.count) + uniforms.eps)',
    variance: 'total / f32(uniforms.count)',
    plainMean: 'x[nkSliceBase(s)] + mean[s]',
  };
  const sums = what !== 'zero' && what !== 'plainMean';
  const body = `
fn main(s : i32) {
  if (s >= uniforms.slices) { return; }
  var total = 0.0;
  ${sums ? 'for (var t = 0; t < uniforms.tiles; t = t + 1) { total = total + partials[s * uniforms.tiles + t]; }' : ''}
  result[s] = ${value[what]};
}`;
  const inputs = what === 'plainMean' ? ['x', 'mean'] : what === 'zero' ? [] : ['partials'];
  return program(`finish_${what}`, inputs, g.slices, Math.ceil(g.slices / 64), [64, 1, 1], body);
}

/** y = (x - shift - m) * rstd * gamma + beta (RMS: x * rstd * gamma + beta), one thread per element. */
function output(g: Geometry, center: boolean, hasGamma: boolean, hasBeta: boolean): WebGPUProgramSpec {
  const body = `
fn main(i : i32) {
  if (i >= uniforms.total) { return; }
  let s = nkSliceOf(i);
  let c = i % uniforms.C;
  var v = ${center ? '(x[i] - x[nkSliceBase(s)] - mean[s]) * rstd[s]' : 'x[i] * rstd[s]'};
  ${hasGamma ? 'v = v * gamma[c];' : ''}
  ${hasBeta ? 'v = v + beta[c];' : ''}
  result[i] = v;
}`;
  // Every bound input must be read: the pipeline layout is derived from the shader.
  const names = ['x', ...(center ? ['mean'] : []), 'rstd', ...(hasGamma ? ['gamma'] : []), ...(hasBeta ? ['beta'] : [])];
  return program(`y_${center}_${hasGamma}_${hasBeta}`, names, g.total, Math.ceil(g.total / 64), [64, 1, 1], body);
}

/** Per (slice, tile) the two sums of g = gamma * dy and g * xhat, interleaved. */
function gradPartials(g: Geometry, center: boolean, hasGamma: boolean): WebGPUProgramSpec {
  const body = `
var<workgroup> acc1 : array<f32, ${THREADS}>;
var<workgroup> acc2 : array<f32, ${THREADS}>;
fn main(index : i32) {
  let w = nkWorkgroup();
  let lid = i32(localId.x);
  let s = w / uniforms.tiles;
  let start = (w - s * uniforms.tiles) * uniforms.tile;
  var s1 = 0.0;
  var s2 = 0.0;
  if (s < uniforms.slices) {
    let base = nkSliceBase(s);
    let shift = ${center ? 'x[base]' : '0.0'};
    let m = mean[s];
    let rs = rstd[s];
    let end = min(start + uniforms.tile, uniforms.count);
    for (var j = start + lid; j < end; j = j + ${THREADS}) {
      let i = base + nkSliceOffset(j);
      let gd = ${hasGamma ? 'gamma[i % uniforms.C] * dy[i]' : 'dy[i]'};
      s1 = s1 + gd;
      s2 = s2 + gd * (x[i] - shift - m) * rs;
    }
  }
  acc1[lid] = s1;
  acc2[lid] = s2;
  ${treeReduce(['acc1', 'acc2'])}
  if (lid == 0 && s < uniforms.slices) {
    result[2 * w] = acc1[0];
    result[2 * w + 1] = acc2[0];
  }
}`;
  const names = ['x', 'dy', ...(hasGamma ? ['gamma'] : []), 'mean', 'rstd'];
  return program(`gradpartials_${center}_${hasGamma}`, names, 2 * g.slices * g.tiles, g.slices * g.tiles, [THREADS, 1, 1], body);
}

/** Per slice the two gradient sums, added over tiles. */
function gradFinish(g: Geometry): WebGPUProgramSpec {
  const body = `
fn main(s : i32) {
  if (s >= uniforms.slices) { return; }
  var a = 0.0;
  var b = 0.0;
  for (var t = 0; t < uniforms.tiles; t = t + 1) {
    a = a + partials[2 * (s * uniforms.tiles + t)];
    b = b + partials[2 * (s * uniforms.tiles + t) + 1];
  }
  result[2 * s] = a;
  result[2 * s + 1] = b;
}`;
  return program('gradfinish', ['partials'], 2 * g.slices, Math.ceil(g.slices / 64), [64, 1, 1], body);
}

/** dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) (RMS drops mean(g)), one thread per element. */
function dxProgram(g: Geometry, center: boolean, hasGamma: boolean): WebGPUProgramSpec {
  const body = `
fn main(i : i32) {
  if (i >= uniforms.total) { return; }
  let s = nkSliceOf(i);
  let rs = rstd[s];
  let n = f32(uniforms.count);
  let xh = (x[i] - ${center ? 'x[nkSliceBase(s)]' : '0.0'} - mean[s]) * rs;
  let gd = ${hasGamma ? 'gamma[i % uniforms.C] * dy[i]' : 'dy[i]'};
  result[i] = rs * (gd - ${center ? 'sums[2 * s] / n' : '0.0'} - xh * (sums[2 * s + 1] / n));
}`;
  const names = ['x', 'dy', ...(hasGamma ? ['gamma'] : []), 'mean', 'rstd', 'sums'];
  return program(`dx_${center}_${hasGamma}`, names, g.total, Math.ceil(g.total / 64), [64, 1, 1], body);
}

/**
 * Per (channel, row tile) the sums of dy * xhat and dy over the rows b*S + p: one thread per channel, 64
 * neighbouring channels per workgroup (so neighbouring threads read neighbouring floats), no workgroup memory.
 */
function paramPartials(g: Geometry, center: boolean): WebGPUProgramSpec {
  const body = `
fn main(index : i32) {
  let w = nkWorkgroup();
  let cBlocks = (uniforms.C + 63) / 64;
  let t = w / cBlocks;
  let c = (w - t * cBlocks) * 64 + i32(localId.x);
  if (c >= uniforms.C || t >= uniforms.rtiles) { return; }
  let rows = uniforms.B * uniforms.S;
  let end = min((t + 1) * uniforms.rtile, rows);
  var s1 = 0.0;
  var s2 = 0.0;
  for (var r = t * uniforms.rtile; r < end; r = r + 1) {
    let i = r * uniforms.C + c;
    let s = (r / uniforms.S) * uniforms.G + c / uniforms.K;
    let d = dy[i];
    s1 = s1 + d * (x[i] - ${center ? 'x[nkSliceBase(s)]' : '0.0'} - mean[s]) * rstd[s];
    s2 = s2 + d;
  }
  result[2 * (c * uniforms.rtiles + t)] = s1;
  result[2 * (c * uniforms.rtiles + t) + 1] = s2;
}`;
  const workgroups = Math.ceil(g.C / 64) * g.rtiles;
  return program(`parampartials_${center}`, ['x', 'dy', 'mean', 'rstd'], 2 * g.C * g.rtiles, workgroups, [64, 1, 1], body);
}

/** dgamma (which 0) or dbeta (which 1) per channel, added over row tiles. */
function paramFinish(g: Geometry, which: 0 | 1): WebGPUProgramSpec {
  const body = `
fn main(c : i32) {
  if (c >= uniforms.C) { return; }
  var a = 0.0;
  for (var t = 0; t < uniforms.rtiles; t = t + 1) { a = a + partials[2 * (c * uniforms.rtiles + t) + ${which}]; }
  result[c] = a;
}`;
  return program(`paramfinish_${which}`, ['partials'], g.C, Math.ceil(g.C / 64), [64, 1, 1], body);
}

const flat = (t: tf.TensorInfo): tf.TensorInfo => ({ dataId: t.dataId, shape: [t.shape.reduce((a, b) => a * b, 1)], dtype: t.dtype });
const shaped = (t: tf.TensorInfo, shape: number[]): tf.TensorInfo => ({ dataId: t.dataId, shape, dtype: t.dtype });

/** normkit's fused kernels on WebGPU (see the file comment). */
export const webgpuNormKernels: NormKernels<WebGPUBackendLike> = {
  forward({ inputs, attrs: a, backend }): NormForwardOutputs {
    const g = geometry(a);
    if (g.total === 0) {
      // Nothing to run on the device: the scalar path gives the (empty or NaN) statistics.
      const y = new Float32Array(0);
      const stats = Array.from({ length: 4 }, () => new Float32Array(g.slices));
      normForward(a, a.epsilon, y, null, null, y, stats[0], stats[1], { mean: stats[2], variance: stats[3] });
      return [backend.makeTensorInfo(inputs.x.shape, 'float32', y), ...stats.map((v) => backend.makeTensorInfo([g.slices], 'float32', v))] as NormForwardOutputs;
    }
    const u = uniformValues(g, a.epsilon);
    const run = (p: WebGPUProgramSpec, ins: tf.TensorInfo[]) => backend.runWebGPUProgram(p, ins, 'float32', u);
    const x = flat(inputs.x);
    const temps: tf.TensorInfo[] = [];
    let mean: tf.TensorInfo;
    let sq: tf.TensorInfo;
    if (a.center) {
      const p1 = run(slicePartials(g, 'shifted'), [x]);
      temps.push(p1);
      mean = run(finish(g, 'mean'), [p1]);
      sq = run(slicePartials(g, 'sqdev'), [x, mean]);
    } else {
      mean = run(finish(g, 'zero'), []);
      sq = run(slicePartials(g, 'square'), [x]);
    }
    temps.push(sq);
    const rstd = run(finish(g, 'rstd'), [sq]);
    const variance = run(finish(g, 'variance'), [sq]);
    const plainMean = a.center ? run(finish(g, 'plainMean'), [x, mean]) : run(finish(g, 'zero'), []);
    const params = [...(a.hasGamma ? [inputs.gamma] : []), ...(a.hasBeta ? [inputs.beta] : [])];
    const y = run(output(g, a.center, a.hasGamma, a.hasBeta), [x, ...(a.center ? [mean] : []), rstd, ...params]);
    for (const t of temps) backend.disposeData(t.dataId);
    return [shaped(y, inputs.x.shape), mean, rstd, plainMean, variance];
  },

  backward({ inputs, attrs: a, backend }): NormBackwardOutputs {
    const g = geometry(a);
    const emptyParam = () => backend.makeTensorInfo([0], 'float32', new Float32Array(0));
    if (g.total === 0) {
      const zeros = (n: number) => backend.makeTensorInfo([n], 'float32', new Float32Array(n));
      return [backend.makeTensorInfo(inputs.x.shape, 'float32', new Float32Array(0)), a.hasGamma ? zeros(g.C) : emptyParam(), a.hasBeta ? zeros(g.C) : emptyParam()];
    }
    const u = uniformValues(g, a.epsilon);
    const run = (p: WebGPUProgramSpec, ins: tf.TensorInfo[]) => backend.runWebGPUProgram(p, ins, 'float32', u);
    const x = flat(inputs.x);
    const dy = flat(inputs.dy);
    const gamma = a.hasGamma ? [inputs.gamma] : [];
    const { mean, rstd } = inputs;
    const partials = run(gradPartials(g, a.center, a.hasGamma), [x, dy, ...gamma, mean, rstd]);
    const sums = run(gradFinish(g), [partials]);
    const dx = run(dxProgram(g, a.center, a.hasGamma), [x, dy, ...gamma, mean, rstd, sums]);
    const temps = [partials, sums];
    let dgamma: tf.TensorInfo;
    let dbeta: tf.TensorInfo;
    if (a.hasGamma || a.hasBeta) {
      const pp = run(paramPartials(g, a.center), [x, dy, mean, rstd]);
      temps.push(pp);
      dgamma = a.hasGamma ? run(paramFinish(g, 0), [pp]) : emptyParam();
      dbeta = a.hasBeta ? run(paramFinish(g, 1), [pp]) : emptyParam();
    } else {
      dgamma = emptyParam();
      dbeta = emptyParam();
    }
    for (const t of temps) backend.disposeData(t.dataId);
    return [shaped(dx, inputs.x.shape), dgamma, dbeta];
  },
};
