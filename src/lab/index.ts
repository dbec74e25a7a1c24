/**
 * The lab (`normkit/lab`, Node only): datasets, training loops, experiments that test the papers' claims, and
 * their report. Running the lab loads the tfjs backend it is asked for (cpu or wasm) itself.
 */
export { NormkitError } from '../core/errors.js';
export { runLab, writeLabOutputs, type LabOptions } from './runner.js';
export { EXPERIMENTS, selectExperiments } from './experiments/index.js';
export type { Experiment, ExperimentPlan, RunContext, RunOutput, Variant, CheckSpec, PlotSpec } from './experiment.js';
export { compareGroups, combineVerdicts, summarize, MIN_SEEDS, type Verdict, type Stats, type ComparisonSpec, type ComparisonResult } from './verdict.js';
export { renderReport, renderSummary, renderSvg, aggregateCurves, curveSpec } from './report.js';
export { silentProgress, PlainProgress, TtyProgress, SuiteEta, formatSeconds, type ProgressSink, type PlannedRun } from './progress.js';
export { runQueueWorker, DEFAULT_QUEUE_NAME, DEFAULT_LOCK_MS, type QueueOptions, type QueueWorkerOptions, type QueueWorkerHandle } from './queue.js';
export { readRunRecord, writeRunRecord, type LabResults, type ExperimentResult, type RunRecord, type LabMeta } from './results.js';
export { parseIdx, readIdxFile, writeIdxFile, encodeIdx, type IdxArray } from './data/idx.js';
export {
  loadFashionMnist, poolImages, subsetImages, resolveFashionMnistDir, FASHION_MNIST_CLASSES,
  DEBIAN_FASHION_MNIST_DIR, EMBEDDED_FASHION_MNIST_DIR, type ImageSet,
} from './data/fashion-mnist.js';
export { corruptImages, CORRUPTIONS, type Corruption } from './data/corrupt.js';
export { loadCharCorpus, sampleWindows, DEFAULT_TEXT_PATH, type CharCorpus } from './data/text.js';
export { trainClassifier, trainLanguageModel, evaluateAccuracy, LabInterrupted, type TrainResult, type CurvePoint } from './train.js';
export { seededRandom, seededNormal, seededPermutation, deriveSeed } from './rng.js';
