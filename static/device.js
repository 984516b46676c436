// The visitor's camera analysed in this browser (/?source=device): nothing of the video leaves the page.
// The server's frame path, redone here on LiteRT.js (vendored in static/vendor/litertjs/) with the same two
// models the server runs (/models/blazeface.tflite, /models/expression.tflite): BlazeFace over the whole
// frame and its square tiles (detectors/blazeface.py), the box squared and framed, the eye line's roll
// (detectors.roll_of), the 48x48 grey crop cut by area and turned level (faces.crop_faces), dim crops lifted
// (faces.normalize_lighting), the expression model with its flip (model.FacialExpressionModel), and the
// tracker's ids and smoothing (tracking.FaceTracker). The boxes, labels, bars and timeline are app.js's.
// window.deviceStats keeps counts and times for tests; window.deviceCheck(rgba, width, height) runs the
// frame path on one frame without tracking (benchmarks/on_device.py compares it with the server's).
import {loadAndCompile, loadLiteRt, supportsFeature, Tensor} from "./vendor/litertjs/index.js";

const CONFIG = JSON.parse(document.getElementById("page-config").textContent);
const SETTINGS = CONFIG.device;
const BLAZE = SETTINGS.blazeface;
const EMOTIONS = CONFIG.emotions;
const {livePanel, drawOverlay, CAMERA_ERRORS} = window.pageParts;
const RUNTIME_NAME = "LiteRT.js 2.5.3";
const CROP = 48;           // the expression model's input side
const MAX_WIDTH = 640;     // frames are analysed at most this wide, as the server-side camera sends them

// ---- numbers as NumPy and OpenCV round them ----

// Round half to even (Python's round, np.round, OpenCV's cvRound).
function rint(x) {
  const r = Math.round(x);
  return (r - x === 0.5 && r % 2 !== 0) ? r - 1 : r;
}

const clamp = (v, lo, hi) => (v < lo ? lo : v > hi ? hi : v);

// ---- resizing as cv2.resize: INTER_AREA when shrinking, else INTER_LINEAR ----

// Along one axis of `from` -> `to` samples: for output d, the source indices idx[start[d]..start[d + 1]) and
// their weights (kept: a camera's frames come in the same few sizes).
const tables = new Map();
function axisTable(from, to) {
  const key = `${from},${to}`;
  if (tables.has(key)) return tables.get(key);
  const scale = from / to, idx = [], weights = [], start = [0];
  for (let d = 0; d < to; d++) {
    if (scale >= 1) {  // area: each output sample is the mean of the source cells it covers
      const f1 = d * scale, f2 = f1 + scale, cell = Math.min(scale, from - f1);
      const s1 = Math.ceil(f1), s2 = Math.floor(f2);
      if (s1 - f1 > 1e-3) { idx.push(s1 - 1); weights.push((s1 - f1) / cell); }
      for (let s = s1; s < s2; s++) { idx.push(s); weights.push(1 / cell); }
      if (f2 - s2 > 1e-3 && s2 < from) { idx.push(s2); weights.push(Math.min(Math.min(f2 - s2, 1), cell) / cell); }
    } else {  // linear, pixel centres aligned
      const f = (d + 0.5) * scale - 0.5, s = Math.floor(f);
      idx.push(clamp(s, 0, from - 1), clamp(s + 1, 0, from - 1));
      weights.push(1 - (f - s), f - s);
    }
    start.push(idx.length);
  }
  const table = {idx: Int32Array.from(idx), weights: Float32Array.from(weights), start: Int32Array.from(start)};
  if (tables.size > 64) tables.clear();
  tables.set(key, table);
  return table;
}

