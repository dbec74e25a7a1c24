/**
 * Kernel names normkit registers with tfjs. Each forward kernel `<Name>` has a backward kernel `<Name>Grad`
 * and a registered gradient that calls it.
 */
export const FUSED_KERNELS = {
  layerNorm: 'NormkitLayerNorm',
  rmsNorm: 'NormkitRMSNorm',
  batchNorm: 'NormkitBatchNorm',
  groupNorm: 'NormkitGroupNorm',
  instanceNorm: 'NormkitInstanceNorm',
} as const;

/** The statistics-computing fused kernels (all share one implementation over a {@link NormLayout}). */
export const STATISTICS_KERNELS: readonly string[] = [
  FUSED_KERNELS.layerNorm,
  FUSED_KERNELS.rmsNorm,
  FUSED_KERNELS.batchNorm,
  FUSED_KERNELS.groupNorm,
  FUSED_KERNELS.instanceNorm,
];

/** Name of the backward kernel of forward kernel `name`. */
export function gradKernelName(name: string): string {
  return `${name}Grad`;
}
