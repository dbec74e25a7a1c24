// normkit from its tarball in a Node project on the lowest tfjs of its peer range.
import { describeNodeConsumer } from './node-consumer.js';

describeNodeConsumer('4.20.0');
