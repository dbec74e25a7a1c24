/**
 * LayerNorm removal by fine-tuning (Baroni et al., 2025, "Transformers Don't Need LayerNorm at Inference
 * Time"): each LayerNorm is replaced by a FakeLayerNorm that divides by a frozen constant instead of the
 * per-token standard deviation, one layer at a time on a schedule, while the model keeps training.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkBoolean, checkInRange, checkInteger, checkKnownKeys } from '../core/checks.js';
import { NormkitError } from '../core/errors.js';
import { AffineNormLayer, singleInput, type AffineLayerArgs } from '../core/norm-layer.js';
import { centeredMoments } from '../core/moments.js';
import { registerNorm } from '../core/registry.js';
import { registerLayerClass } from '../core/serialization.js';
import { LayerNormalization } from '../methods/layer-norm/layer.js';

/** Arguments of {@link FakeLayerNormalization}. */
export interface FakeLayerNormalizationArgs extends AffineLayerArgs {
  /** EMA weight of the OLD std estimate (default 0.9, as the reference). */
  momentum?: number;
  /** Start in fake mode (default false: behaves as LayerNorm and tracks the std). */
  fake?: boolean;
}

/**
 * LayerNorm over the last axis with a switch (Baroni et al.'s FakeLayerNorm):
 *
 *   real mode:  y = gamma * (x - mean(x)) / sqrt(var(x) + eps) + beta, and in training calls
 *               c_est <- m * c_est + (1 - m) * mean_tokens(sqrt(var(x) + eps))   (first call: c_est = batch value)
 *   fake mode:  y = gamma * (x - mean(x)) / c + beta, with c = c_est frozen when {@link switchToFake} ran.
 *
 * In fake mode every operation is linear in x (centering is a fixed projection), so the network no longer
 * normalizes. Weights: gamma, beta (LayerNorm's names), non-trainable `std_estimate` and `fake_std`.
 */
export class FakeLayerNormalization extends AffineNormLayer {
  static className = 'NormkitFakeLayerNormalization';
  readonly momentum: number;
  /** Whether the layer divides by the frozen constant. Serialized in the config. */
  fake: boolean;
  private stdEstimate: tfl.LayerVariable | null = null;
  private fakeStd: tfl.LayerVariable | null = null;

  constructor(args: FakeLayerNormalizationArgs = {}) {
    super(args, { epsilon: 1e-5 });
    this.momentum = args.momentum ?? 0.9;
    checkInRange('FakeLayerNormalization', 'momentum', this.momentum, 0, 1);
    this.fake = args.fake ?? false;
    checkBoolean('FakeLayerNormalization', 'fake', this.fake);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    const d = shape[shape.length - 1];
    if (d == null) throw new NormkitError('FakeLayerNormalization', 'inputShape', 'a known last dimension', shape);
    this.buildAffine([d]);
    // -1 marks "no estimate yet": the first training call takes the batch value.
    this.stdEstimate = this.addWeight('std_estimate', [1], 'float32', tfl.initializers.constant({ value: -1 }), undefined, false);
    this.fakeStd = this.addWeight('fake_std', [1], 'float32', tfl.initializers.ones(), undefined, false);
    this.built = true;
  }

  /** Current EMA estimate of the per-token std (-1 before the first training call). */
  currentStdEstimate(): number {
    return this.stdEstimate!.read().dataSync()[0];
  }

  /** The constant used in fake mode. */
  frozenStd(): number {
    return this.fakeStd!.read().dataSync()[0];
  }

