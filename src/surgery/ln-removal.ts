/**
 * LayerNorm removal by fine-tuning (Baroni et al., 2025, "Transformers Don't Need LayerNorm at Inference
 * Time"): each LayerNorm is replaced by a FakeLayerNorm that divides by a frozen constant instead of the
 * per-token standard deviation, one layer at a time on a schedule, while the model keeps training.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkBoolean, checkInRange, checkInteger, checkKnownKeys } from '../core/checks.js';
import { NormkitError } from '../core/errors.js';
import { AFFINE_KEYS, type AffineLayerArgs, AffineNormLayer, singleInput } from '../core/norm-layer.js';
import { centeredMoments } from '../core/moments.js';
import { registerNorm } from '../core/registry.js';
import { registerLayerClass } from '../core/serialization.js';
import { LayerNormalization } from '../methods/layer-norm/layer.js';
import { CausalSelfAttention } from '../models/transformer-layers.js';

/** Arguments of {@link FakeLayerNormalization}. */
export interface FakeLayerNormalizationArgs extends AffineLayerArgs {
  /** EMA weight of the OLD std estimate (default 0.9, as the reference). */
  momentum?: number;
  /** Start in fake mode (default false: behaves as LayerNorm and tracks the std). */
  fake?: boolean;
  /**
   * Give position 0 of a [B, T, D] input its own constant (the reference's BOS treatment: the first token is an
   * attention sink with a much larger norm) until {@link FakeLayerNormalization.mergeFirstPosition} (default false).
   */
  firstPosition?: boolean;
  /** Whether position 0 already uses the common constant (default false). */
  firstMerged?: boolean;
}

/**
 * LayerNorm over the last axis with a switch (Baroni et al.'s FakeLayerNorm):
 *
 *   real mode:  y = gamma * (x - mean(x)) / sqrt(var(x) + eps) + beta, and in training calls
 *               c <- m * c + (1 - m) * mean_tokens(sqrt(var(x) + eps))   (first call: c = batch value)
 *   fake mode:  y = gamma * (x - mean(x)) / c + beta, with c frozen when {@link switchToFake} ran.
 *
 * With `firstPosition`, position 0 keeps its own estimate c0 (tokens t >= 1 feed c), is divided by c0 in fake
 * mode, and uses c after {@link mergeFirstPosition}. In fake mode every operation is linear in x, so the
 * network no longer normalizes. Weights: gamma, beta (LayerNorm's names); non-trainable `std_estimate`,
 * `fake_std` and, with `firstPosition`, `std_estimate_first`, `fake_std_first`.
 */
export class FakeLayerNormalization extends AffineNormLayer {
  static className = 'NormkitFakeLayerNormalization';
  static override argKeys: readonly string[] = [...AFFINE_KEYS, 'momentum', 'fake', 'firstPosition', 'firstMerged'];
  readonly momentum: number;
  readonly firstPosition: boolean;
  /** Whether the layer divides by the frozen constant. Serialized in the config. */
  fake: boolean;
  /** Whether position 0 uses the common constant. Serialized in the config. */
  firstMerged: boolean;
  /** The feature (last axis) size, set by build. */
  private features = 0;
  private stdEstimate: tfl.LayerVariable | null = null;
  private fakeStd: tfl.LayerVariable | null = null;
  private stdEstimateFirst: tfl.LayerVariable | null = null;
  private fakeStdFirst: tfl.LayerVariable | null = null;