// Resize the `width` x `height` region at (x0, y0) of an `imageW` x `imageH` image (`data`: `channels`
// interleaved samples a pixel, rows `imageW` pixels long; rows and columns outside repeat the edge, as
// cv2.getRectSubPix) to `outW` x `outH`: uint8, rounded as OpenCV rounds.
function resize(data, imageW, imageH, channels, x0, y0, width, height, outW, outH) {
  const xs = axisTable(width, outW), ys = axisTable(height, outH);
  const columns = Int32Array.from(xs.idx, (i) => clamp(x0 + i, 0, imageW - 1) * channels);
  const rowLength = outW * channels, rows = new Float32Array(height * rowLength);  // horizontal pass
  const {start, weights} = xs;
  for (let y = 0; y < height; y++) {
    const row = clamp(y0 + y, 0, imageH - 1) * imageW * channels;
    let out = y * rowLength;
    for (let d = 0; d < outW; d++) {
      const end = start[d + 1];
      if (channels === 3) {
        let r = 0, g = 0, b = 0;
        for (let k = start[d]; k < end; k++) {
          const w = weights[k], at = row + columns[k];
          r += w * data[at];
          g += w * data[at + 1];
          b += w * data[at + 2];
        }
        rows[out++] = r;
        rows[out++] = g;
        rows[out++] = b;
      } else {
        for (let c = 0; c < channels; c++) {
          let sum = 0;
          for (let k = start[d]; k < end; k++) sum += weights[k] * data[row + columns[k] + c];
          rows[out++] = sum;
        }
      }
    }
  }
  const out = new Uint8Array(outH * rowLength), sums = new Float32Array(rowLength);  // vertical pass
  for (let d = 0; d < outH; d++) {
    sums.fill(0);
    for (let k = ys.start[d]; k < ys.start[d + 1]; k++) {  // row by row: memory in order
      const w = ys.weights[k], from = ys.idx[k] * rowLength;
      for (let i = 0; i < rowLength; i++) sums[i] += w * rows[from + i];
    }
    const at = d * rowLength;
    for (let i = 0; i < rowLength; i++) {
      const sum = sums[i];
      out[at + i] = sum <= 0 ? 0 : sum >= 255 ? 255 : rint(sum);
    }
  }
  return out;
}

// ---- BlazeFace (detectors/blazeface.py) ----

const COLUMNS = 16;  // the corners (x0, y0, x1, y1), then six keypoints' x and y

function blazefaceAnchors(side, strides, perCell) {
  const anchors = [];
  let layer = 0;
  while (layer < strides.length) {
    let same = 0;
    for (let l = layer; l < strides.length && strides[l] === strides[layer]; l++) same++;
    const cells = Math.floor(side / strides[layer]);
    for (let y = 0; y < cells; y++) {
      for (let x = 0; x < cells; x++) {
        for (let k = 0; k < perCell * same; k++) anchors.push([(x + 0.5) / cells, (y + 0.5) / cells]);
      }
    }
    layer += same;
  }
  return anchors;
}

// MediaPipe's weighted non-maximum suppression: rows (arrays of COLUMNS), scores; best first.
function weightedNms(rows, scores, threshold) {
  let order = scores.map((s, i) => i).sort((a, b) => scores[b] - scores[a]);
  const keptRows = [], keptScores = [];
  while (order.length) {
    const best = rows[order[0]], bestArea = (best[2] - best[0]) * (best[3] - best[1]);
    const merged = [], rest = [];
    order.forEach((i, n) => {
      const r = rows[i];
      const inter = Math.max(0, Math.min(best[2], r[2]) - Math.max(best[0], r[0]))
        * Math.max(0, Math.min(best[3], r[3]) - Math.max(best[1], r[1]));
      const area = (r[2] - r[0]) * (r[3] - r[1]);
      const iou = inter / Math.max(bestArea + area - inter, 1e-12);
      (n === 0 || iou > threshold ? merged : rest).push(i);
    });
    const mean = new Array(COLUMNS).fill(0);
    let total = 0;
    for (const i of merged) {
      total += scores[i];
      for (let c = 0; c < COLUMNS; c++) mean[c] += rows[i][c] * scores[i];
    }
    keptRows.push(mean.map((v) => v / total));
    keptScores.push(scores[order[0]]);
    order = rest;
  }
  return [keptRows, keptScores];
}

// Drop each row (best first) sharing more than `share` of the smaller box's area with a better kept one.
function dropContained(rows, scores, share = 0.6) {
  const keep = [];
  const area = (r) => (r[2] - r[0]) * (r[3] - r[1]);
  rows.forEach((r, i) => {
    const contained = keep.some((j) => {
      const k = rows[j];
      const inter = Math.max(0, Math.min(r[2], k[2]) - Math.max(r[0], k[0]))
        * Math.max(0, Math.min(r[3], k[3]) - Math.max(r[1], k[1]));
      return inter > share * Math.min(area(r), area(k));
    });
    if (!contained) keep.push(i);
  });
  return [keep.map((i) => rows[i]), keep.map((i) => scores[i])];
}

class BlazeFace {
  constructor(model) {
    this.model = model;
    this.side = BLAZE.side;
    this.anchors = blazefaceAnchors(BLAZE.side, BLAZE.strides, BLAZE.perCell);
    const s = BLAZE.minScore;
    this.minLogit = s <= 0 ? -Infinity : s >= 1 ? Infinity : Math.log(s / (1 - s));
    this.input = new Float32Array(this.side * this.side * 3);
    const outputs = model.getOutputDetails();
    this.regressorsAt = outputs.findIndex((d) => d.shape[d.shape.length - 1] === 16);
    this.classifiersAt = outputs.findIndex((d) => d.shape[d.shape.length - 1] === 1);
  }

