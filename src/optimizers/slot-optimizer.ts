/**
 * The base of normkit's optimizers: per-variable slot variables (moments, momentum buffers, projections)
 * keyed by the variable's name, saved and restored like tfjs's own optimizers (`getWeights` returns the
 * iteration count first, then every slot as `<variable name>/<slot>`).
 */
import * as tf from '@tensorflow/tfjs-core';
import { NormkitError } from '../core/errors.js';

/** A named tensor as tfjs optimizers exchange them (tfjs-core does not export its own type). */
export interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

/** A gradient map as tfjs passes it to `applyGradients`. */
export type VariableGradients = tf.NamedTensorMap | NamedTensor[];

/** The gradients as (name, tensor) pairs, skipping absent ones. */
export function gradientEntries(variableGradients: VariableGradients): Array<[string, tf.Tensor]> {
  const pairs: Array<[string, tf.Tensor | undefined | null]> = Array.isArray(variableGradients)
    ? variableGradients.map((g) => [g.name, g.tensor])
    : Object.entries(variableGradients);
  return pairs.filter((p): p is [string, tf.Tensor] => p[1] !== undefined && p[1] !== null);
}

/** A serialized optimizer config as constructor options: tfjs's deserializer adds `customObjects`, which is not one. */
export function configAsOptions(config: tf.serialization.ConfigDict): Record<string, unknown> {
  const options: Record<string, unknown> = { ...config };
  delete options.customObjects;
  return options;
}

/** The registered variable called `name`; throws a NormkitError when there is none. */
export function variableNamed(where: string, name: string): tf.Variable {
  const v = tf.engine().registeredVariables[name];
  if (v === undefined) throw new NormkitError(where, 'variableGradients', 'gradients keyed by names of registered tf.Variables', `a gradient for '${name}'`);
  return v;
}

/**
 * An optimizer whose state is a list of named slot variables per model variable. Subclasses implement
 * {@link update} for one variable (called inside tf.tidy, with the 1-based step number); a subclass's
 * getConfig() returns its constructor options, which the inherited fromConfig passes back.
 */
export abstract class SlotOptimizer extends tf.Optimizer {
  private readonly slots = new Map<string, Map<string, tf.Variable>>();
  /**
   * Slot groups restored by setWeights, in saved order, not yet matched to a variable: the first variables
   * to reach applyGradients without slots adopt them in order (tfjs's own optimizers match by position too).
   */
  private orphans: Array<Map<string, tf.Variable>> = [];

  /** The slot `slot` of variable `name`, created by `init` (in a tidy) when missing. */
  protected slot(name: string, slot: string, init: () => tf.Tensor): tf.Variable {
    let forVar = this.slots.get(name);
    if (forVar === undefined) this.slots.set(name, (forVar = new Map()));
    let v = forVar.get(slot);
    if (v === undefined) {
      v = tf.tidy(() => init().variable(false));
      forVar.set(slot, v);
    }
    return v;
  }

  /** True when variable `name` already has slot `slot` (e.g. a cached projection). */
  protected hasSlot(name: string, slot: string): boolean {
    return this.slots.get(name)?.has(slot) ?? false;
  }

  /** Replaces slot `slot` of `name` by a new variable holding `value` (for slots whose shape may change). */
  protected setSlot(name: string, slot: string, value: tf.Tensor): void {
    let forVar = this.slots.get(name);
    if (forVar === undefined) this.slots.set(name, (forVar = new Map()));
    const old = forVar.get(slot);
    if (old !== undefined && old.shape.length === value.shape.length && old.shape.every((d, i) => d === value.shape[i])) {
      old.assign(value);
      return;
    }
    old?.dispose();
    forVar.set(slot, tf.tidy(() => tf.clone(value).variable(false)));
  }

  /** Updates one variable; `step` is the 1-based number of this update. */
  protected abstract update(name: string, variable: tf.Variable, gradient: tf.Tensor, step: number): void;

  override applyGradients(variableGradients: VariableGradients): void {
    const where = `${this.getClassName()}.applyGradients`;
    const entries = gradientEntries(variableGradients);
    const step = this.iterations + 1;
    for (const [name, gradient] of entries) {
      const variable = variableNamed(where, name);
      if (gradient.dtype !== 'float32' || gradient.shape.length !== variable.shape.length || gradient.shape.some((d, i) => d !== variable.shape[i])) {
        throw new NormkitError(where, `variableGradients['${name}']`, `a float32 tensor of shape [${variable.shape.join(', ')}]`, gradient);
      }
    }
    for (const [name] of entries) {
      if (!this.slots.has(name) && this.orphans.length > 0) this.slots.set(name, this.orphans.shift() as Map<string, tf.Variable>);
    }
    for (const [name, gradient] of entries) {
      const variable = variableNamed(where, name);
      tf.tidy(() => this.update(name, variable, gradient, step));
    }
    this.incrementIterations();
  }

  override async getWeights(): Promise<NamedTensor[]> {
    const out: NamedTensor[] = [await this.saveIterations()];
    for (const [name, forVar] of this.slots) {
      for (const [slot, v] of forVar) out.push({ name: `${name}/${slot}`, tensor: v });
    }
    this.orphans.forEach((forVar, i) => {
      for (const [slot, v] of forVar) out.push({ name: `unassigned_${i}/${slot}`, tensor: v });
    });
    return out;
  }

  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    const rest = await this.extractIterations(weightValues);
    this.disposeSlots();
    for (const { name, tensor } of rest) {
      const cut = name.lastIndexOf('/');
      if (cut <= 0) throw new NormkitError(`${this.getClassName()}.setWeights`, 'weightValues', "names '<variable>/<slot>'", name);
      this.setSlot(name.slice(0, cut), name.slice(cut + 1), tensor);
    }
    // Restored groups are matched to variables by position, as tfjs's own optimizers do: a reloaded model's
    // variables have new unique names, and the saved names may even belong to another live model.
    this.orphans = [...this.slots.values()];
    this.slots.clear();
  }

  private disposeSlots(): void {
    for (const forVar of [...this.slots.values(), ...this.orphans]) for (const v of forVar.values()) v.dispose();
    this.slots.clear();
    this.orphans = [];
  }

  override dispose(): void {
    this.disposeSlots();
    super.dispose();
  }

  /** A subclass from its getConfig(): the config is its constructor's options. */
  static override fromConfig<T extends tf.serialization.Serializable>(cls: tf.serialization.SerializableConstructor<T>, config: tf.serialization.ConfigDict): T {
    return new cls(configAsOptions(config));
  }
}
