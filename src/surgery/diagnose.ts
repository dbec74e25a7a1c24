/**
 * diagnoseNorms: a health report of every normalization layer of a model on one batch.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkKnownKeys, checkPositive } from '../core/checks.js';
import { NormkitError } from '../core/errors.js';
import { listNorms } from '../catalog.js';
import { findFoldableBatchNorms } from './fold-batch-norm.js';

type Layer = tfl.layers.Layer;
type JSONObject = Record<string, unknown>;

/** Thresholds above which {@link diagnoseNorms} writes a warning. */
export interface DiagnoseOptions {
  /** Relative train/eval output gap that warns (default 0.1). */
  gapTolerance?: number;
  /** |gamma| below this counts as dead (default 1e-3). */
  deadGammaTolerance?: number;
  /** Fewer elements per statistic than this warns (default 16). */
  minElementsPerStatistic?: number;
  /** Moving mean off by more than this many batch standard deviations warns (default 0.5). */
  meanDriftTolerance?: number;
  /** Moving variance off by more than this factor (either way) warns (default 2). */
  varianceRatioTolerance?: number;
}

/** The report on one normalization layer. */
export interface NormDiagnosis {
  layer: string;
  className: string;
  /** Input shape on this batch. */
  inputShape: number[];
  /** ||y_train - y_eval|| / ||y_eval||: how differently the layer behaves in training and inference mode. */
  trainEvalGap: number;
  /** How many input elements each mean/variance is computed from on this batch (null: unknown layer). */
  elementsPerStatistic: number | null;
  /** Fraction of statistics whose variance is below the layer's epsilon (eps dominates the division). */
  varianceUnderflow: number | null;
  /** Fraction of gain entries with |gamma| < deadGammaTolerance (null: no gain). */
  deadGamma: number | null;
  /** For layers with moving statistics: max over channels of |moving_mean - batch_mean| / batch_std. */
  meanDrift: number | null;
  /** For layers with moving statistics: max over channels of max(mv/bv, bv/mv). */
  varianceRatio: number | null;
  /** Whether a training-mode call changes the layer's non-trainable state (moving statistics). */
  updatesInTraining: boolean;
  /** trainable = false, yet a training-mode call (model.fit) still changes its moving statistics. */
  frozenButUpdating: boolean;
  /** Name of the layer this BatchNorm can be folded into at inference (foldBatchNorm), or null. */
  foldableInto: string | null;
  /** Human-readable findings, empty when nothing looks wrong. */
  warnings: string[];
}

const WHERE = 'diagnoseNorms';

function normClassNames(): Set<string> {
  const names = new Set(['BatchNormalization', 'LayerNormalization']);
  for (const e of listNorms()) if (e.layerClass && (e.kind === 'activation' || e.kind === 'normalization-free')) names.add(e.layerClass);
  return names;
}

/**
 * For an input of `shape`, the axes each statistic reduces over and the grouping of the channel axis, from
 * the layer's Keras config: BatchNormalization reduces over every axis but `axis`; LayerNormalization and
 * RMSNormalization over `axis`; GroupNormalization over the non-batch axes within each of `groups`;
 * InstanceNormalization over the spatial axes. Null for layers it does not know.
 */
function statisticLayout(className: string, config: JSONObject, shape: number[]): { axes: number[]; groups: number; channelAxis: number } | null {
  const rank = shape.length;
  const resolve = (a: number) => (a < 0 ? a + rank : a);
  const axisList = (v: unknown) => (Array.isArray(v) ? (v as number[]) : [v as number]).map(resolve);
  const all = Array.from({ length: rank }, (_, i) => i);
  const axis = config.axis ?? -1;
  switch (className) {
    case 'BatchNormalization': {
      const c = axisList(axis)[0];
      return { axes: all.filter((i) => i !== c), groups: 1, channelAxis: c };
    }
    case 'LayerNormalization':
    case 'RMSNormalization':
      return { axes: axisList(axis), groups: 1, channelAxis: -1 };
    case 'GroupNormalization': {
      const c = axisList(axis)[0];
      // groups = -1 means one group per channel.
      const groups = typeof config.groups === 'number' && config.groups > 0 ? config.groups : shape[c];
      return { axes: all.filter((i) => i !== 0), groups, channelAxis: c };
    }
    case 'InstanceNormalization': {
      const c = axisList(axis)[0];
      return { axes: all.filter((i) => i !== 0 && i !== c), groups: 1, channelAxis: c };
    }
    default:
      return null;
  }
}