  // The square tiles searched besides the whole frame (BlazeFaceDetector._tiles, tile="square").
  tiles(width, height) {
    const short = Math.min(width, height), long = Math.max(width, height);
    if (long < 1.25 * short || short < this.side) return [];
    const side = short, overlap = Math.ceil(side / 5);
    const starts = (length) => {
      const count = Math.max(1, Math.ceil((length - overlap) / (side - overlap)));
      return count > 1 ? Array.from({length: count}, (_, i) => rint(i * (length - side) / (count - 1))) : [0];
    };
    const tiles = [];
    for (const y of starts(height)) for (const x of starts(width)) tiles.push([x, y, side]);
    return tiles.length <= BLAZE.maxTiles ? tiles : [];
  }

  // The faces of an RGB frame (`rgb`: width x height x 3): {boxes [x, y, w, h] floats, scores, keypoints}.
  async detect(rgb, width, height) {
    const tiles = this.tiles(width, height);
    const shrink = Math.max(1, Math.floor(Math.min(height, width, ...tiles.map((t) => t[2])) / this.side));
    let image = rgb, w = width, h = height;
    if (shrink > 1) {
      w = Math.floor(width / shrink);
      h = Math.floor(height / shrink);
      image = resize(rgb, width, height, 3, 0, 0, w * shrink, h * shrink, w, h);
    }
    const views = [await this.search(image, w, h, 0, 0, w, h, rint(BLAZE.pad * Math.max(h, w)))];
    for (const [tx, ty, tside] of tiles) {
      const x = Math.floor(tx / shrink), y = Math.floor(ty / shrink);
      const x1 = tx + tside >= width ? w : Math.floor((tx + tside) / shrink);
      const y1 = ty + tside >= height ? h : Math.floor((ty + tside) / shrink);
      views.push(this.cut(await this.search(image, w, h, x, y, x1 - x, y1 - y, 0), x, y, x1, y1, w, h));
    }
    return this.faces(views, shrink, width, height);
  }

  // Between two whole-frame searches: the faces found by one pass over a square around each of `boxes` (the
  // last frame's faces), of 2.5 times the box's side (at least the model's input, at most the frame's shorter
  // side), inside the frame; as the server follows its faces between searches (detection.FaceFinder).
  async follow(rgb, width, height, boxes) {
    const views = [];
    for (const [bx, by, bw, bh] of boxes) {
      const side = Math.min(width, height, Math.max(this.side, Math.round(2.5 * Math.max(bw, bh))));
      const x = clamp(Math.round(bx + bw / 2 - side / 2), 0, width - side);
      const y = clamp(Math.round(by + bh / 2 - side / 2), 0, height - side);
      views.push(this.cut(await this.search(rgb, width, height, x, y, side, side, 0), x, y, x + side, y + side,
                          width, height));
    }
    return this.faces(views, 1, width, height);
  }

  // A view's rows and scores without the faces cut by its edges inside the frame (whole in another view).
  cut([rows, scores], x, y, x1, y1, w, h) {
    const kept = rows.map((r, i) => i).filter((i) => {
      const r = rows[i];
      return !((r[0] < x + 2 && x > 0) || (r[1] < y + 2 && y > 0) || (r[2] > x1 - 2 && x1 < w) || (r[3] > y1 - 2 && y1 < h));
    });
    return [kept.map((i) => rows[i]), kept.map((i) => scores[i])];
  }

  // The views' faces merged, in pixels of the frame, their boxes squared and framed, the ones mostly outside
  // the frame or too small dropped.
  faces(views, shrink, width, height) {
    let rows = views.flatMap((v) => v[0]), scores = views.flatMap((v) => v[1]);
    if (views.length > 1 && rows.length) [rows, scores] = dropContained(...weightedNms(rows, scores, 0.3));
    const faces = {boxes: [], scores: [], keypoints: []};
    rows.forEach((row, i) => {
      const r = row.map((v) => v * shrink);
      const bw = r[2] - r[0], bh = r[3] - r[1], big = Math.max(bw, bh);
      const side = big * BLAZE.boxScale;
      const cx = r[0] + bw / 2, cy = r[1] + bh / 2 + BLAZE.boxShift * big;
      const visible = (clamp(cx + side / 2, 0, width) - clamp(cx - side / 2, 0, width))
        * (clamp(cy + side / 2, 0, height) - clamp(cy - side / 2, 0, height));
      if (visible >= 0.4 * side * side && side >= BLAZE.minSize) {
        faces.boxes.push([cx - side / 2, cy - side / 2, side, side]);
        faces.scores.push(scores[i]);
        faces.keypoints.push(Array.from({length: 6}, (_, k) => [r[4 + 2 * k], r[5 + 2 * k]]));
      }
    });
    return faces;
  }

