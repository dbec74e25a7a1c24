/**
 * The lab's result files: one JSON file per finished run (written atomically with a checksum, so a partial or
 * corrupt file is detected and the run redone) and the assembled `results.json`.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { PlotSpec, RunOutput } from './experiment.js';
import type { ComparisonResult, RollUp } from './verdict.js';

/** Version of the per-run file layout. */
export const RUN_FILE_SCHEMA = 1;

/** A finished run as stored on disk. */
export interface RunRecord {
  schema: number;
  experiment: string;
  variant: string;
  seed: number;
  /** Hash of the experiment's plan (setup and variants): a changed plan invalidates old runs on --resume. */
  planHash: string;
  output: RunOutput;
  wallSeconds: number;
  finishedAt: string;
}

/** The run metadata shown in the report. */
export interface LabMeta {
  normkitVersion: string;
  tfjsVersion: string;
  node: string;
  platform: string;
  cpus: number;
  backend: string;
  quick: boolean;
  /** The most seeds any experiment used (experiments set their own unless --seeds is given). */
  seeds: number;
  data: string;
  text: string;
  startedAt: string;
  /** Wall time of this invocation (a resumed lab counts only what it ran). */
  wallSeconds: number;
  /** Wall time of every stored run, whichever invocation ran it. */
  runSeconds: number;
  interrupted: boolean;
  /** Worker processes of this invocation, or 'queue' when a BullMQ queue's workers ran it. */
  workers?: number | 'queue';
  /** Runs that failed for good (e.g. their worker process died twice); they are missing from the results. */
  failedRuns?: Array<{ experiment: string; variant: string; seed: number; reason: string }>;
  /** The package's docs/ folder relative to the output folder, for the report's method-page links. */
  docsBase?: string;
}

/** One experiment's section of results.json. */
export interface ExperimentResult {
  id: string;
  title: string;
  claim: string;
  papers: string[];
  methodPages: string[];
  metric: string;
  /** 'pending': waits for methods not yet in normkit; 'incomplete': some runs missing (interrupted). */
  status: 'done' | 'pending' | 'incomplete' | 'skipped';
  waitsFor: string[];
  setup: string;
  /** How the setup compares with the paper's regime. */
  regime: string;
  variants: Array<{ id: string; label: string }>;
  /** Seeds per variant. */
  seeds: number;
  runs: RunRecord[];
  /** Per-check verdicts with their intervals: the result; `rollup` and `verdict` only count them. */
  checks: ComparisonResult[];
  rollup: RollUp;
  /** The roll-up in words ("2 of 3 checks reproduced (1 inconclusive)"), or 'pending'. */
  verdict: string;
  plots: PlotSpec[];
}

/** The whole of results.json. */
export interface LabResults {
  meta: LabMeta;
  experiments: ExperimentResult[];
}

/** SHA-256 (hex) of a string. */
export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Writes `text` to `path` through a temporary file and a rename, so readers never see half a file. */
export function writeAtomic(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/** Path of a run's file inside the output folder. */
export function runFilePath(outDir: string, experiment: string, variant: string, seed: number): string {
  return join(outDir, 'runs', experiment, `${variant}__seed${seed}.json`);
}

/** JSON with non-finite numbers written as null (JSON has no NaN). */
export function finiteJSON(value: unknown, indent?: number): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), indent);
}

/** Stores a finished run as `{record, checksum}` where checksum = sha256 of the record's JSON. */
export function writeRunRecord(outDir: string, record: RunRecord): string {
  const body = finiteJSON(record);
  const path = runFilePath(outDir, record.experiment, record.variant, record.seed);
  writeAtomic(path, `{"checksum":"${sha256(body)}","record":${body}}\n`);
  return path;
}

/** The outcome of reading a run file. */
export type RunFileState = { state: 'missing' } | { state: 'ok'; record: RunRecord } | { state: 'corrupt'; reason: string } | { state: 'stale'; reason: string };

/**
 * Reads a run file and checks it: parseable JSON, checksum of the record, schema, identity (experiment, variant,
 * seed) and the plan hash. Anything else than 'ok' means the run must be (re)done.
 */
export function readRunRecord(outDir: string, experiment: string, variant: string, seed: number, planHash: string): RunFileState {
  const path = runFilePath(outDir, experiment, variant, seed);
  if (!existsSync(path)) return { state: 'missing' };
  const text = readFileSync(path, 'utf8');
  let parsed: { checksum?: unknown; record?: unknown };
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    return { state: 'corrupt', reason: `${path} is not valid JSON (a partial write?)` };
  }
  if (typeof parsed !== 'object' || parsed === null || typeof parsed.checksum !== 'string' || typeof parsed.record !== 'object' || parsed.record === null) {
    return { state: 'corrupt', reason: `${path} lacks a checksum or a record` };
  }
  const body = finiteJSON(parsed.record);
  if (sha256(body) !== parsed.checksum) return { state: 'corrupt', reason: `${path} fails its checksum` };
  const record = parsed.record as RunRecord;
  if (record.schema !== RUN_FILE_SCHEMA || record.experiment !== experiment || record.variant !== variant || record.seed !== seed) {
    return { state: 'corrupt', reason: `${path} holds another run or an old schema` };
  }
  if (typeof record.output !== 'object' || record.output === null || typeof record.output.metrics !== 'object' || typeof record.output.curves !== 'object') {
    return { state: 'corrupt', reason: `${path} has no metrics or curves` };
  }
  if (record.planHash !== planHash) return { state: 'stale', reason: `${path} was made with another setup` };
  return { state: 'ok', record };
}

/** Metric value of a stored run as a number (null, i.e. non-finite, becomes NaN). */
export function metricValue(record: RunRecord, metric: string): number {
  const v = record.output.metrics[metric];
  return typeof v === 'number' ? v : NaN;
}
