/**
 * The method registry: one table of every normalization method, so users and the lab can pick one by name
 * (`createNorm('rms', {...})`) and tools can enumerate them (`listNorms()`).
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import { NormkitError } from './errors.js';

/** What a method is: what it normalizes or replaces (activations, weights, the optimizer step, the architecture...). */
export type NormKind =
  | 'activation'
  | 'weight'
  | 'optimizer'
  | 'architecture'
  | 'normalization-free'
  | 'test-time'
  | 'tool';

/** One registry entry. */
export interface NormEntry {
  /** Short registry name, e.g. `'layer'`, `'rms'`. */
  name: string;
  /** Other names accepted by {@link createNorm}. */
  aliases?: string[];
  kind: NormKind;
  /** One line: what it computes. */
  description: string;
  /** The paper: authors, title, venue and year. */
  paper: string;
  /** Layer class name as serialized (e.g. `'LayerNormalization'`), when the method is a layer. */
  layerClass?: string;
  /** Builds the layer; absent for methods that are not layers (optimizers, tools). */
  create?: (config: Record<string, unknown>) => tfl.layers.Layer;
  /** Path of the docs page inside the package, e.g. `'docs/layer-norm.md'`. */
  doc: string;
}

/** A registry entry as listed by {@link listNorms}: everything but the factory. */
export type NormInfo = Omit<NormEntry, 'create'> & { hasLayer: boolean };

const entries = new Map<string, NormEntry>();
const aliasToName = new Map<string, string>();

/** Adds a method to the registry. Called once by each method's module. */
export function registerNorm(entry: NormEntry): void {
  for (const key of [entry.name, ...(entry.aliases ?? [])]) {
    const owner = aliasToName.get(key);
    if (owner !== undefined && owner !== entry.name) {
      throw new Error(`normkit registry: name '${key}' is already taken by '${owner}'`);
    }
    aliasToName.set(key, entry.name);
  }
  entries.set(entry.name, entry);
}

/**
 * Returns a new normalization layer for a registry name (or alias), e.g. `createNorm('group', {groups: 8})`.
 * Throws with the list of known names when the name is unknown or the method has no layer, and a NormkitError
 * naming the layer class and the key for an unknown or misspelt config key (`{epsilion: 0.5}`).
 */
export function createNorm(name: string, config: Record<string, unknown> = {}): tfl.layers.Layer {
  const key = aliasToName.get(name);
  const entry = key === undefined ? undefined : entries.get(key);
  if (entry === undefined) {
    const known = [...entries.values()].filter((e) => e.create).map((e) => e.name).sort();
    throw new NormkitError('createNorm', 'name', `one of ${known.map((k) => `'${k}'`).join(', ')}`, name);
  }
  if (entry.create === undefined) {
    throw new NormkitError('createNorm', 'name', 'a method that is a layer', `'${name}' (a ${entry.kind} method)`);
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new NormkitError('createNorm', 'config', `an object of ${entry.layerClass ?? 'layer'} arguments`, config);
  }
  return entry.create(config);
}

/** Every registered method, sorted by name, with its one-line description and paper. */
export function listNorms(): NormInfo[] {
  return [...entries.values()]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map(({ create, ...rest }) => ({ ...rest, hasLayer: create !== undefined }));
}
