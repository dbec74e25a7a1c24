/**
 * IDX bytes (the MNIST / Fashion-MNIST format) in memory, with no Node import, so browsers can use it too.
 *
 * Layout: bytes 0-1 are zero, byte 2 is the element type (0x08 = unsigned byte, the only one these data sets
 * use), byte 3 the number of dimensions d; then d big-endian uint32 sizes; then prod(sizes) elements.
 */
import { NormkitError } from '../../core/errors.js';

/** The dimensions and unsigned-byte contents of one IDX file. */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/**
 * Parses IDX bytes. Checks the magic number (0x0000 then type 0x08), the expected number of dimensions when
 * given, and that the file holds exactly prod(dims) elements; errors name `source` (usually the file path).
 */
export function parseIdx(bytes: Uint8Array, source: string, expectedRank?: number): IdxArray {
  const where = `IDX file ${source}`;
  if (bytes.length < 4) throw new NormkitError(where, 'header', 'at least 4 bytes (an IDX magic number)', `${bytes.length} bytes`);
  if (bytes[0] !== 0 || bytes[1] !== 0 || bytes[2] !== 0x08) {
    const magic = [...bytes.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new NormkitError(where, 'magic number', 'an unsigned-byte IDX magic number 00 00 08 <rank>', magic);
  }
  const rank = bytes[3];
  if (expectedRank !== undefined && rank !== expectedRank) {
    throw new NormkitError(where, 'rank', `${expectedRank} (byte 3 of the magic number)`, rank);
  }
  const headerLength = 4 + 4 * rank;
  if (bytes.length < headerLength) {
    throw new NormkitError(where, 'header', `${headerLength} bytes for ${rank} dimensions`, `${bytes.length} bytes (truncated)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, b) => a * b, 1);
  const got = bytes.length - headerLength;
  if (got !== count) {
    throw new NormkitError(where, 'size', `${count} data bytes for dimensions [${dims.join(', ')}]`, `${got} bytes${got < count ? ' (truncated)' : ''}`);
  }
  return { dims, data: bytes.subarray(headerLength) };
}

/** Encodes an unsigned-byte IDX array (the inverse of {@link parseIdx}). */
export function encodeIdx(dims: readonly number[], data: Uint8Array): Uint8Array {
  const header = new Uint8Array(4 + 4 * dims.length);
  header[2] = 0x08;
  header[3] = dims.length;
  const view = new DataView(header.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  const out = new Uint8Array(header.length + data.length);
  out.set(header, 0);
  out.set(data, header.length);
  return out;
}