  // One model pass over a region of the RGB `image` (`imageW` x `imageH`) with a black border: rows and scores.
  async search(image, imageW, imageH, x0, y0, width, height, border) {
    const side = this.side, outer = Math.max(height, width) + 2 * border, scale = side / outer;
    const sw = Math.max(1, rint(width * scale)), sh = Math.max(1, rint(height * scale));
    const small = resize(image, imageW, imageH, 3, x0, y0, width, height, sw, sh);
    const left = Math.floor((side - sw) / 2), top = Math.floor((side - sh) / 2);
    const input = this.input;
    input.fill(-1);
    for (let y = 0; y < sh; y++) {
      for (let i = 0; i < sw * 3; i++) input[((top + y) * side + left) * 3 + i] = small[y * sw * 3 + i] * (2 / 255) - 1;
    }
    const [regressors, logits] = await runModel(this.model, input, [1, side, side, 3],
                                                [this.regressorsAt, this.classifiersAt]);
    const rows = [], scores = [];
    for (let a = 0; a < logits.length; a++) {
      if (!(logits[a] > this.minLogit)) continue;
      const [ax, ay] = this.anchors[a], raw = regressors.subarray(a * 16, a * 16 + 16);
      const cx = raw[0] / side + ax, cy = raw[1] / side + ay, hw = raw[2] / side / 2, hh = raw[3] / side / 2;
      const row = [cx - hw, cy - hh, cx + hw, cy + hh];
      for (let k = 0; k < 6; k++) row.push(raw[4 + 2 * k] / side + ax, raw[5 + 2 * k] / side + ay);
      if (BLAZE.ears) {  // keypoints 4 and 5, the ear tragions: a turned head's box reaches its visible ear
        row[0] = Math.min(row[0], row[12], row[14]);
        row[1] = Math.min(row[1], row[13], row[15]);
        row[2] = Math.max(row[2], row[12], row[14]);
        row[3] = Math.max(row[3], row[13], row[15]);
      }
      rows.push(row);
      scores.push(1 / (1 + Math.exp(-clamp(logits[a], -80, 80))));
    }
    if (!rows.length) return [[], []];
    const [merged, mergedScores] = weightedNms(rows, scores, 0.3);
    return [merged.map((row) => row.map((v, c) => (v * side - (c % 2 ? top : left)) / scale + (c % 2 ? y0 : x0))),
            mergedScores];
  }
}

