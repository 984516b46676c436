// Numbers and resizing as the server's Python computes them: rint rounds half to even (Python's round,
// np.round, OpenCV's cvRound), resize shrinks by area and enlarges linearly as cv2.resize does (INTER_AREA,
// INTER_LINEAR), the region's outside repeating its edge as cv2.getRectSubPix. Mirrors the cv2.resize calls
// of faces.crop_faces (faces.rectangle, faces._level_crop) and of detectors/blazeface.py's BlazeFaceDetector.
// A leaf: it imports nothing.


// Round half to even (Python's round, np.round, OpenCV's cvRound).
export function rint(x) {
  const r = Math.round(x);
  return (r - x === 0.5 && r % 2 !== 0) ? r - 1 : r;
}

export const clamp = (v, lo, hi) => (v < lo ? lo : v > hi ? hi : v);


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
export function resize(data, imageW, imageH, channels, x0, y0, width, height, outW, outH) {
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
