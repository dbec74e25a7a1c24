/**
 * AdaB2N: a BatchNorm layer for replay-based continual learning, over {@link adaB2N}.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { CONVENTION_DEFAULTS } from '../../core/conventions.js';
import { checkFloat32, checkInRange, checkInteger } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { AFFINE_KEYS, type AffineLayerArgs, AffineNormLayer, firstInputShape } from '../../core/norm-layer.js';
import { registerNorm } from '../../core/registry.js';
import { registerLayerClass } from '../../core/serialization.js';
import { adaB2N, adab2nEta } from './op.js';

type LayerVariable = tfl.LayerVariable;

/** Arguments of {@link AdaB2N}; defaults of the reference code (PyTorch BatchNorm2d: eps 1e-5, momentum 0.1). */
export interface AdaB2NArgs extends AffineLayerArgs {
  /** Number of tasks of the continual-learning run (one learnable logit per task). Required. */
  numTasks?: number;
  /** Interpolates the running-statistics update between an EMA (1, default) and the cumulative average (0). */
  kappa?: number;
  /** Base momentum m, weight of the new batch statistics (PyTorch meaning, default 0.1). */
  momentum?: number;
  /** Initial task logits (default 0). */
  initWeight?: number;
  /** Weight lambda of the auxiliary statistics loss added to the model's loss (default 0.1; the paper's grid is 0.01 to 10). */
  lossWeight?: number;
  /** The auxiliary loss is added from this task index on (the paper's ada_t0, default 0). */
  lossFromTask?: number;
}

const WHERE = 'AdaB2N';

/** Largest `numTasks` accepted: one learned logit per task is allocated (continual learning uses tens). */
export const MAX_TASKS = 1e6;

/**
 * AdaB2N, channels last. Called on `x` or on `[x, taskIds]` (taskIds: one task index per sample, [N] or [N, 1]).
 * In a training call (`fit`) of task t > 0 with task ids, the batch statistics are balanced across tasks by
 * learnable task logits; the running statistics are updated with the modified momentum eta_step (kappa); the
 * auxiliary loss lambda * (MSE(mu, running mean) + MSE(var, running var)) is added to the model's loss from task
 * `lossFromTask` on. Inference: BatchNorm with the running statistics. Call {@link AdaB2N.endTask} between tasks.
 * Weights: gamma, beta, moving_mean, moving_variance, task_logits (trainable), num_batches_tracked, current_task.
 */
export class AdaB2N extends AffineNormLayer {
  static className = 'AdaB2N';
  static override argKeys: readonly string[] = [...AFFINE_KEYS, 'numTasks', 'kappa', 'momentum', 'initWeight', 'lossWeight', 'lossFromTask'];
  readonly numTasks: number;
  readonly kappa: number;
  readonly momentum: number;
  readonly initWeight: number;
  readonly lossWeight: number;
  readonly lossFromTask: number;
  private vars: Partial<Record<'movingMean' | 'movingVariance' | 'taskLogits' | 'step' | 'currentTask', LayerVariable>> = {};
  private lastLoss: tf.Tensor | null = null;
  private lossFresh = false;

  constructor(args: AdaB2NArgs = {}) {
    super(args, { epsilon: CONVENTION_DEFAULTS.pytorch.epsilon });
    if (args.numTasks === undefined) throw new NormkitError(WHERE, 'numTasks', 'an integer >= 1 (the number of tasks)', undefined);
    checkInteger(WHERE, 'numTasks', args.numTasks, 1, MAX_TASKS);
    this.numTasks = args.numTasks;
    this.kappa = args.kappa ?? 1;
    checkInRange(WHERE, 'kappa', this.kappa, 0, 1);
    this.momentum = args.momentum ?? CONVENTION_DEFAULTS.pytorch.momentum;
    checkInRange(WHERE, 'momentum', this.momentum, 0, 1);
    if (this.momentum === 0) throw new NormkitError(WHERE, 'momentum', 'a number in (0, 1]', this.momentum);
    this.initWeight = args.initWeight ?? 0;
    checkFloat32(WHERE, 'initWeight', this.initWeight);
    this.lossWeight = args.lossWeight ?? 0.1;
    if (typeof this.lossWeight !== 'number' || !Number.isFinite(this.lossWeight) || this.lossWeight < 0) {
      throw new NormkitError(WHERE, 'lossWeight', 'a finite number >= 0', this.lossWeight);
    }
    this.lossFromTask = args.lossFromTask ?? 0;
    checkInteger(WHERE, 'lossFromTask', this.lossFromTask, 0);
    this.addLoss(() => this.auxiliaryLoss());
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const channels = this.channelsLastSize(inputShape);
    this.buildAffine([channels]);
    this.vars.movingMean = this.addStateWeight('moving_mean', [channels], 'zeros');
    this.vars.movingVariance = this.addStateWeight('moving_variance', [channels], 'ones');
    this.vars.taskLogits = this.addWeight('task_logits', [this.numTasks], 'float32', tfl.initializers.constant({ value: this.initWeight }), undefined, true);
    this.vars.step = this.addStateWeight('num_batches_tracked', [1], 'zeros');
    this.vars.currentTask = this.addStateWeight('current_task', [1], 'zeros');
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    return firstInputShape(inputShape);
  }