// One run of a compiled model on a float32 input: copies of the outputs at `indices`.
async function runModel(model, data, shape, indices) {
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

// ---- crops (faces.crop_faces, faces.normalize_lighting) ----

// The grey level of each pixel of an RGBA frame, as cv2.COLOR_BGR2GRAY computes it.
function greyOf(rgba, width, height) {
  const grey = new Uint8Array(width * height);
  for (let i = 0, j = 0; i < grey.length; i++, j += 4) {
    grey[i] = (rgba[j] * 4899 + rgba[j + 1] * 9617 + rgba[j + 2] * 1868 + 8192) >> 14;
  }
  return grey;
}

function rgbOf(rgba) {
  const rgb = new Uint8Array(rgba.length / 4 * 3);
  for (let i = 0, j = 0; j < rgba.length; i += 3, j += 4) {
    rgb[i] = rgba[j];
    rgb[i + 1] = rgba[j + 1];
    rgb[i + 2] = rgba[j + 2];
  }
  return rgb;
}

// The 48x48 crop of an integer box (x, y, w, h), turned level when its roll is at least minRoll degrees.
function cropFace(grey, width, height, box, roll) {
  const [x, y, w, h] = box;
  const outside = w <= 0 || h <= 0 || x >= width || y >= height || x + w <= 0 || y + h <= 0;
  if (Number.isFinite(roll) && Math.abs(roll) >= SETTINGS.minRoll) return levelCrop(grey, width, height, box, roll);
  if (outside) return new Uint8Array(CROP * CROP);
  return resize(grey, width, height, 1, x, y, w, h, CROP, CROP);
}

function levelCrop(grey, width, height, box, roll) {
  const [x, y, w, h] = box, outer = Math.ceil(CROP * 1.5);
  const sideX = w * outer / CROP, sideY = h * outer / CROP;
  const px = rint(x + w / 2 - sideX / 2), py = rint(y + h / 2 - sideY / 2), pw = rint(sideX), ph = rint(sideY);
  if (pw <= 0 || ph <= 0 || px >= width || py >= height || px + pw <= 0 || py + ph <= 0) {
    return new Uint8Array(CROP * CROP);
  }
  const patch = resize(grey, width, height, 1, px, py, pw, ph, outer, outer);
  // cv2.getRotationMatrix2D((outer / 2, outer / 2), roll, 1) moved by (outer - CROP) / 2; cv2.warpAffine maps
  // each output pixel back through its inverse and samples bilinearly (1/32 px steps), the border repeated
  const a = Math.cos(roll * Math.PI / 180), b = Math.sin(roll * Math.PI / 180), c = outer / 2;
  const tx = (1 - a) * c - b * c - (outer - CROP) / 2, ty = b * c + (1 - a) * c - (outer - CROP) / 2;
  const out = new Uint8Array(CROP * CROP);
  for (let v = 0; v < CROP; v++) {
    for (let u = 0; u < CROP; u++) {
      const du = u - tx, dv = v - ty;
      const sx = Math.round((a * du - b * dv) * 32) / 32, sy = Math.round((b * du + a * dv) * 32) / 32;
      const x0 = Math.floor(sx), y0 = Math.floor(sy), fx = sx - x0, fy = sy - y0;
      const at = (xx, yy) => patch[clamp(yy, 0, outer - 1) * outer + clamp(xx, 0, outer - 1)];
      const top = at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx;
      const bottom = at(x0, y0 + 1) * (1 - fx) + at(x0 + 1, y0 + 1) * fx;
      out[v * CROP + u] = clamp(rint(top * (1 - fy) + bottom * fy), 0, 255);
    }
  }
  return out;
}

// A crop darker or flatter than FER2013's training faces, lifted to their range (new array).
function normalizeLighting(crop) {
  let sum = 0, squares = 0;
  for (const v of crop) sum += v;
  const mean = sum / crop.length;
  for (const v of crop) squares += (v - mean) ** 2;
  const contrast = Math.sqrt(squares / crop.length);
  if (contrast >= SETTINGS.minCropContrast && mean >= SETTINGS.minCropBrightness) return crop;
  const levels = Float64Array.from(crop);
  if (contrast > 0 && contrast < SETTINGS.minCropContrast) {
    for (let i = 0; i < levels.length; i++) levels[i] = (levels[i] - mean) * (SETTINGS.minCropContrast / contrast) + mean;
  }
  const lift = Math.max(0, SETTINGS.minCropBrightness - levels.reduce((s, v) => s + v, 0) / levels.length);
  return Uint8Array.from(levels, (v) => clamp(rint(v + lift), 0, 255));
}

// ---- the expression model (model.FacialExpressionModel: [0, 255] input, the mean with the mirror image) ----

// The probabilities of one crop: with the flip, the mean of the crop's and its mirror image's, one batch of
// the two (device.py fixes the served file's batch size to that).
async function classify(model, crop) {
  const views = SETTINGS.flipTta ? 2 : 1, size = CROP * CROP, input = new Float32Array(views * size);
  input.set(crop);
  if (views === 2) {
    for (let y = 0; y < CROP; y++) for (let x = 0; x < CROP; x++) input[size + y * CROP + x] = crop[y * CROP + CROP - 1 - x];
  }
  const [out] = await runModel(model, input, [views, CROP, CROP, 1], [0]);
  const classes = out.length / views;
  return Float32Array.from({length: classes}, (_, k) => (views === 2 ? (out[k] + out[classes + k]) / 2 : out[k]));
}

// ---- the tracker (tracking.FaceTracker) ----

function iou(a, b) {
  const ix = Math.max(0, Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]));
  const iy = Math.max(0, Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]));
  const union = a[2] * a[3] + b[2] * b[3] - ix * iy;
  return union > 0 ? ix * iy / union : 0;
}

const centre = (box) => [box[0] + box[2] / 2, box[1] + box[3] / 2];

class FaceTracker {
  constructor({halfLife, minIou = 0.3, maxMissed, keepSeconds}) {
    Object.assign(this, {halfLife, minIou, maxMissed, keepSeconds, tracks: [], nextId: 1});
  }

  predicted(track, dt) {
    const elapsed = track.lostTime + Math.max(dt, 0), [x, y, w, h] = track.box;
    return [x + track.velocity[0] * elapsed, y + track.velocity[1] * elapsed, w, h];
  }

  affinity(box, track, dt) {
    const predicted = this.predicted(track, dt), overlap = iou(box, predicted);
    if (overlap >= this.minIou) return overlap;
    const side = Math.max(predicted[2], 1);
    if (!(1 / 1.5 <= box[2] / side && box[2] / side <= 1.5)) return 0;
    const [bx, by] = centre(box), [px, py] = centre(predicted);
    const distance = Math.hypot(bx - px, by - py) / (0.75 * side);
    return distance < 1 ? this.minIou * (1 - distance) * 0.99 : 0;
  }

