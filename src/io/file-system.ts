/**
 * Saving and loading tfjs models on disk in Node without tfjs-node: tfjs's own format, a model JSON plus one
 * binary weights file, readable by `tf.loadLayersModel` anywhere (browser, tfjs-node, tfjs converter).
 *
 * Saves are atomic. Each model JSON names its own weights file, `<stem>.weights.<hash>.bin` beside
 * `<stem>.json` (hash: the first 16 hex digits of the SHA-256 of the weight bytes), so models saved under
 * different names in one folder never share weights. Both files are written to temporary files in the target
 * folder and flushed to disk (fsync); then the weights file is renamed into place (a new name unless the bytes
 * are identical, so the previous model's weights stay untouched) and the JSON last. The JSON rename is the
 * commit point: a save that fails or is interrupted at any step leaves the previous model loadable and
 * unchanged. After the commit the weights file the previous JSON of the same stem named is removed.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { NormkitError } from '../core/errors.js';

const MODEL_FILE = 'model.json';

/**
 * The file-system calls a save makes, replaceable in tests to make a save fail at a chosen step (not part of
 * the public API).
 */
export const fileSystemOps = {
  mkdir: (path: string) => fsp.mkdir(path, { recursive: true }) as Promise<unknown>,
  open: (path: string) => fsp.open(path, 'wx'),
  rename: (from: string, to: string) => fsp.rename(from, to),
  unlink: (path: string) => fsp.unlink(path),
  readFile: (path: string) => fsp.readFile(path),
  exists: (path: string) => fsp.access(path).then(() => true, () => false),
};

/** Bytes per element as stored on disk for a weight spec (quantized weights store fewer). */
function bytesPerElement(spec: tf.io.WeightsManifestEntry): number {
  const q = spec.quantization?.dtype;
  if (q === 'uint8') return 1;
  if (q === 'uint16' || q === 'float16') return 2;
  if (spec.dtype === 'bool') return 1;
  if (spec.dtype === 'float32' || spec.dtype === 'int32') return 4;
  throw new Error(`normkit io.fileSystem: weight '${spec.name}' has dtype '${spec.dtype}', which the file-system handler does not store`);
}

/** Total bytes the weights of `specs` occupy on disk. */
function expectedBytes(specs: tf.io.WeightsManifestEntry[]): number {
  return specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1) * bytesPerElement(s), 0);
}

function errorCode(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e?.code ?? (e instanceof Error ? e.message : String(err));
}

async function readFileOrThrow(path: string): Promise<Buffer> {
  try {
    return await fileSystemOps.readFile(path);
  } catch (err) {
    throw new Error(`normkit io.fileSystem: cannot read '${path}' (${errorCode(err)})`);
  }
}

/** The model JSON and weights file a save to `path` writes: a `.json` path names the JSON, else a folder. */
function targetsOf(path: string): { dir: string; modelPath: string; stem: string } {
  const isJSON = path.endsWith('.json');
  const dir = resolve(isJSON ? dirname(path) : path);
  const modelPath = isJSON ? resolve(path) : join(dir, MODEL_FILE);
  return { dir, modelPath, stem: basename(modelPath).slice(0, -'.json'.length) };
}

/** Weights file names this handler gives the model `<stem>.json` (only those are ever removed). */
function ownWeightsName(stem: string, name: unknown): boolean {
  if (typeof name !== 'string' || !name.startsWith(`${stem}.weights.`)) return false;
  return /^[0-9a-f]{16}\.bin$/.test(name.slice(stem.length + '.weights.'.length));
}

