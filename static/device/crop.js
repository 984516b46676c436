// The frame's grey and RGB copies (analysis.bgr_and_gray; grey as cv2.COLOR_BGR2GRAY), the 48x48 grey crop
// of a face cut by area (faces.crop_faces, faces.rectangle) or turned level by its roll (faces._level_crop,
// cv2.warpAffine), and dim or flat crops lifted to FER2013's range (faces.normalize_lighting).
// Imports resize.js.
import {clamp, resize, rint} from "./resize.js";

export const CROP = 48;  // the expression model's input side

// The grey level of each pixel of an RGBA frame, as cv2.COLOR_BGR2GRAY computes it.
export function greyOf(rgba, width, height) {
  const grey = new Uint8Array(width * height);
  for (let i = 0, j = 0; i < grey.length; i++, j += 4) {
    grey[i] = (rgba[j] * 4899 + rgba[j + 1] * 9617 + rgba[j + 2] * 1868 + 8192) >> 14;
  }
  return grey;
}

export function rgbOf(rgba) {
  const rgb = new Uint8Array(rgba.length / 4 * 3);
  for (let i = 0, j = 0; j < rgba.length; i += 3, j += 4) {
    rgb[i] = rgba[j];
    rgb[i + 1] = rgba[j + 1];
    rgb[i + 2] = rgba[j + 2];
  }
  return rgb;
}

// The 48x48 crop of an integer box (x, y, w, h), turned level when its roll is at least settings.minRoll degrees.
export function cropFace(grey, width, height, box, roll, settings) {
  const [x, y, w, h] = box;
  const outside = w <= 0 || h <= 0 || x >= width || y >= height || x + w <= 0 || y + h <= 0;
  if (Number.isFinite(roll) && Math.abs(roll) >= settings.minRoll) return levelCrop(grey, width, height, box, roll);
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

// A crop darker or flatter than FER2013's training faces (settings.minCropContrast, settings.minCropBrightness),
// lifted to their range (new array).
export function normalizeLighting(crop, settings) {
  let sum = 0, squares = 0;
  for (const v of crop) sum += v;
  const mean = sum / crop.length;
  for (const v of crop) squares += (v - mean) ** 2;
  const contrast = Math.sqrt(squares / crop.length);
  if (contrast >= settings.minCropContrast && mean >= settings.minCropBrightness) return crop;
  const levels = Float64Array.from(crop);
  if (contrast > 0 && contrast < settings.minCropContrast) {
    for (let i = 0; i < levels.length; i++) levels[i] = (levels[i] - mean) * (settings.minCropContrast / contrast) + mean;
  }
  const lift = Math.max(0, settings.minCropBrightness - levels.reduce((s, v) => s + v, 0) / levels.length);
  return Uint8Array.from(levels, (v) => clamp(rint(v + lift), 0, 255));
}
