/** placeholder */
import type { NormLayout } from './norm-math.js';
export interface SimdKernels {
  forward(layout: NormLayout, eps: number, x: number, gamma: number, beta: number, outs: number[]): boolean;
  backward(layout: NormLayout, x: number, dy: number, gamma: number, mean: number, rstd: number, outs: number[]): boolean;
}
export function simdForWasmBackend(_backend: unknown): SimdKernels | null {
  return null;
}