  match(boxes, dt) {  // greedy, best affinity first (ties: the later box and track first, as Python's sort)
    const pairs = [];
    boxes.forEach((box, i) => this.tracks.forEach((track, j) => pairs.push([this.affinity(box, track, dt), i, j])));
    pairs.sort((p, q) => q[0] - p[0] || q[1] - p[1] || q[2] - p[2]);
    const assignment = new Map(), taken = new Set();
    for (const [affinity, i, j] of pairs) {
      if (affinity <= 0) break;
      if (!assignment.has(i) && !taken.has(j)) { taken.add(j); assignment.set(i, j); }
    }
    return assignment;
  }

  // The id of the track each box would continue if update() got these boxes now, null for a new one.
  trackIds(boxes, dt) {
    const match = this.match(boxes, dt);
    return boxes.map((box, i) => (match.has(i) ? this.tracks[match.get(i)].id : null));
  }

  // faces: [{box, probabilities, score}] of one frame (probabilities null: not classified on this frame, the
  // track's kept); dt: seconds since the previous frame.
  update(faces, dt) {
    const match = this.match(faces.map((f) => f.box), dt);
    const assignment = new Map([...match].map(([i, j]) => [i, this.tracks[j]]));
    const continued = new Set(match.values());
    this.tracks.forEach((track, j) => {
      if (!continued.has(j)) {
        track.missed += 1;
        track.unclassifiedTime += Math.max(dt, 0);
        track.lostTime += Math.max(dt, 0);
      }
    });
    this.tracks = this.tracks.filter((t) => t.missed <= this.maxMissed || t.lostTime <= this.keepSeconds);
    return faces.map((face, i) => {
      let track = assignment.get(i);
      if (!track && !face.probabilities) throw new Error("a face without probabilities continues no track");
      if (!track) {
        track = {id: this.nextId++, box: face.box, probabilities: Float32Array.from(face.probabilities), missed: 0,
                 unclassifiedTime: 0, velocity: [0, 0], lostTime: 0};
        this.tracks.push(track);
      } else if (!face.probabilities) {
        track.unclassifiedTime += Math.max(dt, 0);
      } else {
        const age = Math.max(dt, 0) + track.unclassifiedTime;
        const weight = this.halfLife <= 0 ? 1 : 1 - 0.5 ** (age / this.halfLife);
        track.probabilities = track.probabilities.map((p, k) => weight * face.probabilities[k] + (1 - weight) * p);
        track.unclassifiedTime = 0;
      }
      if (assignment.get(i)) {
        const elapsed = track.lostTime + Math.max(dt, 0);
        if (elapsed > 0) {
          const [x0, y0] = centre(track.box), [x1, y1] = centre(face.box);
          track.velocity = [0.5 * track.velocity[0] + 0.5 * (x1 - x0) / elapsed,
                            0.5 * track.velocity[1] + 0.5 * (y1 - y0) / elapsed];
        }
        Object.assign(track, {box: face.box, missed: 0, lostTime: 0});
      }
      return {...face, id: track.id, probabilities: track.probabilities};
    });
  }
}

// ---- the frame path ----

const classification = {count: 0, seconds: 0};  // of the last frame analysed

// The faces of one RGBA frame, largest first, untracked: boxes rounded as detection.detect_faces_and_rolls
// does, each with its roll, its 48x48 crop (as the model sees it) and its probabilities. `follow`: the last
// frame's boxes, searched around instead of the whole frame (BlazeFace.follow), or null. `choose`: faces ->
// which of them to classify (the others get null probabilities and no crop), or null: all.
async function analyseFrame(models, rgba, width, height, follow = null, choose = null) {
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
    face.crop = chosen[i] ? normalizeLighting(cropFace(grey, width, height, face.box, face.roll)) : null;
    face.probabilities = chosen[i] ? await classify(models.expression, face.crop) : null;
  }
  classification.count = chosen.filter(Boolean).length;
  classification.seconds = (performance.now() - classifyStart) / 1000;
  stats.stages.push([t1 - t0, t2 - t1, performance.now() - t2]);  // ms: the RGB copy, the search, the faces
  if (stats.stages.length > 300) stats.stages.shift();
  return faces;
}

function toAnswer(faces, width, height) {
  return {width, height, faces: faces.map((f) => {
    const probabilities = Object.fromEntries(EMOTIONS.map((name, k) => [name, Math.round(f.probabilities[k] * 1e4) / 1e4]));
    let best = 0;
    f.probabilities.forEach((p, k) => { if (p > f.probabilities[best]) best = k; });
    return {box: f.box, score: Math.round(f.score * 1e4) / 1e4, id: f.id, emotion: EMOTIONS[best], probabilities};
  })};
}