/** Per-statistic biased variance of x (float32 shifted two-pass), flattened. */
function statisticVariances(x: tf.Tensor, layout: { axes: number[]; groups: number; channelAxis: number }): Float32Array {
  return tf.tidy(() => {
    let t = x;
    let axes = layout.axes;
    if (layout.groups > 1) {
      // Split the channel axis into [groups, C / groups] and reduce over the within-group part too.
      const c = layout.channelAxis;
      const shape = [...x.shape.slice(0, c), layout.groups, x.shape[c] / layout.groups, ...x.shape.slice(c + 1)];
      t = tf.reshape(x, shape);
      axes = layout.axes.map((a) => (a > c ? a + 1 : a)).filter((a) => a !== c);
      axes.push(c + 1);
    }
    const shift = tf.slice(t, t.shape.map(() => 0), t.shape.map((d, i) => (axes.includes(i) ? 1 : d)));
    const { variance } = tf.moments(tf.sub(t, shift), axes);
    return variance.dataSync() as Float32Array;
  });
}

function weightValue(layer: Layer, names: string[]): tf.Tensor | undefined {
  return layer.weights.find((w) => names.includes(w.originalName.split('/').pop() as string))?.read();
}

/**
 * Runs `batch` through `model` in inference mode and reports, for every normalization layer (any class
 * registered as a normalization method, plus tfjs's own BatchNormalization / LayerNormalization):
 *
 * - trainEvalGap: `||f_train(x) - f_eval(x)|| / ||f_eval(x)||` on the layer's actual input x;
 * - elementsPerStatistic (e.g. N*H*W for BatchNorm, d for LayerNorm) and varianceUnderflow (share of
 *   statistics with variance < eps);
 * - deadGamma (share of |gamma| < tolerance);
 * - meanDrift `max_c |mu_moving - mu_batch| / sigma_batch` and varianceRatio `max_c max(v_m/v_b, v_b/v_m)`;
 * - updatesInTraining / frozenButUpdating: whether a training-mode call changes its non-trainable weights
 *   (tfjs's own BatchNormalization keeps updating moving statistics when trainable = false);
 * - foldableInto: the Dense/Conv layer a BatchNorm folds into (findFoldableBatchNorms).
 *
 * The model is left exactly as it was (non-trainable weights are restored after the training-mode probe)
 * and no tensors are leaked.
 */
export function diagnoseNorms(model: tfl.LayersModel, batch: tf.Tensor | tf.Tensor[], options: DiagnoseOptions = {}): NormDiagnosis[] {
  if (!(model instanceof tfl.LayersModel)) throw new NormkitError(WHERE, 'model', 'a tf.LayersModel', model);
  const inputs = Array.isArray(batch) ? batch : [batch];
  if (inputs.length !== model.inputs.length || !inputs.every((t) => t instanceof tf.Tensor)) {
    throw new NormkitError(WHERE, 'batch', `${model.inputs.length} tensor(s), one per model input`, batch);
  }
  checkKnownKeys(WHERE, options, ['gapTolerance', 'deadGammaTolerance', 'minElementsPerStatistic', 'meanDriftTolerance', 'varianceRatioTolerance']);
  const gapTolerance = options.gapTolerance ?? 0.1;
  const deadTolerance = options.deadGammaTolerance ?? 1e-3;
  const minElements = options.minElementsPerStatistic ?? 16;
  const driftTolerance = options.meanDriftTolerance ?? 0.5;
  const ratioTolerance = options.varianceRatioTolerance ?? 2;
  checkPositive(WHERE, 'gapTolerance', gapTolerance);
  checkPositive(WHERE, 'deadGammaTolerance', deadTolerance);
  checkPositive(WHERE, 'minElementsPerStatistic', minElements);
  checkPositive(WHERE, 'meanDriftTolerance', driftTolerance);
  checkPositive(WHERE, 'varianceRatioTolerance', ratioTolerance);

  const classes = normClassNames();
  const norms = model.layers.filter((l) => classes.has(l.getClassName()));
  if (norms.length === 0) return [];
  for (const l of norms) {
    if (l.inboundNodes.length !== 1) throw new NormkitError(WHERE, 'model', 'normalization layers that are each called once', `'${l.name}' called ${l.inboundNodes.length} times`);
  }
  let foldable = new Map<string, string>();
  try {
    foldable = new Map(findFoldableBatchNorms(model).map((p) => [p.batchNorm, p.into]));
  } catch {
    // A model the folding analysis cannot read simply has no foldable pairs.
  }

  const probe = tfl.model({ inputs: model.inputs, outputs: norms.map((l) => l.input as tfl.SymbolicTensor) });
  const layerInputs = tf.tidy(() => {
    const out = probe.predict(inputs.length === 1 ? inputs[0] : inputs);
    return Array.isArray(out) ? out : [out];
  });
  try {
    return norms.map((layer, i) => diagnoseLayer(layer, layerInputs[i], foldable.get(layer.name) ?? null, { gapTolerance, deadTolerance, minElements, driftTolerance, ratioTolerance }));
  } finally {
    tf.dispose(layerInputs);
  }
}

