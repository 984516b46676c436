// The expression model's probabilities of one 48x48 crop (model.FacialExpressionModel.predict_proba: [0, 255]
// input, with the flip the mean with the mirror image's). Imports crop.js (the side) and runtime.js.
import {CROP} from "./crop.js";
import {runModel} from "./runtime.js";

// The probabilities of one crop: with the flip, the mean of the crop's and its mirror image's, one batch of
// the two (settings.flipTta; device.py fixes the served file's batch size to that).
export async function classify(model, crop, settings) {
  const views = settings.flipTta ? 2 : 1, size = CROP * CROP, input = new Float32Array(views * size);
  input.set(crop);
  if (views === 2) {
    for (let y = 0; y < CROP; y++) for (let x = 0; x < CROP; x++) input[size + y * CROP + x] = crop[y * CROP + CROP - 1 - x];
  }
  const [out] = await runModel(model, input, [views, CROP, CROP, 1], [0]);
  const classes = out.length / views;
  return Float32Array.from({length: classes}, (_, k) => (views === 2 ? (out[k] + out[classes + k]) / 2 : out[k]));
}