  /** Freezes the current std estimate as the divisor and switches to fake mode. */
  switchToFake(): void {
    if (!this.built) throw new NormkitError('FakeLayerNormalization.switchToFake', 'layer', 'a built layer', this.name);
    const est = this.currentStdEstimate();
    if (!(est > 0)) {
      throw new NormkitError('FakeLayerNormalization.switchToFake', 'std_estimate', 'an estimate from at least one training call', est);
    }
    tf.tidy(() => {
      this.fakeStd!.write(tf.tensor1d([est]));
    });
    this.fake = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor {
    const x = singleInput(inputs);
    return tf.tidy(() => {
      const { variance, centered } = centeredMoments(x, [x.rank - 1]);
      let y: tf.Tensor;
      if (this.fake) {
        y = tf.div(centered, this.fakeStd!.read());
      } else {
        const std = tf.sqrt(tf.add(variance, this.epsilon));
        y = tf.div(centered, std);
        if (kwargs?.['training'] === true) {
          const batchStd = tf.reshape(tf.mean(std), [1]);
          const old = this.stdEstimate!.read();
          const ema = tf.add(tf.mul(old, this.momentum), tf.mul(batchStd, 1 - this.momentum));
          this.stdEstimate!.write(tf.where(tf.less(old, 0), batchStd, ema));
        }
      }
      const { gamma, beta } = this.affineValues();
      if (gamma) y = tf.mul(y, gamma);
      if (beta) y = tf.add(y, beta);
      return y;
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...this.affineConfig(), momentum: this.momentum, fake: this.fake };
  }
}

registerLayerClass(FakeLayerNormalization);

const WHERE = 'replaceLayerNormWithFake';

/**
 * A copy of `model` in which every LayerNormalization over the last axis is a {@link FakeLayerNormalization}
 * in real mode with the same gamma, beta and epsilon (same outputs until layers are switched). Other weights
 * are copied unchanged; the input model is not modified. Returns a new, uncompiled model.
 */
export async function replaceLayerNormWithFake(model: tfl.LayersModel, options: { momentum?: number } = {}): Promise<tfl.LayersModel> {
  if (!(model instanceof tfl.LayersModel)) throw new NormkitError(WHERE, 'model', 'a tf.LayersModel', model);
  checkKnownKeys(WHERE, options, ['momentum']);
  const momentum = options.momentum ?? 0.9;
  checkInRange(WHERE, 'momentum', momentum, 0, 1);
  const norms = model.layers.filter((l) => l instanceof LayerNormalization) as LayerNormalization[];
  if (norms.length === 0) throw new NormkitError(WHERE, 'model', 'a model with LayerNormalization layers', `'${model.name}' has none`);
  for (const ln of norms) {
    const axis = Array.isArray(ln.axis) ? ln.axis : [ln.axis];
    const rank = (ln.input as tfl.SymbolicTensor).shape.length;
    if (axis.length !== 1 || !(axis[0] === -1 || axis[0] === rank - 1)) {
      throw new NormkitError(WHERE, 'model', 'LayerNormalization layers over the last axis', `'${ln.name}' over axis ${JSON.stringify(ln.axis)}`);
    }
  }
  const topology = JSON.parse(model.toJSON(null, true) as string) as { config: { layers: Array<{ class_name: string; config: Record<string, unknown> }> } };
  for (const entry of topology.config.layers) {
    const ln = norms.find((n) => n.name === entry.config.name);
    if (!ln) continue;
    entry.class_name = FakeLayerNormalization.className;
    entry.config = { name: ln.name, trainable: ln.trainable, epsilon: ln.epsilon, center: ln.center, scale: ln.scale, momentum, fake: false };
  }
  const converted = await tfl.models.modelFromJSON({ modelTopology: topology as unknown as tf.io.ModelJSON['modelTopology'] });
  const source = new Map(model.weights.map((w) => [w.originalName, w]));
  tf.tidy(() => {
    for (const w of converted.weights) {
      const from = source.get(w.originalName);
      if (from) w.write(from.read());
    }
  });
  return converted;
}

/** One switch of a {@link lnRemovalSchedule}: at optimizer step `step`, layer `layer` becomes fake. */
export interface LNRemovalEvent {
  step: number;
  layer: string;
}

/** Options of {@link lnRemovalSchedule}. */
export interface LNRemovalScheduleOptions {
  /** Step of the first switch (default 20, the reference's GPT-2 small config). */
  start?: number;
  /** Steps between the MLP-input norms of consecutive blocks (default 2). */
  gapMlp?: number;
  /** Steps between the attention-input norms of consecutive blocks (default 2). */
  gapAttn?: number;
  /** Steps between the last attention norm and the final norm (default 3). */
  gapFinal?: number;
}

/**
 * The progressive removal order of the reference (`config.py`), for a model built by buildTransformerLM
 * with placement 'pre': the MLP-input norms `block{i}_mlp_norm` at `start + i*gapMlp`, then the
 * attention-input norms `block{i}_attn_norm` at `tMlp + gapMlp + i*gapAttn` (tMlp: the last MLP switch),
 * then `final_norm` `gapFinal` steps after the last attention switch. Layers not in `model` are skipped;
 * every FakeLayerNormalization of the model must be scheduled.
 */
export function lnRemovalSchedule(model: tfl.LayersModel, options: LNRemovalScheduleOptions = {}): LNRemovalEvent[] {
  const where = 'lnRemovalSchedule';
  if (!(model instanceof tfl.LayersModel)) throw new NormkitError(where, 'model', 'a tf.LayersModel', model);
  checkKnownKeys(where, options, ['start', 'gapMlp', 'gapAttn', 'gapFinal']);
  const start = options.start ?? 20;
  const gapMlp = options.gapMlp ?? 2;
  const gapAttn = options.gapAttn ?? 2;
  const gapFinal = options.gapFinal ?? 3;
  checkInteger(where, 'start', start, 0);
  checkInteger(where, 'gapMlp', gapMlp, 0);
  checkInteger(where, 'gapAttn', gapAttn, 0);
  checkInteger(where, 'gapFinal', gapFinal, 0);
  const fakes = model.layers.filter((l) => l instanceof FakeLayerNormalization).map((l) => l.name);
  if (fakes.length === 0) throw new NormkitError(where, 'model', 'a model from replaceLayerNormWithFake', `'${model.name}' has no FakeLayerNormalization`);
  const blocks = Math.max(0, ...fakes.map((n) => /^block(\d+)_/.exec(n)).filter((m) => m !== null).map((m) => Number(m![1]) + 1));
  const events: LNRemovalEvent[] = [];
  let step = start;
  for (let i = 0; i < blocks; i++) {
    if (fakes.includes(`block${i}_mlp_norm`)) events.push({ step, layer: `block${i}_mlp_norm` });
    step += gapMlp;
  }
  for (let i = 0; i < blocks; i++) {
    if (fakes.includes(`block${i}_attn_norm`)) events.push({ step, layer: `block${i}_attn_norm` });
    if (i < blocks - 1) step += gapAttn;
  }
  step += gapFinal;
  if (fakes.includes('final_norm')) events.push({ step, layer: 'final_norm' });
  const missing = fakes.filter((n) => !events.some((e) => e.layer === n));
  if (missing.length > 0) throw new NormkitError(where, 'model', 'only the norms of a Pre-LN buildTransformerLM model', `unscheduled norms ${missing.join(', ')}`);
  return events;
}

/**
 * Switches every layer whose event step is <= `step` (and is not fake yet) to fake mode; returns the names
 * switched now. Call after each optimizer step with the number of steps done, or use {@link lnRemovalCallback}.
 */
export function applyLNRemoval(model: tfl.LayersModel, schedule: LNRemovalEvent[], step: number): string[] {
  const switched: string[] = [];
  for (const event of schedule) {
    if (event.step > step) continue;
    const layer = model.getLayer(event.layer);
    if (!(layer instanceof FakeLayerNormalization)) {
      throw new NormkitError('applyLNRemoval', 'schedule', 'events naming FakeLayerNormalization layers', event.layer);
    }
    if (!layer.fake) {
      layer.switchToFake();
      switched.push(layer.name);
    }
  }
  return switched;
}

/** A model.fit callback that counts optimizer steps (batches) and applies the schedule after each one. */
export function lnRemovalCallback(model: tfl.LayersModel, schedule: LNRemovalEvent[], startStep = 0): tfl.CustomCallback {
  let step = startStep;
  return new tfl.CustomCallback({
    onBatchEnd: async () => {
      step += 1;
      applyLNRemoval(model, schedule, step);
    },
  });
}

registerNorm({
  name: 'ln-removal',
  aliases: ['fake-layer-norm', 'FakeLayerNormalization'],
  kind: 'normalization-free',
  description: 'Removes LayerNorm by fine-tuning: each LN in turn divides by a frozen std estimate instead of the per-token std.',
  paper: 'Baroni et al., "Transformers Don\'t Need LayerNorm at Inference Time: Scaling LayerNorm Removal to GPT-2 XL and the Implications for Mechanistic Interpretability", 2025',
  layerClass: FakeLayerNormalization.className,
  create: (config) => new FakeLayerNormalization(config as FakeLayerNormalizationArgs),
  doc: 'docs/ln-removal.md',
});
