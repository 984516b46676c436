// BlazeFace in the browser (detectors/blazeface.py): its anchors (_blazeface_anchors), the decoding of its
// rows, MediaPipe's weighted merge (_weighted_nms), the contained boxes dropped (_drop_contained), the square
// tiles searched besides the whole frame (BlazeFaceDetector._tiles), the mirrored border, the keypoint layout
// check (plausible_layout) and the second look at weak faces (BlazeFaceDetector._found_again), each box squared,
// shifted and framed (BlazeFaceDetector.detect); and, between two whole-frame searches, one pass around each last face
// (detection.FaceFinder's following). Imports resize.js and runtime.js.
import {clamp, resize, rint} from "./resize.js";
import {runModel} from "./runtime.js";

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

// The RGB `image` (w x h) with a border of `b` px mirroring it, as cv2.copyMakeBorder's BORDER_REFLECT_101.
function reflectBorder(image, w, h, b) {
  const mirror = (i, n) => {
    if (n === 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
  };
  const W = w + 2 * b, H = h + 2 * b, out = new Uint8ClampedArray(W * H * 3);
  const xs = Int32Array.from({length: W}, (_, x) => mirror(x - b, w));
  for (let y = 0; y < H; y++) {
    const row = mirror(y - b, h) * w * 3;
    for (let x = 0; x < W; x++) {
      const from = row + xs[x] * 3, to = (y * W + x) * 3;
      out[to] = image[from]; out[to + 1] = image[from + 1]; out[to + 2] = image[from + 2];
    }
  }
  return out;
}

// Whether a face's keypoints (row: corners then six keypoints) are laid out as a face's (plausible_layout).
function plausibleLayout(r) {
  const side = Math.max(r[2] - r[0], r[3] - r[1]);
  const [rx, ry, lx, ly, nx, ny, mx, my] = r.slice(4, 12);
  const ex = lx - rx, ey = ly - ry, distance = Math.hypot(ex, ey), d = Math.max(distance, 1e-9);
  const downX = -ey / d, downY = ex / d, midX = (lx + rx) / 2, midY = (ly + ry) / 2;
  const mouthBelow = (mx - midX) * downX + (my - midY) * downY;
  const noseBelow = (nx - midX) * downX + (ny - midY) * downY;
  const margin = side / 4;
  for (let k = 0; k < 4; k++) {
    const x = r[4 + 2 * k], y = r[5 + 2 * k];
    if (x < r[0] - margin || x > r[2] + margin || y < r[1] - margin || y > r[3] + margin) return false;
  }
  return distance >= 0.05 * side && distance <= 0.9 * side && mouthBelow >= 0.1 * side && mouthBelow <= 0.9 * side
    && noseBelow >= -0.15 * side && noseBelow <= mouthBelow;
}

export class BlazeFace {
  // `model`: the compiled model; `blaze`: the page's BlazeFace settings (side, strides, perCell, minScore, pad,
  // outerPad, maxTiles, tileSide, smallTileFaceShare, confirm, confirmBelow, confirmContext, boxScale, boxShift, minSize,
  // ears).
  constructor(model, blaze) {
    this.model = model;
    this.blaze = blaze;
    this.side = blaze.side;
    this.anchors = blazefaceAnchors(blaze.side, blaze.strides, blaze.perCell);
    const s = blaze.minScore;
    this.minLogit = s <= 0 ? -Infinity : s >= 1 ? Infinity : Math.log(s / (1 - s));
    this.input = new Float32Array(this.side * this.side * 3);
    const outputs = model.getOutputDetails();
    this.regressorsAt = outputs.findIndex((d) => d.shape[d.shape.length - 1] === 16);
    this.classifiersAt = outputs.findIndex((d) => d.shape[d.shape.length - 1] === 1);
  }

  // The square tiles searched besides the whole frame (BlazeFaceDetector._tiles, tile="square"): squares of the
  // shorter side when the longer is at least 1.25 times it, and small tiles of tileSide px when the shorter side
  // is over 1.25 times that (more than maxTiles of one size: larger ones). Small tiles come last.
  tiles(width, height) {
    const short = Math.min(width, height), long = Math.max(width, height);
    const squares = long >= 1.25 * short ? this.cover(width, height, short) : [];
    const small = short > 1.25 * this.blaze.tileSide ? this.cover(width, height, this.blaze.tileSide) : [];
    return squares.concat(small);
  }

  cover(width, height, side) {
    if (side < this.side) return [];
    const starts = (length, side) => {
      const overlap = Math.ceil(side / 5);
      const count = Math.max(1, Math.ceil((length - overlap) / (side - overlap)));
      return count > 1 ? Array.from({length: count}, (_, i) => rint(i * (length - side) / (count - 1))) : [0];
    };
    const short = Math.min(width, height);
    while (starts(width, side).length * starts(height, side).length > this.blaze.maxTiles && side < short) {
      side = Math.min(short, Math.ceil(side * 1.25));
    }
    const tiles = [];
    for (const y of starts(height, side)) for (const x of starts(width, side)) tiles.push([x, y, side]);
    return tiles.length <= this.blaze.maxTiles ? tiles : [];
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
    // the whole frame with a border mirroring it: a face cut by the edge is seen whole
    const b = rint(this.blaze.pad * Math.max(h, w));
    const [wholeRows, wholeScores] = b ? await this.search(reflectBorder(image, w, h, b), w + 2 * b, h + 2 * b, 0, 0,
                                                           w + 2 * b, h + 2 * b, 0)
      : await this.search(image, w, h, 0, 0, w, h, 0);
    const views = [[wholeRows.map((row) => row.map((v) => v - b)), wholeScores]];
    // and with a black border of outerPad (a face cut by the edge with most of it inside)
    if (this.blaze.pad) views.push(await this.search(image, w, h, 0, 0, w, h, rint(this.blaze.outerPad * Math.max(h, w))));
    for (const [tx, ty, tside] of tiles) {
      const x = Math.floor(tx / shrink), y = Math.floor(ty / shrink);
      const x1 = tx + tside >= width ? w : Math.floor((tx + tside) / shrink);
      const y1 = ty + tside >= height ? h : Math.floor((ty + tside) / shrink);
      // a small tile keeps small faces only
      const most = tside < Math.min(width, height) ? this.blaze.smallTileFaceShare * tside / shrink : Infinity;
      views.push(this.cut(await this.search(image, w, h, x, y, x1 - x, y1 - y, 0), x, y, x1, y1, w, h, most));
    }
    return this.faces(views, shrink, width, height, rgb);
  }

  // Whether one pass over the square of confirmContext times the face's side around it (corners in pixels of
  // the frame; black beyond the frame) finds a face within a third of the face's side of its centre.
  async foundAgain(rgb, width, height, r) {
    const face = Math.max(r[2] - r[0], r[3] - r[1]), cx = (r[0] + r[2]) / 2, cy = (r[1] + r[3]) / 2;
    const side = Math.max(1, rint(this.blaze.confirmContext * face));
    const x0 = rint(cx - side / 2), y0 = rint(cy - side / 2);
    const xa = Math.max(0, x0), ya = Math.max(0, y0), xb = Math.min(width, x0 + side), yb = Math.min(height, y0 + side);
    if (xb <= xa || yb <= ya) return false;
    const region = new Uint8ClampedArray(side * side * 3);  // black
    for (let y = ya; y < yb; y++) {
      region.set(rgb.subarray((y * width + xa) * 3, (y * width + xb) * 3), ((y - y0) * side + (xa - x0)) * 3);
    }
    const [rows] = await this.search(region, side, side, 0, 0, side, side, 0);
    return rows.some((row) => Math.hypot((row[0] + row[2]) / 2 + x0 - cx, (row[1] + row[3]) / 2 + y0 - cy) <= face / 3);
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

  // A view's rows and scores without the faces cut by its edges inside the frame (whole in another view) and
  // those larger than `most` px.
  cut([rows, scores], x, y, x1, y1, w, h, most = Infinity) {
    const kept = rows.map((r, i) => i).filter((i) => {
      const r = rows[i];
      return !((r[0] < x + 2 && x > 0) || (r[1] < y + 2 && y > 0) || (r[2] > x1 - 2 && x1 < w) || (r[3] > y1 - 2 && y1 < h)
               || Math.max(r[2] - r[0], r[3] - r[1]) > most);
    });
    return [kept.map((i) => rows[i]), kept.map((i) => scores[i])];
  }

  // The views' faces merged, in pixels of the frame, their boxes squared and framed, the ones mostly outside
  // the frame or too small dropped; given the frame (`rgb`, a whole-frame search), also those whose keypoints
  // are not laid out as a face's, and weak ones not found again (confirm).
  async faces(views, shrink, width, height, rgb = null) {
    let rows = views.flatMap((v) => v[0]), scores = views.flatMap((v) => v[1]);
    if (views.length > 1 && rows.length) [rows, scores] = dropContained(...weightedNms(rows, scores, 0.3));
    rows = rows.map((row) => row.map((v) => v * shrink));
    if (rgb !== null) {
      const kept = [];
      for (let i = 0; i < rows.length; i++) {
        if (plausibleLayout(rows[i]) && (!this.blaze.confirm || scores[i] >= this.blaze.confirmBelow
                                         || await this.foundAgain(rgb, width, height, rows[i]))) kept.push(i);
      }
      [rows, scores] = [kept.map((i) => rows[i]), kept.map((i) => scores[i])];
    }
    const faces = {boxes: [], scores: [], keypoints: []};
    rows.forEach((r, i) => {
      const bw = r[2] - r[0], bh = r[3] - r[1], big = Math.max(bw, bh);
      const side = big * this.blaze.boxScale;
      const cx = r[0] + bw / 2, cy = r[1] + bh / 2 + this.blaze.boxShift * big;
      const visible = (clamp(cx + side / 2, 0, width) - clamp(cx - side / 2, 0, width))
        * (clamp(cy + side / 2, 0, height) - clamp(cy - side / 2, 0, height));
      if (visible >= 0.4 * side * side && side >= this.blaze.minSize) {
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
      if (this.blaze.ears) {  // keypoints 4 and 5, the ear tragions: a turned head's box reaches its visible ear
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