/** Writes `data` to a new temporary file in `dir` and flushes it to disk; returns its path (removed on failure). */
async function writeTemp(dir: string, finalName: string, data: Uint8Array): Promise<string> {
  const tmp = join(dir, `.${finalName}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await fileSystemOps.open(tmp);
  try {
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (err) {
    await fileSystemOps.unlink(tmp).catch(() => undefined);
    throw err;
  }
  return tmp;
}

/** A labeled save error: which file, which step, and the system's code. */
function saveError(modelPath: string, step: string, err: unknown): NormkitError {
  return new NormkitError(
    'io.fileSystem save',
    'path',
    `a location where the model can be written (${step} failed: ${errorCode(err)}; the previous model, if any, is unchanged)`,
    modelPath,
  );
}

/**
 * An IO handler for `model.save` and `tf.loadLayersModel` that works on the local file system in Node.
 *
 * - `await model.save(nk.io.fileSystem('out/model'))` creates the folder if needed and writes
 *   `out/model/model.json` and `out/model/model.weights.<hash>.bin`.
 * - `await model.save(nk.io.fileSystem('ckpt/epoch1.json'))` writes `ckpt/epoch1.json` and
 *   `ckpt/epoch1.weights.<hash>.bin`; other models saved in `ckpt/` under other names keep their own weights.
 * - `await tf.loadLayersModel(nk.io.fileSystem('out/model/model.json'))` (or the folder) loads them back,
 *   reading the weights files the JSON's manifest names (so saves with a shared `weights.bin` still load).
 *
 * Saves are atomic: temporary files, fsync, rename of the weights, rename of the JSON last, so a failed save
 * leaves the previous model loadable and unchanged; its error is a NormkitError naming the file and the step
 * that failed. Weights are written byte for byte as tfjs encodes them, so a round trip is exact. A missing,
 * unreadable, non-JSON, or truncated file at load gives an error naming the file.
 */
export function fileSystem(path: string): tf.io.IOHandler {
  if (typeof path !== 'string' || path.length === 0) {
    throw new NormkitError('io.fileSystem', 'path', 'a non-empty string', path);
  }
  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      if (artifacts.modelTopology instanceof ArrayBuffer) {
        throw new NormkitError('io.fileSystem save', 'modelTopology', 'a JSON topology (save a LayersModel)', 'binary model topology');
      }
      const { dir, modelPath, stem } = targetsOf(path);
      const weightData = new Uint8Array(artifacts.weightData === undefined ? new ArrayBuffer(0) : tf.io.CompositeArrayBuffer.join(artifacts.weightData));
      const weightsName = `${stem}.weights.${createHash('sha256').update(weightData).digest('hex').slice(0, 16)}.bin`;
      const modelJSON: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology as object,
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: [weightsName], weights: artifacts.weightSpecs ?? [] }],
      };
      if (artifacts.trainingConfig !== undefined) modelJSON.trainingConfig = artifacts.trainingConfig;
      if (artifacts.signature !== undefined) modelJSON.signature = artifacts.signature;
      if (artifacts.userDefinedMetadata !== undefined) modelJSON.userDefinedMetadata = artifacts.userDefinedMetadata;
      if (artifacts.modelInitializer !== undefined) modelJSON.modelInitializer = artifacts.modelInitializer;

      // The weights file the JSON there names now, removed once the new JSON is in place.
      let previousWeights: string | null = null;
      try {
        const old = JSON.parse((await fileSystemOps.readFile(modelPath)).toString('utf8')) as tf.io.ModelJSON;
        const p = old?.weightsManifest?.[0]?.paths?.[0];
        if (old.weightsManifest.length === 1 && old.weightsManifest[0].paths.length === 1 && ownWeightsName(stem, p) && p !== weightsName) previousWeights = p;
      } catch {
        // No previous model of this name (or not one of ours): nothing to clean up.
      }

      // Files to remove if the save fails: temporaries, and the new weights file once renamed into place
      // (unless a file of that name, with the same bytes, was already there).
      const created: string[] = [];
      let step = `creating the folder '${dir}'`;
      try {
        await fileSystemOps.mkdir(dir);
        step = `writing the weights to a temporary file in '${dir}'`;
        const weightsTmp = await writeTemp(dir, weightsName, weightData);
        created.push(weightsTmp);
        step = `writing the model JSON to a temporary file in '${dir}'`;
        const modelTmp = await writeTemp(dir, basename(modelPath), new TextEncoder().encode(JSON.stringify(modelJSON)));
        created.push(modelTmp);
        const weightsPath = join(dir, weightsName);
        step = `renaming the weights into '${weightsPath}'`;
        const existed = await fileSystemOps.exists(weightsPath);
        await fileSystemOps.rename(weightsTmp, weightsPath);
        created[0] = existed ? '' : weightsPath;
        step = `renaming the model JSON into '${modelPath}'`;
        await fileSystemOps.rename(modelTmp, modelPath);
      } catch (err) {
        // Best effort: a temporary file that cannot be removed is hidden and unused.
        await Promise.all(created.filter((f) => f !== '').map((f) => fileSystemOps.unlink(f).catch(() => undefined)));
        throw saveError(modelPath, step, err);
      }
      if (previousWeights !== null) await fileSystemOps.unlink(join(dir, previousWeights)).catch(() => undefined);
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
