// LiteRT.js (vendored in static/vendor/litertjs/) and the two models the server runs, served by
// server/device.py (/models/blazeface.tflite, /models/expression.tflite): loading and compiling them, and one
// run of a compiled model. Mirrors the LiteRT runners of the server's models (model.FacialExpressionModel's
// _litert_runner, detectors/blazeface.py's BlazeFaceDetector). Imports only the vendored runtime.
import {loadAndCompile, loadLiteRt, supportsFeature, Tensor} from "../vendor/litertjs/index.js";

export const RUNTIME_NAME = "LiteRT.js 2.5.3";

// One run of a compiled model on a float32 input: copies of the outputs at `indices`.
export async function runModel(model, data, shape, indices) {
  const input = new Tensor(data, shape);
  let outputs;
  try {
    outputs = await model.run(input);
    return indices.map((i) => outputs[i].toTypedArray().slice());
  } finally {
    input.delete();
    if (outputs) outputs.forEach((t) => t.delete());
  }
}

// The runtime loaded (`settings`: the page's device settings: wasmUrl, blazefaceUrl, expressionUrl) and the two
// models compiled: {detector, expression} (compiled models), loadMs, runtime and backend (names, for the page).
export async function loadModels(settings) {
  const started = performance.now();
  const relaxedSimd = await supportsFeature("relaxedSimd").catch(() => false);
  await loadLiteRt(settings.wasmUrl);  // the relaxed-SIMD build where the browser has it, else the plain one
  const [detector, expression] = await Promise.all([
    loadAndCompile(settings.blazefaceUrl, {accelerator: "wasm"}),
    loadAndCompile(settings.expressionUrl, {accelerator: "wasm"}),
  ]);
  return {detector, expression, loadMs: performance.now() - started, runtime: RUNTIME_NAME,
          backend: `WebAssembly on the CPU (XNNPACK, ${relaxedSimd ? "relaxed SIMD" : "SIMD"}, one thread)`};
}
