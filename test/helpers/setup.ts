/**
 * Preloaded into every test process (`node --import`, see scripts/test.mjs): the application's part of a tfjs
 * program, which normkit leaves to the application. It loads the cpu and wasm backends (wasm, registered with
 * the higher priority, becomes tfjs's default as it would in any program that imports both).
 */
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
