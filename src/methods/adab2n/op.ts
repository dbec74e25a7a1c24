/**
 * AdaB2N (Lyu et al., NeurIPS 2023): BatchNorm for replay-based continual learning, with task-balanced batch
 * statistics and a "modified momentum" for the running statistics.
 */
import * as tf from '@tensorflow/tfjs-core';
import { applyAffine } from '../../core/affine.js';
import { broadcastShape } from '../../core/axes.js';
import { CONVENTION_DEFAULTS } from '../../core/conventions.js';
import { checkBoolean, checkFloatTensor, checkInRange, checkInteger, checkKnownKeys, checkParam, checkPositive, checkRequiredParam, checkScalarParam } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { centeredMoments } from '../../core/moments.js';
import { stopGradient } from '../../core/stop-gradient.js';
import { exp } from '../../core/second-order.js';

/**
 * Weight eta_t of the new batch statistics at training step t >= 1 (the running statistics become
 * `(1 - eta_t) running + eta_t batch`), from the base momentum m (PyTorch meaning, default 0.1) and kappa in [0, 1]:
 *
 *   eta_1 = m^kappa,  eta_t = eta_{t-1} / (eta_{t-1} + (1 - m)^kappa),
 *
 * so kappa = 1 gives eta = m (an EMA) and kappa = 0 gives eta = 1/t (the cumulative average). Evaluated in
 * closed form: with r = (1 - m)^kappa, 1/eta_t = (1 - r^(t-1)) / (1 - r) + r^(t-1) m^(-kappa)  ((t - 1) + 1 for r = 1).
 * A tensor `step` (a layer's counter) gives a tensor of its shape, computed on the device in float32.
 *
 * @example
 * adab2nEta(3, 0.1, 0);  // 1/3, the cumulative average
 */
export function adab2nEta(step: number, momentum: number, kappa: number): number;
export function adab2nEta(step: tf.Tensor, momentum: number, kappa: number): tf.Tensor;
export function adab2nEta(step: number | tf.Tensor, momentum: number, kappa: number): number | tf.Tensor {
  if (step instanceof tf.Tensor) checkFloatTensor('adab2nEta', 'step', step);
  else checkInteger('adab2nEta', 'step', step, 1);
  checkInRange('adab2nEta', 'momentum', momentum, 0, 1);
  if (momentum === 0) throw new NormkitError('adab2nEta', 'momentum', 'a number in (0, 1]', momentum);
  checkInRange('adab2nEta', 'kappa', kappa, 0, 1);
  const r = (1 - momentum) ** kappa;
  const first = momentum ** -kappa;
  if (step instanceof tf.Tensor) {
    return tf.tidy(() => {
      // kappa = 1 is the plain EMA: eta = m at every step, with no float32 rounding of the closed form.
      if (kappa === 1) return tf.fill(step.shape, momentum);
      const past = tf.sub(step, 1);
      if (r === 1) return tf.div(1, tf.add(past, first));
      const rt = tf.exp(tf.mul(past, Math.log(r)));
      return tf.div(1, tf.add(tf.div(tf.sub(1, rt), 1 - r), tf.mul(rt, first)));
    });
  }
  const rt = r ** (step - 1);
  const inverse = r === 1 ? step - 1 + first : (1 - rt) / (1 - r) + rt * first;
  return 1 / inverse;
}

