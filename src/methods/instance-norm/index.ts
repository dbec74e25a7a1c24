export { instanceNorm, instanceNormComposite, type InstanceNormOptions } from './op.js';
