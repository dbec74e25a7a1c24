import * as nk from '../../src/index.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

// nGPT's layers through the layer harness; their numeric checks (unitNormalize against float64, the nGPT
// Transformer) live with the Transformer in test/models/transformer.test.ts.
runLayerTest(nk.L2Normalize, { make: () => new nk.L2Normalize({ epsilon: 1e-6 }), inputShape: [3, 4], trainable: 0, nonTrainable: 0, supportsMasking: false });
runLayerTest(nk.NGPTResidual, {
  make: () => new nk.NGPTResidual({ alphaInitValue: 0.1, alphaInitScaling: 0.5 }), inputShape: [[3, 4], [3, 4]], trainable: 1, nonTrainable: 0,
  weights: [['alpha', [4]]], supportsMasking: false,
});
runLayerTest(nk.NGPTResidual, {
  make: () => new nk.NGPTResidual(), inputShape: [[3, 4], [3, 4]], trainable: 1, nonTrainable: 0, weights: [['alpha', [4]]], supportsMasking: false,
  label: 'default alpha scaling 1/sqrt(d)',
});