/** Options of {@link adaB2N}. */
export interface AdaB2NOptions {
  /** Batch statistics and a running-statistics update (true), or the running statistics (false). */
  training: boolean;
  /** Running mean, shape [C]. */
  movingMean: tf.Tensor;
  /** Running variance, shape [C]. */
  movingVariance: tf.Tensor;
  /** Weight of the new statistics in the running update (training; see {@link adab2nEta}); a number or a scalar tensor. */
  eta?: number | tf.Tensor;
  /**
   * Task id of every sample, shape [N] or [N, 1], integers in [0, currentTask]. Without it (or in task 0) plain
   * batch statistics. With a numeric `currentTask` the ids are checked on the host (one read); with a tensor
   * `currentTask` nothing is read back and a sample whose id is not an integer in [0, currentTask] is masked
   * out of the balanced statistics (weight 0; it is still normalized).
   */
  taskIds?: tf.Tensor;
  /** Learnable task logits w, shape [T] with T > currentTask (required with taskIds). */
  taskLogits?: tf.Tensor;
  /**
   * Index of the current task (0 for the first); tasks 0..currentTask take part in the balance. A scalar tensor
   * (a layer's state) keeps the step on the device: both the balanced and the plain statistics are computed and
   * the one of the current task is selected with tf.where.
   */
  currentTask?: number | tf.Tensor;
  gamma?: tf.Tensor;
  beta?: tf.Tensor;
  /** Added to the variance inside the square root (default 1e-5). */
  epsilon?: number;
}

/** What {@link adaB2N} returns; every tensor is new and owned by the caller. */
export interface AdaB2NResult {
  y: tf.Tensor;
  movingMean: tf.Tensor;
  movingVariance: tf.Tensor;
  /**
   * The auxiliary loss MSE(mu, movingMean') + MSE(var, movingVariance') against the UPDATED running statistics
   * (as the reference code), differentiable through mu and var; 0 in inference.
   */
  statsLoss: tf.Tensor;
}

const WHERE = 'adaB2N';

/**
 * AdaB2N on channels-last `x` ([N, C] or [N, ...spatial, C]). Training with task ids (from the second task on):
 *
 *   n_k = #samples of task k,  pi_k = (exp(w_k) + n_k) / sum_{j <= current} (exp(w_j) + n_j),  s_i = pi_{k(i)} / n_{k(i)}
 *   mu = sum_i s_i m_i  (m_i: spatial mean of sample i),  var = sum_i s_i mean_spatial((x_i - mu)^2)
 *
 * otherwise the biased batch statistics. Then `y = gamma (x - mu)/sqrt(var + eps) + beta`, and
 * `running <- (1 - eta) running + eta batch` for mean and (biased) variance. Inference: the running statistics.
 * Gradients reach x and the task logits through mu and var.
 */
