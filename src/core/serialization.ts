/**
 * Keras-compatible (de)serialization of initializers, regularizers and constraints, and layer registration
 * under Keras class names and aliases.
 *
 * tfjs-layers keeps its own `getInitializer`/`serializeInitializer` private, so normkit resolves identifiers
 * through tfjs-core's public SerializationMap, where tfjs-layers registers every built-in class.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

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

function deserialize<T>(kind: string, identifier: unknown): T | null {
  if (identifier === undefined || identifier === null) return null;
  if (typeof identifier === 'object' && typeof (identifier as { getClassName?: unknown }).getClassName === 'function') {
    return identifier as T;
  }
  let obj: SerializedObject;
  if (typeof identifier === 'string') obj = { className: toClassName(identifier), config: {} };
  else obj = identifier as SerializedObject;
  const map = tf.serialization.SerializationMap.getMap().classNameMap;
  // Keras writes L1 / L2 regularizers as their own classes; tfjs has only L1L2, which covers both.
  if ((obj.className === 'L1' || obj.className === 'L2') && map[obj.className] === undefined) {
    const key = obj.className === 'L1' ? 'l1' : 'l2';
    const value = (obj.config as Record<string, unknown>)?.[key] ?? 0.01;
    return (key === 'l1' ? tfl.regularizers.l1({ l1: value as number }) : tfl.regularizers.l2({ l2: value as number })) as T;
  }
  const found = map[obj.className];
  if (found === undefined) throw new Error(`normkit: unknown ${kind} '${obj.className}'`);
  const [cls, fromConfig] = found;
  return fromConfig(cls, (obj.config ?? {}) as tf.serialization.ConfigDict) as T;
}

/** An Initializer from an instance, a Keras/tfjs identifier string or a serialized dict; `fallback` if absent. */
export function resolveInitializer(identifier: unknown, fallback: string): Initializer {
  return deserialize<Initializer>('initializer', identifier ?? fallback) as Initializer;
}

/** A Regularizer from an instance, identifier or serialized dict, or null. */
export function resolveRegularizer(identifier: unknown): Regularizer | null {
  return deserialize<Regularizer>('regularizer', identifier);
}

/** A Constraint from an instance, identifier or serialized dict, or null. */
export function resolveConstraint(identifier: unknown): Constraint | null {
  return deserialize<Constraint>('constraint', identifier);
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
