/**
 * Saving and loading tfjs models on disk in Node without tfjs-node: tfjs's own format, `model.json` plus
 * `weights.bin`, readable by `tf.loadLayersModel` anywhere (browser, tfjs-node, tfjs converter).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { NormkitError } from '../core/errors.js';

const MODEL_FILE = 'model.json';
const WEIGHTS_FILE = 'weights.bin';

/** Bytes per element as stored on disk for a weight spec (quantized weights store fewer). */
function bytesPerElement(spec: tf.io.WeightsManifestEntry): number {
  const q = spec.quantization?.dtype;
  if (q === 'uint8') return 1;
  if (q === 'uint16' || q === 'float16') return 2;
  if (spec.dtype === 'bool') return 1;
  if (spec.dtype === 'float32' || spec.dtype === 'int32') return 4;
  throw new Error(`normkit io: weight '${spec.name}' has dtype '${spec.dtype}', which the file-system handler does not store`);
}

/** Total bytes the weights of `specs` occupy on disk. */
function expectedBytes(specs: tf.io.WeightsManifestEntry[]): number {
  return specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1) * bytesPerElement(s), 0);
}

async function readFileOrThrow(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new Error(`normkit io.fileSystem: cannot read '${path}' (${code})`);
  }
}

/**
 * An IO handler for `model.save` and `tf.loadLayersModel` that works on the local file system in Node.
 *
 * - `await model.save(nk.io.fileSystem('out/model'))` creates the directory if needed and writes
 *   `out/model/model.json` and `out/model/weights.bin`.
 * - `await tf.loadLayersModel(nk.io.fileSystem('out/model/model.json'))` (or the directory) loads them back.
 *
 * Weights are written byte for byte as tfjs encodes them, so a round trip is exact. A missing, unreadable,
 * non-JSON, or truncated file gives an error naming the file.
 */
export function fileSystem(path: string): tf.io.IOHandler {
  if (typeof path !== 'string' || path.length === 0) {
    throw new NormkitError('io.fileSystem', 'path', 'a non-empty string', path);
  }
  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      if (artifacts.modelTopology instanceof ArrayBuffer) {
        throw new Error('normkit io.fileSystem: binary model topologies are not supported; save a LayersModel');
      }
      const dir = resolve(path.endsWith('.json') ? dirname(path) : path);
      const modelPath = path.endsWith('.json') ? resolve(path) : join(dir, MODEL_FILE);
      await mkdir(dir, { recursive: true });
      const weightData = artifacts.weightData === undefined ? new ArrayBuffer(0) : tf.io.CompositeArrayBuffer.join(artifacts.weightData);
      const modelJSON: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology as object,
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: [WEIGHTS_FILE], weights: artifacts.weightSpecs ?? [] }],
      };
      if (artifacts.trainingConfig !== undefined) modelJSON.trainingConfig = artifacts.trainingConfig;
      if (artifacts.signature !== undefined) modelJSON.signature = artifacts.signature;
      if (artifacts.userDefinedMetadata !== undefined) modelJSON.userDefinedMetadata = artifacts.userDefinedMetadata;
      if (artifacts.modelInitializer !== undefined) modelJSON.modelInitializer = artifacts.modelInitializer;
      await writeFile(join(dir, WEIGHTS_FILE), new Uint8Array(weightData));
      await writeFile(modelPath, JSON.stringify(modelJSON));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },

    async load(): Promise<tf.io.ModelArtifacts> {
      const modelPath = resolve(path.endsWith('.json') ? path : join(path, MODEL_FILE));
      const text = (await readFileOrThrow(modelPath)).toString('utf8');
      let modelJSON: tf.io.ModelJSON;
      try {
        modelJSON = JSON.parse(text) as tf.io.ModelJSON;
      } catch (err) {
        throw new Error(`normkit io.fileSystem: '${modelPath}' is not valid JSON (${(err as Error).message})`);
      }
      if (modelJSON === null || typeof modelJSON !== 'object' || modelJSON.modelTopology === undefined) {
        throw new Error(`normkit io.fileSystem: '${modelPath}' has no 'modelTopology': not a tfjs model.json`);
      }
      return tf.io.getModelArtifactsForJSON(modelJSON, async (manifest) => {
        const specs: tf.io.WeightsManifestEntry[] = [];
        const buffers: ArrayBuffer[] = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          let groupBytes = 0;
          const files: string[] = [];
          for (const p of group.paths) {
            const file = join(dirname(modelPath), p);
            const buf = await readFileOrThrow(file);
            buffers.push(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer);
            groupBytes += buf.byteLength;
            files.push(file);
          }
          const want = expectedBytes(group.weights);
          if (groupBytes !== want) {
            throw new Error(
              `normkit io.fileSystem: '${files.join("', '")}' holds ${groupBytes} bytes but '${modelPath}' describes ${want} bytes of weights (truncated or corrupt file)`,
            );
          }
        }
        return [specs, tf.io.concatenateArrayBuffers(buffers)];
      });
    },
  };
}