export function adaB2N(x: tf.Tensor, options: AdaB2NOptions): AdaB2NResult {
  if (options === undefined || options === null || typeof options !== 'object') {
    throw new NormkitError(WHERE, 'options', 'an object with training, movingMean and movingVariance', options);
  }
  checkKnownKeys(WHERE, options, ['training', 'movingMean', 'movingVariance', 'eta', 'taskIds', 'taskLogits', 'currentTask', 'gamma', 'beta', 'epsilon']);
  checkFloatTensor(WHERE, 'x', x, 2);
  checkBoolean(WHERE, 'training', options.training);
  const channels = x.shape[x.rank - 1];
  for (const name of ['movingMean', 'movingVariance'] as const) checkRequiredParam(WHERE, name, options[name], [channels]);
  checkParam(WHERE, 'gamma', options.gamma, [channels]);
  checkParam(WHERE, 'beta', options.beta, [channels]);
  const epsilon = options.epsilon ?? CONVENTION_DEFAULTS.pytorch.epsilon;
  checkPositive(WHERE, 'epsilon', epsilon);
  const currentTask = options.currentTask ?? 0;
  const deviceTask = currentTask instanceof tf.Tensor;
  if (deviceTask) checkScalarParam(WHERE, 'currentTask', currentTask);
  else checkInteger(WHERE, 'currentTask', currentTask, 0);
  let balanced = false;
  if (options.training) {
    if (options.eta === undefined) throw new NormkitError(WHERE, 'eta', 'a number in (0, 1] in training (see adab2nEta)', undefined);
    if (options.eta instanceof tf.Tensor) checkScalarParam(WHERE, 'eta', options.eta);
    else checkInRange(WHERE, 'eta', options.eta, 0, 1);
    if (x.size / channels < 2) throw new NormkitError(WHERE, 'x', 'more than one value per channel in training', `shape [${x.shape.join(', ')}]`);
    balanced = options.taskIds !== undefined && (deviceTask || currentTask > 0);
    if (balanced) checkTaskIds(x, options.taskIds, options.taskLogits, deviceTask ? null : currentTask);
  }
  const out = tf.tidy(() => {
    const bShape = broadcastShape(x.shape, [x.rank - 1]);
    const affine = (normalized: tf.Tensor) => applyAffine(normalized, [x.rank - 1], options.gamma, options.beta);
    if (!options.training) {
      const y = tf.mul(tf.sub(x, tf.reshape(options.movingMean, bShape)), tf.reshape(tf.rsqrt(tf.add(options.movingVariance, epsilon)), bShape));
      return [affine(y), tf.clone(options.movingMean), tf.clone(options.movingVariance), tf.scalar(0)];
    }
    const { mean, variance, centered } = balanced ? taskMoments(x, options.taskIds as tf.Tensor, options.taskLogits as tf.Tensor, currentTask) : plainMoments(x);
    const y = affine(tf.mul(centered, tf.rsqrt(tf.add(variance, epsilon))));
    const eta = options.eta as number | tf.Tensor;
    const mu = tf.reshape(mean, [channels]);
    const v = tf.reshape(variance, [channels]);
    const newMean = tf.add(options.movingMean, tf.mul(tf.sub(stopGradient(mu), options.movingMean), eta));
    const newVariance = tf.add(tf.mul(options.movingVariance, typeof eta === 'number' ? 1 - eta : tf.sub(1, eta)), tf.mul(stopGradient(v), eta));
    const loss = tf.add(tf.mean(tf.square(tf.sub(mu, stopGradient(newMean)))), tf.mean(tf.square(tf.sub(v, stopGradient(newVariance)))));
    return [y, newMean, newVariance, loss];
  });
  return { y: out[0], movingMean: out[1], movingVariance: out[2], statsLoss: out[3] };
}

/**
 * Checks task ids and logits: shape [N] or [N, 1]; logits of shape [T], with T > currentTask where the task is
 * known on the host, and then the id values too (integers in [0, currentTask]: one read).
 */
function checkTaskIds(x: tf.Tensor, taskIds: unknown, taskLogits: unknown, currentTask: number | null): void {
  const n = x.shape[0];
  if (!(taskIds instanceof tf.Tensor) || taskIds.size !== n || (taskIds.rank !== 1 && !(taskIds.rank === 2 && taskIds.shape[1] === 1))) {
    throw new NormkitError(WHERE, 'taskIds', `a tensor of shape [${n}] (one task id per sample)`, taskIds);
  }
  checkFloatTensor(WHERE, 'taskLogits', taskLogits, 1);
  if (currentTask === null) {
    if (taskLogits.rank !== 1) throw new NormkitError(WHERE, 'taskLogits', 'a tensor of shape [T] (one logit per task)', `shape [${taskLogits.shape.join(', ')}]`);
    return;
  }
  if (taskLogits.rank !== 1 || taskLogits.shape[0] <= currentTask) {
    throw new NormkitError(WHERE, 'taskLogits', `a tensor of shape [T] with T > currentTask = ${currentTask}`, `shape [${taskLogits.shape.join(', ')}]`);
  }
  for (const id of Array.from(taskIds.dataSync())) {
    if (!Number.isInteger(id) || id < 0 || id > currentTask) {
      throw new NormkitError(WHERE, 'taskIds', `integers in [0, ${currentTask}] (tasks seen so far)`, `the value ${id}`);
    }
  }
}

/**
 * The balanced moments from the second task on, the plain ones in the first: with a tensor task both are
 * computed and the right ones selected on the device.
 */
