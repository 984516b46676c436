// The frame path on one RGBA frame (analysis.analyze_frame, detection.detect_faces_and_rolls with
// detectors.roll_of, model.classify_faces): the faces found (or followed), boxes rounded, largest first, each
// with its roll, its crop and its probabilities; and the answer the page draws, as the server's JSON
// (faces.face_to_dict). Imports crop.js and expression.js; keeps the stage times and the last frame's
// classification count, which the page reads.
import {cropFace, greyOf, normalizeLighting, rgbOf} from "./crop.js";
import {classify} from "./expression.js";
import {rint} from "./resize.js";

export const classification = {count: 0, seconds: 0};  // of the last frame analysed
export const stages = [];  // ms a frame: the RGB copy, the search, the faces (the last 300 frames)

// The faces of one RGBA frame, largest first, untracked: boxes rounded as detection.detect_faces_and_rolls
// does, each with its roll, its 48x48 crop (as the model sees it) and its probabilities. `models`: {detector (a
// BlazeFace), expression (the compiled model)}; `settings`: the page's device settings (minRoll, the crops'
// lighting, flipTta). `follow`: the last frame's boxes, searched around instead of the whole frame
// (BlazeFace.follow), or null. `choose`: faces -> which of them to classify (the others get null
// probabilities and no crop), or null: all.
export async function analyseFrame(models, settings, rgba, width, height, follow = null, choose = null) {
  const t0 = performance.now();
  const rgb = rgbOf(rgba);
  const t1 = performance.now();
  const found = await (follow ? models.detector.follow(rgb, width, height, follow)
    : models.detector.detect(rgb, width, height));
  const t2 = performance.now();
  const grey = greyOf(rgba, width, height);
  const faces = found.boxes.map((box, i) => {
    const [right, left] = found.keypoints[i];
    return {box: box.map(rint), score: found.scores[i],
            roll: Math.atan2(left[1] - right[1], left[0] - right[0]) * 180 / Math.PI};
  });
  faces.sort((a, b) => b.box[2] * b.box[3] - a.box[2] * a.box[3]);  // stable: largest first
  const chosen = choose ? choose(faces) : faces.map(() => true);
  const classifyStart = performance.now();
  for (const [i, face] of faces.entries()) {
    face.crop = chosen[i] ? normalizeLighting(cropFace(grey, width, height, face.box, face.roll, settings), settings)
      : null;
    face.probabilities = chosen[i] ? await classify(models.expression, face.crop, settings) : null;
  }
  classification.count = chosen.filter(Boolean).length;
  classification.seconds = (performance.now() - classifyStart) / 1000;
  stages.push([t1 - t0, t2 - t1, performance.now() - t2]);  // ms: the RGB copy, the search, the faces
  if (stages.length > 300) stages.shift();
  return faces;
}

// The answer the page draws (app.js's boxes, labels, bars): as the server's JSON of tracked faces, each with
// its id, its emotion (the most probable of `emotions`) and its probabilities rounded to four places.
export function toAnswer(faces, width, height, emotions) {
  return {width, height, faces: faces.map((f) => {
    const probabilities = Object.fromEntries(emotions.map((name, k) => [name, Math.round(f.probabilities[k] * 1e4) / 1e4]));
    let best = 0;
    f.probabilities.forEach((p, k) => { if (p > f.probabilities[best]) best = k; });
    return {box: f.box, score: Math.round(f.score * 1e4) / 1e4, id: f.id, emotion: emotions[best], probabilities};
  })};
}
