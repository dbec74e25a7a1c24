/**
 * normkit for Node: the whole platform-neutral API of `normkit` plus what needs Node's file system:
 * `io.fileSystem(path)`, a tf.io handler that saves and loads models on disk without tfjs-node.
 *
 * @example
 * import * as nk from 'normkit/node';
 * await model.save(nk.io.fileSystem('out/model'));
 */
export * from './index.js';
export * as io from './io/index.js';