// ---- the page ----

const stats = window.deviceStats = {
  frames: 0, shown: 0, fps: 0, shownFps: 0, frameMs: [], stages: [], classified: 0, loadMs: null, firstFrameMs: null, runtime: null, backend: null,
  last: null, error: null,
};
const errorBox = document.getElementById("camera-error");
const statusLine = document.getElementById("device-status");
const overlay = document.getElementById("camera-overlay");

// A message, and the way to the server-side camera.
function fail(message) {
  stats.error = message;
  const link = Object.assign(document.createElement("a"), {href: SETTINGS.serverCameraUrl,
                                                            textContent: "your camera, analysed by the server"});
  errorBox.replaceChildren(`${message} `, "Instead, try ", link, ".");
  errorBox.hidden = false;
  statusLine.textContent = "Not analysing.";
  overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
}

async function loadModels() {
  const started = performance.now();
  const relaxedSimd = await supportsFeature("relaxedSimd").catch(() => false);
  await loadLiteRt(SETTINGS.wasmUrl);  // the relaxed-SIMD build where the browser has it, else the plain one
  const [detector, expression] = await Promise.all([
    loadAndCompile(SETTINGS.blazefaceUrl, {accelerator: "wasm"}),
    loadAndCompile(SETTINGS.expressionUrl, {accelerator: "wasm"}),
  ]);
  stats.loadMs = performance.now() - started;
  stats.runtime = RUNTIME_NAME;
  stats.backend = `WebAssembly on the CPU (XNNPACK, ${relaxedSimd ? "relaxed SIMD" : "SIMD"}, one thread)`;
  return {detector: new BlazeFace(detector), expression};
}

async function openCamera(video) {
  const media = await navigator.mediaDevices.getUserMedia({video: true, audio: false});
  video.srcObject = media;
  await video.play();
  return media.getVideoTracks()[0];
}

// The camera's frames, each once: next() gives {image, width, height, time (s), done()}, or null when the
// camera ended. Where the browser has MediaStreamTrackProcessor (Chromium), the frames are read from the
// camera's track as they come (one kept while the analysis is busy: older ones dropped); elsewhere, the
// video's frame as it is shown (requestVideoFrameCallback, else each animation frame). The frames the page
// shows are counted on the side (stats.shown, stats.shownFps).
function cameraFrames(video, track) {
  const shown = [];  // [when, frames shown so far] over the last second
  const onShown = (now, metadata) => {
    stats.shown = metadata.presentedFrames;
    shown.push([now, metadata.presentedFrames]);
    while (shown[0][0] < now - 1000) shown.shift();
    stats.shownFps = shown[shown.length - 1][1] - shown[0][1] + (shown.length > 1 ? 0 : 1);
    video.requestVideoFrameCallback(onShown);
  };
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(onShown);
  const sized = (image, width, height, time, done) => {
    const scale = Math.min(1, MAX_WIDTH / (width || MAX_WIDTH));
    return {image, width: Math.round((width || MAX_WIDTH) * scale), height: Math.round((height || 480) * scale),
            time, done};
  };
  if (typeof MediaStreamTrackProcessor === "function") {
    const reader = new MediaStreamTrackProcessor({track, maxBufferSize: 1}).readable.getReader();
    return {
      async next() {
        const {value, done} = await reader.read();
        return done ? null : sized(value, value.displayWidth, value.displayHeight, value.timestamp / 1e6,
                                   () => value.close());
      },
    };
  }
  return {
    async next() {
      await new Promise((resolve) => (video.requestVideoFrameCallback
        ? video.requestVideoFrameCallback(() => resolve()) : requestAnimationFrame(() => resolve())));
      return track.readyState === "ended" ? null
        : sized(video, video.videoWidth, video.videoHeight, performance.now() / 1000, () => {});
    },
  };
}