  constructor(args: FakeLayerNormalizationArgs = {}) {
    super(args, { epsilon: 1e-5 });
    const where = 'FakeLayerNormalization';
    this.momentum = args.momentum ?? 0.9;
    checkInRange(where, 'momentum', this.momentum, 0, 1);
    this.fake = args.fake ?? false;
    checkBoolean(where, 'fake', this.fake);
    this.firstPosition = args.firstPosition ?? false;
    checkBoolean(where, 'firstPosition', this.firstPosition);
    this.firstMerged = args.firstMerged ?? false;
    checkBoolean(where, 'firstMerged', this.firstMerged);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    const d = shape[shape.length - 1];
    if (d == null) throw new NormkitError('FakeLayerNormalization', 'inputShape', 'a known last dimension', shape);
    this.features = d;
    if (this.firstPosition && shape.length !== 3) {
      throw new NormkitError('FakeLayerNormalization', 'firstPosition', 'false unless the input is [batch, time, features]', true);
    }
    this.buildAffine([d]);
    // -1 marks "no estimate yet": the first training call takes the batch value.
    const unset = tfl.initializers.constant({ value: -1 });
    this.stdEstimate = this.addWeight('std_estimate', [1], 'float32', unset, undefined, false);
    this.fakeStd = this.addWeight('fake_std', [1], 'float32', tfl.initializers.ones(), undefined, false);
    if (this.firstPosition) {
      this.stdEstimateFirst = this.addWeight('std_estimate_first', [1], 'float32', unset, undefined, false);
      this.fakeStdFirst = this.addWeight('fake_std_first', [1], 'float32', tfl.initializers.ones(), undefined, false);
    }
    this.built = true;
  }

  /** Current EMA estimate of the per-token std (-1 before the first training call); position 0 excluded with `firstPosition`. */
  currentStdEstimate(): number {
    return this.stdEstimate!.read().dataSync()[0];
  }

  /** Current estimate for position 0 (`firstPosition` only). */
  currentFirstStdEstimate(): number {
    if (!this.stdEstimateFirst) throw new NormkitError('FakeLayerNormalization.currentFirstStdEstimate', 'firstPosition', 'true', false);
    return this.stdEstimateFirst.read().dataSync()[0];
  }

  /** The constant used in fake mode. */
  frozenStd(): number {
    return this.fakeStd!.read().dataSync()[0];
  }

  /** The constant position 0 uses in fake mode (the common one once merged or without `firstPosition`). */
  frozenFirstStd(): number {
    return this.fakeStdFirst && !this.firstMerged ? this.fakeStdFirst.read().dataSync()[0] : this.frozenStd();
  }

  /** Freezes the current std estimate(s) as the divisor(s) and switches to fake mode. */
  switchToFake(): void {
    const where = 'FakeLayerNormalization.switchToFake';
    if (!this.built) throw new NormkitError(where, 'layer', 'a built layer', this.name);
    const est = this.currentStdEstimate();
    const first = this.firstPosition ? this.currentFirstStdEstimate() : est;
    if (!(est > 0) || !(first > 0)) throw new NormkitError(where, 'std_estimate', 'an estimate from at least one training call', est > 0 ? first : est);
    tf.tidy(() => {
      this.fakeStd!.write(tf.tensor1d([est]));
      this.fakeStdFirst?.write(tf.tensor1d([first]));
    });
    this.fake = true;
  }

