// normkit from its tarball in a Node project on the highest tfjs of its peer range.
import { describeNodeConsumer } from './node-consumer.js';

describeNodeConsumer('4.22.0');