function taskMoments(x: tf.Tensor, taskIds: tf.Tensor, logits: tf.Tensor, currentTask: number | tf.Tensor) {
  const task = tf.reshape(currentTask, []);
  const ids = tf.cast(tf.reshape(taskIds, [x.shape[0]]), 'float32');
  const balanced = balancedMoments(x, ids, logits, task);
  if (!(currentTask instanceof tf.Tensor)) return balanced;
  const plain = plainMoments(x);
  const later = tf.greater(task, 0);
  return {
    mean: tf.where(later, balanced.mean, plain.mean),
    variance: tf.where(later, balanced.variance, plain.variance),
    centered: tf.where(later, balanced.centered, plain.centered),
  };
}

/** Biased batch moments over every axis but the channels (shifted two-pass). */
function plainMoments(x: tf.Tensor) {
  const axes = x.shape.map((_, i) => i).slice(0, -1);
  return centeredMoments(x, axes);
}

/**
 * The task-balanced moments, with kept dimensions. The sample weights need not sum to 1 (a task of the
 * balance absent from the batch keeps its share pi_k), exactly as the reference code.
 */
function balancedMoments(x: tf.Tensor, ids: tf.Tensor, logits: tf.Tensor, currentTask: tf.Tensor) {
  const n = x.shape[0];
  const channels = x.shape[x.rank - 1];
  const tasks = logits.shape[0];
  // Every count and choice on the device. A sample counts when its id is an integer in [0, currentTask]; the
  // tasks past currentTask get no share (where, not a product, so a large unused logit cannot give inf * 0).
  const valid = tf.logicalAnd(tf.logicalAnd(tf.greaterEqual(ids, 0), tf.lessEqual(ids, currentTask)), tf.equal(ids, tf.round(ids)));
  const oneHot = tf.mul(tf.cast(tf.oneHot(tf.cast(tf.clipByValue(ids, 0, tasks - 1), 'int32'), tasks), 'float32'), tf.reshape(tf.cast(valid, 'float32'), [n, 1]));
  const counts = tf.sum(oneHot, 0);
  const seen = tf.lessEqual(tf.range(0, tasks), currentTask);
  const concentration = tf.where(seen, tf.add(exp(tf.where(seen, logits, tf.zerosLike(logits))), counts), tf.zerosLike(logits));
  const pi = tf.div(concentration, tf.sum(concentration));
  const sampleCounts = tf.maximum(tf.squeeze(tf.matMul(oneHot, tf.reshape(counts, [tasks, 1])), [1]), 1);
  const sampleWeights = tf.div(tf.squeeze(tf.matMul(oneHot, tf.reshape(pi, [tasks, 1])), [1]), sampleCounts);
  // Shift by one sample per channel so the weighted sums keep their digits on a large common offset.
  const flat = tf.reshape(x, [n, -1, channels]);
  const shift = tf.slice(flat, [0, 0, 0], [1, 1, channels]);
  const d = tf.sub(flat, shift);
  const w = tf.reshape(sampleWeights, [1, n]);
  const sampleMeans = tf.mean(d, 1);
  // mu - K = sum_i s_i mean(x_i - K) + K (sum_i s_i - 1): the weights sum to 1 unless a task is absent.
  const weightSum = tf.sum(sampleWeights);
  const meanOffset = tf.add(tf.reshape(tf.matMul(w, sampleMeans), [1, 1, channels]), tf.mul(shift, tf.sub(weightSum, 1)));
  const centeredFlat = tf.sub(d, meanOffset);
  const variance = tf.reshape(tf.matMul(w, tf.mean(tf.square(centeredFlat), 1)), [1, 1, channels]);
  const keep = x.shape.map((_, i) => (i === x.rank - 1 ? channels : 1));
  return {
    mean: tf.reshape(tf.add(shift, meanOffset), keep),
    variance: tf.reshape(variance, keep),
    centered: tf.reshape(centeredFlat, x.shape),
  };
}
