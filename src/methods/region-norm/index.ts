export { regionNorm, regionNormLearned, type RegionNormOptions, type RegionNormLearnedOptions, type RegionStatistics } from './op.js';
export { RegionNormalizationB, RegionNormalizationL, type RegionNormalizationBArgs, type RegionNormalizationLArgs } from './layer.js';