async function start() {
  const opened = performance.now();
  if (typeof WebAssembly !== "object" || typeof WebAssembly.instantiate !== "function") {
    fail("This browser cannot run WebAssembly, which the analysis on this device needs.");
    return;
  }
  if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    fail("Browsers give the camera only to pages served over https or from this machine (localhost), and " +
         "this page came over plain http from another machine.");
    return;
  }
  const video = document.getElementById("camera");
  const panel = livePanel();
  const models = loadModels();
  models.catch(() => {});  // reported below, after the camera's answer
  let track;
  try {
    track = await openCamera(video);
  } catch (error) {
    fail(CAMERA_ERRORS[error.name] || `The camera cannot be used: ${error.message}`);
    panel.end("No camera.");
    return;
  }
  let loaded;
  try {
    loaded = await models;
  } catch (error) {
    fail(`The models cannot be run in this browser (${error.message || error}).`);
    panel.end("The models did not load.");
    return;
  }
  statusLine.textContent = `Models loaded in ${(stats.loadMs / 1000).toFixed(1)} s; ${stats.runtime}, ` +
    `${stats.backend}. Analysing…`;
  window.deviceCheck = async (rgba, width, height) => (await analyseFrame(loaded, rgba, width, height))
    .map((f) => ({box: f.box, score: f.score, roll: f.roll, crop: Array.from(f.crop),
                  probabilities: Array.from(f.probabilities)}));
  const tracker = new FaceTracker(SETTINGS), frames = cameraFrames(video, track);
  const grab = document.createElement("canvas");
  const context = grab.getContext("2d", {willReadFrequently: true});
  const times = [];  // when the last second's frames were analysed
  let previous = null, lastStatus = 0, lastPanel = 0, sinceSearch = Infinity, found = [];
  // As the server's live streams (analysis.FaceAnalyzer's classify budget): when classifying every face would
  // take more than half a frame period, a tracked face is classified on every k-th frame only (k at most 8,
  // taking turns by track id; new faces at once), and keeps its track's smoothed probabilities in between.
  let secondsPerFace = 0, framePeriod = 1 / 30;
  const choose = (dt) => (faces) => {
    const cost = secondsPerFace * faces.length, budget = 0.5 * framePeriod;
    if (cost <= budget) return faces.map(() => true);
    const every = Math.min(8, Math.ceil(cost / budget));
    return tracker.trackIds(faces.map((f) => f.box), dt).map((id) => id === null || (id + stats.frames) % every === 0);
  };
  for (;;) {
    const frame = track.readyState === "ended" ? null : await frames.next();
    if (frame === null) {
      fail("The camera stopped (unplugged, its permission withdrawn, or taken by another program). " +
           "Reload the page to start it again.");
      panel.end("The camera stopped.");
      return;
    }
    if (document.hidden) {  // a tab in the background analyses nothing
      frame.done();
      await new Promise((resolve) => document.addEventListener("visibilitychange", resolve, {once: true}));
      previous = null;
      continue;
    }
    const begun = performance.now(), {width, height} = frame;
    if (grab.width !== width || grab.height !== height) Object.assign(grab, {width, height});
    context.drawImage(frame.image, 0, 0, width, height);
    frame.done();
    const rgba = context.getImageData(0, 0, width, height).data;
    const dt = previous === null ? 0 : Math.max(0, frame.time - previous);  // the camera's time
    previous = frame.time;
    if (dt > 0 && dt < 1) framePeriod = 0.9 * framePeriod + 0.1 * dt;
    let faces;
    try {  // the whole frame searched every detectEvery-th frame, and while no face is followed
      const search = sinceSearch + 1 >= SETTINGS.detectEvery || !found.length;
      found = await analyseFrame(loaded, rgba, width, height, search ? null : found.map((f) => f.box), choose(dt));
      sinceSearch = search ? 0 : sinceSearch + 1;
      if (classification.count > 0) {
        const seconds = classification.seconds / classification.count;
        secondsPerFace = stats.classified ? 0.8 * secondsPerFace + 0.2 * seconds : seconds;
        stats.classified += classification.count;
      }
      faces = tracker.update(found, dt);
    } catch (error) {
      fail(`A frame cannot be analysed: ${error.message || error}`);
      panel.end("The analysis stopped.");
      return;
    }
    const answer = toAnswer(faces, width, height);
    drawOverlay(overlay, video, answer);
    if (begun - lastPanel >= 100) {  // the bars and the timeline at most 10 times a second
      lastPanel = begun;
      panel.update(answer.faces);
    }
    const done = performance.now();
    stats.frames += 1;
    stats.last = answer;
    stats.frameMs.push(done - begun);
    if (stats.frameMs.length > 300) stats.frameMs.shift();
    if (stats.firstFrameMs === null) stats.firstFrameMs = done - opened;
    times.push(done);
    while (times[0] < done - 1000) times.shift();
    stats.fps = times.length;
    if (done - lastStatus > 500) {  // the figures twice a second
      lastStatus = done;
      const recent = stats.frameMs.slice(-30).sort((p, q) => p - q);
      statusLine.textContent = `Analysing on this device: ${stats.fps} frames/s ` +
        `(the camera shows ${stats.shownFps || "?"}), ` +
        `${recent[recent.length >> 1].toFixed(1)} ms per frame; ${stats.runtime}, ${stats.backend}; ` +
        `models loaded in ${(stats.loadMs / 1000).toFixed(1)} s. Nothing is sent to the server.`;
    }
  }
}

start().catch((error) => fail(`The analysis stopped: ${error.message || error}`));
