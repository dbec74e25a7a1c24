export { dynamicTanh, type DynamicTanhOptions } from './op.js';
export { DynamicTanh, type DynamicTanhArgs } from './layer.js';