function diagnoseLayer(
  layer: Layer,
  x: tf.Tensor,
  foldableInto: string | null,
  t: { gapTolerance: number; deadTolerance: number; minElements: number; driftTolerance: number; ratioTolerance: number },
): NormDiagnosis {
  const className = layer.getClassName();
  const config = layer.getConfig() as JSONObject;
  const epsilon = typeof config.epsilon === 'number' ? config.epsilon : 1e-3;
  const warnings: string[] = [];

  // Train/eval gap, restoring the non-trainable state the training call may update.
  const state = layer.nonTrainableWeights;
  const saved = state.map((w) => tf.clone(w.read()));
  let updatesInTraining = false;
  let trainEvalGap = Number.NaN;
  try {
    trainEvalGap = tf.tidy(() => {
      const yEval = layer.apply(x, { training: false }) as tf.Tensor;
      const yTrain = layer.apply(x, { training: true }) as tf.Tensor;
      updatesInTraining = state.some((w, k) => tf.any(tf.notEqual(w.read(), saved[k])).dataSync()[0] === 1);
      const num = tf.norm(tf.sub(yTrain, yEval)).dataSync()[0];
      const den = tf.norm(yEval).dataSync()[0];
      return num / Math.max(den, 1e-30);
    });
  } catch (err) {
    warnings.push(`a training-mode call fails on this batch: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    state.forEach((w, k) => w.write(saved[k]));
    tf.dispose(saved);
  }
  if (trainEvalGap > t.gapTolerance) warnings.push(`training and inference outputs differ by ${(100 * trainEvalGap).toFixed(1)}%`);
  const frozenButUpdating = !layer.trainable && updatesInTraining;
  if (frozenButUpdating) warnings.push('trainable = false, but a training call still updates its moving statistics');

  const layout = statisticLayout(className, config, x.shape);
  let elementsPerStatistic: number | null = null;
  let varianceUnderflow: number | null = null;
  let variances: Float32Array | null = null;
  if (layout) {
    elementsPerStatistic = layout.axes.reduce((n, a) => n * x.shape[a], 1) / layout.groups;
    variances = statisticVariances(x, layout);
    varianceUnderflow = variances.reduce((n, v) => n + (v < epsilon ? 1 : 0), 0) / variances.length;
    if (elementsPerStatistic < t.minElements) warnings.push(`each statistic comes from only ${elementsPerStatistic} elements`);
    if (varianceUnderflow > 0) warnings.push(`${(100 * varianceUnderflow).toFixed(1)}% of statistics have variance below epsilon = ${epsilon}`);
  }

  const gamma = weightValue(layer, ['gamma', 'scale']);
  let deadGamma: number | null = null;
  if (gamma) {
    const g = gamma.dataSync() as Float32Array;
    deadGamma = g.reduce((n, v) => n + (Math.abs(v) < t.deadTolerance ? 1 : 0), 0) / g.length;
    if (deadGamma > 0) warnings.push(`${(100 * deadGamma).toFixed(1)}% of gamma entries are dead (|gamma| < ${t.deadTolerance})`);
  }

  let meanDrift: number | null = null;
  let varianceRatio: number | null = null;
  const movingMean = weightValue(layer, ['moving_mean']);
  const movingVariance = weightValue(layer, ['moving_variance']);
  if (movingMean && movingVariance && layout && className === 'BatchNormalization') {
    const [bm, bv] = tf.tidy(() => {
      const shift = tf.slice(x, x.shape.map(() => 0), x.shape.map((d, i) => (layout.axes.includes(i) ? 1 : d)));
      const { mean, variance } = tf.moments(tf.sub(x, shift), layout.axes);
      return [tf.add(tf.reshape(shift, [-1]), mean).dataSync(), variance.dataSync()];
    });
    const mm = movingMean.dataSync();
    const mv = movingVariance.dataSync();
    meanDrift = 0;
    varianceRatio = 1;
    for (let c = 0; c < mm.length; c++) {
      meanDrift = Math.max(meanDrift, Math.abs(mm[c] - bm[c]) / Math.sqrt(bv[c] + epsilon));
      const a = mv[c] + epsilon;
      const b = bv[c] + epsilon;
      varianceRatio = Math.max(varianceRatio, a / b, b / a);
    }
    if (meanDrift > t.driftTolerance) warnings.push(`moving mean is ${meanDrift.toFixed(2)} batch standard deviations from the batch mean`);
    if (varianceRatio > t.ratioTolerance) warnings.push(`moving variance differs from the batch variance by a factor ${varianceRatio.toFixed(2)}`);
  }

  return {
    layer: layer.name,
    className,
    inputShape: [...x.shape],
    trainEvalGap,
    elementsPerStatistic,
    varianceUnderflow,
    deadGamma,
    meanDrift,
    varianceRatio,
    updatesInTraining,
    frozenButUpdating,
    foldableInto,
    warnings,
  };
}
