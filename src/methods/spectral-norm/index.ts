export { SpectralNormalization, spectralNorm, type SpectralNormalizationArgs } from './layer.js';
