/**
 * Keras-compatible (de)serialization of initializers, regularizers and constraints, and layer registration
 * under Keras class names and aliases.
 *
 * tfjs-layers keeps its own `getInitializer`/`serializeInitializer` private, so normkit resolves identifiers
 * through tfjs-core's public SerializationMap, where tfjs-layers registers every built-in class.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { NormkitError } from './errors.js';

type Initializer = ReturnType<typeof tfl.initializers.ones>;
type Regularizer = ReturnType<typeof tfl.regularizers.l2>;
type Constraint = ReturnType<typeof tfl.constraints.maxNorm>;

/** A serialized object as tfjs-layers writes it in model.json (after key conversion to camelCase). */
export interface SerializedObject {
  className: string;
  config: Record<string, unknown>;
}

/** `'glorot_uniform'` / `'glorotUniform'` → `'GlorotUniform'`; `'l1l2'` → `'L1L2'`. */
function toClassName(identifier: string): string {
  const special: Record<string, string> = { l1l2: 'L1L2', l1: 'L1', l2: 'L2', unitnorm: 'UnitNorm', nonneg: 'NonNeg', maxnorm: 'MaxNorm', minmaxnorm: 'MinMaxNorm' };
  const lower = identifier.replace(/_/g, '').toLowerCase();
  if (special[lower]) return special[lower];
  return identifier
    .split('_')
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
}

type Kind = 'initializer' | 'regularizer' | 'constraint';

/**
 * The base class of each kind, found from one built-in instance (tfjs-layers does not export the classes),
 * so an instance or a registered class name of the wrong kind (a regularizer given as an initializer) is
 * refused up front.
 */
const BASES: Record<Kind, () => abstract new (...args: never[]) => unknown> = {
  initializer: () => Object.getPrototypeOf(tfl.initializers.zeros().constructor),
  regularizer: () => Object.getPrototypeOf(tfl.regularizers.l2().constructor),
  constraint: () => Object.getPrototypeOf(tfl.constraints.nonNeg().constructor),
};

/** What each kind accepts, for error messages. */
function expectedOf(kind: Kind): string {
  const example = { initializer: "'glorotUniform'", regularizer: "'l2'", constraint: "'nonNeg'" }[kind];
  return `a tfjs ${kind}, the name of a registered ${kind} class (e.g. ${example}) or a serialized {className, config}${kind === 'initializer' ? '' : ' (or null for none)'}`;
}

function deserialize<T>(where: string, name: string, kind: Kind, identifier: unknown): T | null {
  if (identifier === undefined || identifier === null) return null;
  const base = BASES[kind]();
  if (identifier instanceof base) return identifier as T;
  let obj: SerializedObject;
  if (typeof identifier === 'string') obj = { className: toClassName(identifier), config: {} };
  else if (typeof identifier === 'object' && !Array.isArray(identifier) && typeof (identifier as { className?: unknown }).className === 'string') {
    const config = (identifier as { config?: unknown }).config ?? {};
    if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new NormkitError(where, name, expectedOf(kind), identifier);
    obj = { className: (identifier as SerializedObject).className, config: config as Record<string, unknown> };
  } else {
    throw new NormkitError(where, name, expectedOf(kind), identifier);
  }
  const map = tf.serialization.SerializationMap.getMap().classNameMap;
  // Keras writes L1 / L2 regularizers as their own classes; tfjs has only L1L2, which covers both.
  if (kind === 'regularizer' && (obj.className === 'L1' || obj.className === 'L2') && map[obj.className] === undefined) {
    const key = obj.className === 'L1' ? 'l1' : 'l2';
    const value = obj.config[key] ?? 0.01;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new NormkitError(where, name, `a ${obj.className} regularizer with a finite ${key} >= 0`, identifier);
    return (key === 'l1' ? tfl.regularizers.l1({ l1: value }) : tfl.regularizers.l2({ l2: value })) as T;
  }
  const found = map[obj.className];
  if (found === undefined || !((found[0] as { prototype?: unknown }).prototype instanceof base)) {
    throw new NormkitError(where, name, expectedOf(kind), identifier);
  }
  const [cls, fromConfig] = found;
  try {
    return fromConfig(cls, obj.config as tf.serialization.ConfigDict) as T;
  } catch (e) {
    throw new NormkitError(where, name, `a valid ${obj.className} config (${(e as Error).message})`, identifier);
  }
}

/**
 * An Initializer from an instance, a Keras/tfjs identifier string or a serialized dict; `fallback` (an
 * identifier) when absent. Throws a NormkitError naming `where` and the argument `name` for anything else.
 */
export function resolveInitializer(where: string, name: string, identifier: unknown, fallback: string): Initializer {
  return deserialize<Initializer>(where, name, 'initializer', identifier ?? fallback) as Initializer;
}

/** A Regularizer from an instance, identifier or serialized dict, or null; throws a NormkitError naming `name` otherwise. */
export function resolveRegularizer(where: string, name: string, identifier: unknown): Regularizer | null {
  return deserialize<Regularizer>(where, name, 'regularizer', identifier);
}

/** A Constraint from an instance, identifier or serialized dict, or null; throws a NormkitError naming `name` otherwise. */
export function resolveConstraint(where: string, name: string, identifier: unknown): Constraint | null {
  return deserialize<Constraint>(where, name, 'constraint', identifier);
}

/** Serializes an initializer/regularizer/constraint the way tfjs-layers writes it into model.json. */
export function serializeObject(obj: tf.serialization.Serializable | null | undefined): SerializedObject | null {
  if (obj === null || obj === undefined) return null;
  // Absent options (e.g. an initializer's seed) are written as null, as model.json holds them after a save,
  // so a config compares equal before and after a save/load round trip.
  const config = Object.fromEntries(Object.entries(obj.getConfig()).map(([k, v]) => [k, v === undefined ? null : v]));
  return { className: obj.getClassName(), config };
}

type LayerClass = tf.serialization.SerializableConstructor<tf.serialization.Serializable> & { className: string };

/**
 * Registers a layer class for (de)serialization under its `className`, replacing tfjs's own class of that
 * name when there is one (so a Keras model.json naming `BatchNormalization` loads normkit's layer), and
 * under `aliases`, each optionally with a function that rewrites the alias's config into the class's config.
 */
export function registerLayerClass(
  cls: LayerClass,
  aliases: Array<{ name: string; convertConfig?: (config: tf.serialization.ConfigDict) => tf.serialization.ConfigDict }> = [],
): void {
  tf.serialization.registerClass(cls);
  const map = tf.serialization.SerializationMap.getMap().classNameMap;
  for (const alias of aliases) {
    const convert = alias.convertConfig ?? ((c) => c);
    map[alias.name] = [
      cls,
      (c: LayerClass, config: tf.serialization.ConfigDict) =>
        (c as unknown as { fromConfig: (c: LayerClass, cfg: tf.serialization.ConfigDict) => tf.serialization.Serializable }).fromConfig(c, convert({ ...config })),
    ];
  }
}
