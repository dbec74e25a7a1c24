// normkit from its tarball on the lowest tfjs of its peer range: `npm install normkit` in a project that has
// @tensorflow/tfjs, then the wasm backend.
import { describeNodeConsumer } from './node-consumer.js';

describeNodeConsumer('4.20.0', 'added');