  /** Index of the current task (0 for the first). */
  get currentTask(): number {
    return this.variables().currentTask.read().dataSync()[0];
  }

  /** Moves on to the next task (the reference code's `end_task`). */
  endTask(): void {
    const next = this.currentTask + 1;
    if (next >= this.numTasks) throw new NormkitError(`${WHERE}.endTask`, 'numTasks', `more than ${next} tasks to start task ${next}`, this.numTasks);
    tf.tidy(() => {
      this.variables().currentTask.write(tf.tensor1d([next]));
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs?: Record<string, unknown>): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    const taskIds = Array.isArray(inputs) && inputs.length > 1 ? inputs[1] : undefined;
    const training = kwargs?.['training'] === true && this.trainable;
    const v = this.variables();
    return tf.tidy(() => {
      // The step counter and the task stay tensors: a training call reads nothing back.
      const step = tf.add(v.step.read(), 1);
      const r = adaB2N(x, {
        training,
        movingMean: v.movingMean.read(),
        movingVariance: v.movingVariance.read(),
        eta: training ? adab2nEta(step, this.momentum, this.kappa) : undefined,
        taskIds,
        taskLogits: v.taskLogits.read(),
        currentTask: v.currentTask.read(),
        epsilon: this.epsilon,
        ...this.affineValues(),
      });
      if (training) {
        v.movingMean.write(r.movingMean);
        v.movingVariance.write(r.movingVariance);
        v.step.write(step);
        this.lastLoss?.dispose();
        this.lastLoss = tf.keep(r.statsLoss);
        this.lossFresh = true;
      }
      return r.y;
    });
  }

  /** lambda * statsLoss of the latest training call (once), from task `lossFromTask` on; 0 otherwise. */
  private auxiliaryLoss(): tf.Scalar {
    const fresh = this.lossFresh;
    this.lossFresh = false;
    if (!fresh || this.lastLoss === null || this.lossWeight === 0) return tf.scalar(0);
    const lastLoss = this.lastLoss;
    // The task test runs on the device: the loss is taken inside the training step.
    return tf.tidy(() => {
      const active = tf.greaterEqual(tf.reshape(this.variables().currentTask.read(), []), this.lossFromTask);
      return tf.where(active, tf.mul(lastLoss, this.lossWeight), tf.zerosLike(lastLoss)) as tf.Scalar;
    });
  }

  private variables(): Record<'movingMean' | 'movingVariance' | 'taskLogits' | 'step' | 'currentTask', LayerVariable> {
    const { movingMean, movingVariance, taskLogits, step, currentTask } = this.vars;
    if (!movingMean || !movingVariance || !taskLogits || !step || !currentTask) throw new Error(`${WHERE}: used before build()`);
    return { movingMean, movingVariance, taskLogits, step, currentTask };
  }

  override dispose(): ReturnType<tfl.layers.Layer['dispose']> {
    const result = super.dispose();
    if (result.refCountAfterDispose === 0) {
      this.lastLoss?.dispose();
      this.lastLoss = null;
    }
    return result;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      ...this.affineConfig(),
      numTasks: this.numTasks,
      kappa: this.kappa,
      momentum: this.momentum,
      initWeight: this.initWeight,
      lossWeight: this.lossWeight,
      lossFromTask: this.lossFromTask,
    };
  }
}

registerLayerClass(AdaB2N);

registerNorm({
  name: 'adab2n',
  aliases: ['AdaB2N'],
  kind: 'test-time',
  description: 'BatchNorm for continual learning: task-balanced batch statistics and a recency-balancing momentum for the running statistics.',
  paper: 'Lyu et al., "Overcoming Recency Bias of Normalization Statistics in Continual Learning: Balance and Adaptation", NeurIPS 2023, arXiv 2310.08855',
  layerClass: 'AdaB2N',
  create: (config) => new AdaB2N(config as AdaB2NArgs),
  doc: 'docs/adab2n.md',
});
