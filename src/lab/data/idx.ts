/**
 * IDX files (the MNIST / Fashion-MNIST format) on disk, plain or gzip-compressed; the byte format itself is
 * parsed and encoded in ./idx-bytes.ts.
 */
import { readFileSync, existsSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { gzipSync } from 'node:zlib';
import { writeFileSync } from 'node:fs';
import { NormkitError } from '../../core/errors.js';
import { encodeIdx, parseIdx, type IdxArray } from './idx-bytes.js';

export { encodeIdx, parseIdx, type IdxArray };

/** Reads an IDX file from disk, gunzipping it first when it starts with the gzip magic bytes 1f 8b. */
export function readIdxFile(path: string, expectedRank?: number): IdxArray {
  if (!existsSync(path)) throw new NormkitError('readIdxFile', 'path', 'an existing IDX file', path);
  let bytes: Uint8Array = readFileSync(path);
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new NormkitError(`IDX file ${path}`, 'gzip stream', 'a complete gzip stream', `a damaged one (${(e as Error).message})`);
    }
  }
  return parseIdx(bytes, path, expectedRank);
}

/** Writes an unsigned-byte IDX file, gzip-compressed when the path ends in `.gz`. */
export function writeIdxFile(path: string, dims: readonly number[], data: Uint8Array): void {
  const bytes = encodeIdx(dims, data);
  writeFileSync(path, path.endsWith('.gz') ? gzipSync(bytes, { level: 9 }) : bytes);
}
