export { rmsNorm, rmsNormComposite, type RmsNormOptions } from './op.js';