  /** From now on position 0 uses the common constant (the reference merges the BOS constant last). */
  mergeFirstPosition(): void {
    this.firstMerged = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor {
    const x = singleInput(inputs);
    // gamma, beta and the constants broadcast: an input of other width would give a wrong-shaped output silently.
    const d = this.features;
    if (x.shape[x.rank - 1] !== d || x.rank < 1) {
      throw new NormkitError('FakeLayerNormalization', 'inputs', `a tensor [..., ${d}] (the feature count the layer was built for)`, `shape [${x.shape.join(', ')}]`);
    }
    const separate = this.firstPosition && !this.firstMerged && x.rank === 3;
    return tf.tidy(() => {
      const { variance, centered } = centeredMoments(x, [x.rank - 1]);
      let y: tf.Tensor;
      if (this.fake) {
        let divisor = this.fakeStd!.read();
        if (separate && (x.shape[1] as number) > 0) {
          const time = x.shape[1] as number;
          const first = tf.reshape(this.fakeStdFirst!.read(), [1, 1, 1]);
          divisor = time === 1 ? first : tf.concat([first, tf.tile(tf.reshape(divisor, [1, 1, 1]), [1, time - 1, 1])], 1);
        }
        y = tf.div(centered, divisor);
      } else {
        const std = tf.sqrt(tf.add(variance, this.epsilon));
        y = tf.div(centered, std);
        if (kwargs?.['training'] === true) {
          const update = (v: tfl.LayerVariable, batch: tf.Tensor) => {
            const old = v.read();
            const ema = tf.add(tf.mul(old, this.momentum), tf.mul(batch, 1 - this.momentum));
            v.write(tf.where(tf.less(old, 0), batch, ema));
          };
          if (this.firstPosition && x.rank === 3) {
            const time = x.shape[1] as number;
            update(this.stdEstimateFirst!, tf.reshape(tf.mean(tf.slice(std, [0, 0, 0], [-1, 1, -1])), [1]));
            if (time > 1) update(this.stdEstimate!, tf.reshape(tf.mean(tf.slice(std, [0, 1, 0], [-1, -1, -1])), [1]));
          } else {
            update(this.stdEstimate!, tf.reshape(tf.mean(std), [1]));
          }
        }
      }
      const { gamma, beta } = this.affineValues();
      if (gamma) y = tf.mul(y, gamma);
      if (beta) y = tf.add(y, beta);
      return y;
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...this.affineConfig(), momentum: this.momentum, fake: this.fake, firstPosition: this.firstPosition, firstMerged: this.firstMerged };
  }
}

registerLayerClass(FakeLayerNormalization);

const WHERE = 'replaceLayerNormWithFake';

/** Options of {@link replaceLayerNormWithFake}. */
export interface ReplaceLayerNormOptions {
  /** EMA weight of the old std estimate (default 0.9). */
  momentum?: number;
  /** Separate constant for position 0 of [B, T, D] inputs (the BOS treatment; default true for such inputs). */
  firstPosition?: boolean;
  /**
   * Split each LN that feeds only a CausalSelfAttention into two copies, `<name>_qk` for the query/key path
   * and `<name>_v` for the value path, removed at different steps (the reference's ln1qk / ln1v; default true).
   */
  splitAttention?: boolean;
}

/**
 * A copy of `model` in which every LayerNormalization over the last axis is a {@link FakeLayerNormalization}
 * in real mode with the same gamma, beta and epsilon (same outputs until layers are switched). Other weights
 * are copied unchanged; the input model is not modified. Returns a new, uncompiled model.
 */
export async function replaceLayerNormWithFake(model: tfl.LayersModel, options: ReplaceLayerNormOptions = {}): Promise<tfl.LayersModel> {
  if (!(model instanceof tfl.LayersModel)) throw new NormkitError(WHERE, 'model', 'a tf.LayersModel', model);
  checkKnownKeys(WHERE, options, ['momentum', 'firstPosition', 'splitAttention']);
  const splitAttention = options.splitAttention ?? true;
  checkBoolean(WHERE, 'splitAttention', splitAttention);
  const momentum = options.momentum ?? 0.9;
  checkInRange(WHERE, 'momentum', momentum, 0, 1);
  if (options.firstPosition !== undefined) checkBoolean(WHERE, 'firstPosition', options.firstPosition);
  const norms = model.layers.filter((l) => l instanceof LayerNormalization) as LayerNormalization[];
  if (norms.length === 0) throw new NormkitError(WHERE, 'model', 'a model with LayerNormalization layers', `'${model.name}' has none`);
  const ranks = new Map<string, number>();
  for (const ln of norms) {
    const axis = Array.isArray(ln.axis) ? ln.axis : [ln.axis];
    const rank = (ln.input as tfl.SymbolicTensor).shape.length;
    ranks.set(ln.name, rank);
    if (axis.length !== 1 || !(axis[0] === -1 || axis[0] === rank - 1)) {
      throw new NormkitError(WHERE, 'model', 'LayerNormalization layers over the last axis', `'${ln.name}' over axis ${JSON.stringify(ln.axis)}`);
    }
  }
  type Entry = { class_name: string; name?: string; config: Record<string, unknown>; inbound_nodes?: unknown[] };
  const topology = JSON.parse(model.toJSON(null, true) as string) as { config: { layers: Entry[] } };
  // New layer name -> the LN whose weights it takes.
  const sourceLayer = new Map<string, string>();
  const layers: Entry[] = [];
  for (const entry of topology.config.layers) {
    const ln = norms.find((n) => n.name === entry.config.name);
    if (!ln) {
      layers.push(entry);
      continue;
    }
    const firstPosition = (options.firstPosition ?? true) && ranks.get(ln.name) === 3;
    const fakeEntry = (name: string): Entry => ({
      ...entry,
      name,
      class_name: FakeLayerNormalization.className,
      config: { name, trainable: ln.trainable, epsilon: ln.epsilon, center: ln.center, scale: ln.scale, momentum, fake: false, firstPosition, firstMerged: false },
    });
    const readers = ln.outboundNodes.map((node) => node.outboundLayer);
    const split = splitAttention && readers.length === 1 && readers[0] instanceof CausalSelfAttention && readers[0].inboundNodes.length === 1;
    if (!split) {
      layers.push(fakeEntry(ln.name));
      sourceLayer.set(ln.name, ln.name);
      continue;
    }
    for (const suffix of ['_qk', '_v']) {
      layers.push(fakeEntry(ln.name + suffix));
      sourceLayer.set(ln.name + suffix, ln.name);
    }
    const attention = topology.config.layers.find((e) => e.config.name === readers[0].name)!;
    attention.inbound_nodes = [[[`${ln.name}_qk`, 0, 0, {}], [`${ln.name}_v`, 0, 0, {}]]];
  }
  topology.config.layers = layers;
  const converted = await tfl.models.modelFromJSON({ modelTopology: topology as unknown as tf.io.ModelJSON['modelTopology'] });
  const source = new Map(model.weights.map((w) => [w.originalName, w]));
  tf.tidy(() => {
    for (const w of converted.weights) {
      const [layerName, ...rest] = w.originalName.split('/');
      const from = source.get([sourceLayer.get(layerName) ?? layerName, ...rest].join('/'));
      if (from) w.write(from.read());
    }
  });
  return converted;
}

/** One step of a {@link lnRemovalSchedule}: at optimizer step `step`, `layer` becomes fake or merges position 0. */
export interface LNRemovalEvent {
  step: number;
  layer: string;
  action: 'fake' | 'mergeFirst';
}

/** Options of {@link lnRemovalSchedule}. */
export interface LNRemovalScheduleOptions {
  /** Step of the first switch (default 20, the reference's GPT-2 small config). */
  start?: number;
  /** Steps between the MLP-input norms of consecutive blocks (default 2). */
  gapMLP?: number;
  /** Steps between the attention-input norms of consecutive blocks (default 2). */
  gapAttn?: number;
  /** Steps between the last attention norm and the final norm, and between the final norm and the merge of the position-0 constants (default 3). */
  gapFinal?: number;
}

/**
 * The progressive removal order of the reference (`config.py`), for a model built by buildTransformerLM
 * with placement 'pre': the MLP-input norms `block{i}_mlp_norm` at `start + i*gapMLP`, then the
 * attention-input norms every `gapAttn` steps (split models: the query/key copies `block{i}_attn_norm_qk` of
 * every block, then the value copies `block{i}_attn_norm_v`), then `final_norm` `gapFinal` steps after
 * the last attention switch, and last, `gapFinal` steps later, every layer with a separate position-0
 * constant merges it into the common one (the reference's BOS special case, handled last).
 */
export function lnRemovalSchedule(model: tfl.LayersModel, options: LNRemovalScheduleOptions = {}): LNRemovalEvent[] {
  const where = 'lnRemovalSchedule';
  if (!(model instanceof tfl.LayersModel)) throw new NormkitError(where, 'model', 'a tf.LayersModel', model);
  checkKnownKeys(where, options, ['start', 'gapMLP', 'gapAttn', 'gapFinal']);
  const start = options.start ?? 20;
  const gapMLP = options.gapMLP ?? 2;
  const gapAttn = options.gapAttn ?? 2;
  const gapFinal = options.gapFinal ?? 3;
  checkInteger(where, 'start', start, 0);
  checkInteger(where, 'gapMLP', gapMLP, 0);
  checkInteger(where, 'gapAttn', gapAttn, 0);
  checkInteger(where, 'gapFinal', gapFinal, 0);
  const fakes = model.layers.filter((l) => l instanceof FakeLayerNormalization) as FakeLayerNormalization[];
  const names = fakes.map((l) => l.name);
  if (fakes.length === 0) throw new NormkitError(where, 'model', 'a model from replaceLayerNormWithFake', `'${model.name}' has no FakeLayerNormalization`);
  const blocks = Math.max(0, ...names.map((n) => /^block(\d+)_/.exec(n)).filter((m) => m !== null).map((m) => Number(m![1]) + 1));
  const events: LNRemovalEvent[] = [];
  let step = start;
  for (let i = 0; i < blocks; i++) {
    if (names.includes(`block${i}_mlp_norm`)) events.push({ step, layer: `block${i}_mlp_norm`, action: 'fake' });
    step += gapMLP;
  }
  // Unsplit attention norms, or the query/key copies of all blocks, then the value copies (ln1qk, then ln1v).
  const attnNames = [...Array.from({ length: blocks }, (_, i) => [`block${i}_attn_norm`, `block${i}_attn_norm_qk`]), ...Array.from({ length: blocks }, (_, i) => [`block${i}_attn_norm_v`])];
  let first = true;
  for (const candidates of attnNames) {
    const present = candidates.filter((n) => names.includes(n));
    if (present.length === 0) continue;
    if (!first) step += gapAttn;
    first = false;
    for (const layer of present) events.push({ step, layer, action: 'fake' });
  }
  step += gapFinal;
  if (names.includes('final_norm')) events.push({ step, layer: 'final_norm', action: 'fake' });
  const missing = names.filter((n) => !events.some((e) => e.layer === n));
  if (missing.length > 0) throw new NormkitError(where, 'model', 'only the norms of a Pre-LN buildTransformerLM model', `unscheduled norms ${missing.join(', ')}`);
  step += gapFinal;
  for (const e of [...events]) {
    if ((model.getLayer(e.layer) as FakeLayerNormalization).firstPosition) events.push({ step, layer: e.layer, action: 'mergeFirst' });
  }
  return events;
}

/**
 * Applies every event whose step is <= `step` and that has not happened yet (switch to fake, or merge the
 * position-0 constant); returns the events applied now. Call after each optimizer step with the number of
 * steps done, or use {@link lnRemovalCallback}.
 */
export function applyLNRemoval(model: tfl.LayersModel, schedule: LNRemovalEvent[], step: number): LNRemovalEvent[] {
  const applied: LNRemovalEvent[] = [];
  for (const event of schedule) {
    if (event.step > step) continue;
    const layer = model.getLayer(event.layer);
    if (!(layer instanceof FakeLayerNormalization)) {
      throw new NormkitError('applyLNRemoval', 'schedule', 'events naming FakeLayerNormalization layers', event.layer);
    }
    if (event.action === 'fake' && !layer.fake) {
      layer.switchToFake();
      applied.push(event);
    } else if (event.action === 'mergeFirst' && !layer.firstMerged) {
      layer.mergeFirstPosition();
      applied.push(event);
    }
  }
  return applied;
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
