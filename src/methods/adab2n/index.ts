export { adaB2N, adab2nEta, type AdaB2NOptions, type AdaB2NResult } from './op.js';
export { AdaB2N, type AdaB2NArgs } from './layer.js';
