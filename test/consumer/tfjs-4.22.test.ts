// normkit from its tarball on the highest tfjs of its peer range: one npm install of tfjs, its wasm backend and
// normkit.
import { describeNodeConsumer } from './node-consumer.js';

describeNodeConsumer('4.22.0', 'together');
