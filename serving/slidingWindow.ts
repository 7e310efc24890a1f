// Sliding-window inference that reproduces MONAI's SlidingWindowInferer (monai/inferers/utils.py,
// monai/data/utils.py) for 2-D images, with the window fitted to the image as the engine fits it
// (ml/src/medloop_ml/infer.py: along a side shorter than the window, the side rounded up to the
// network's size multiple): constant zero padding of what is left, window starts from `dense_patch_slices`, the Gaussian importance map of
// `compute_importance_map` and the weighted average over overlapping windows. Arithmetic is done in
// float32 (Float32Array stores and Math.fround) in MONAI's order, so the blended probabilities match
// the Python engine to float rounding.

export interface WindowConfig {
  /** Window height and width (MONAI's roi_size) for images at least this large. */
  patch: readonly [number, number];
  /**
   * The network's size multiple (2^depth): along a side shorter than the window, the window is
   * the side rounded up to it. Absent (models written before it was recorded): the whole window.
   */
  multiple?: number;
  /** Fraction of a window shared with its neighbour, in [0, 1). */
  overlap: number;
  /** MONAI's blend mode: "gaussian" weights window centres, "constant" averages equally. */
  blend: "gaussian" | "constant";
  /** Gaussian sigma as a fraction of the window size (MONAI's default 0.125). */
  sigmaScale: number;
  /** Windows per network call (MONAI's sw_batch_size); does not change the result. */
  batch: number;
}

/** Runs the network on `n` windows (n×3×h×w, NCHW) and returns n×C×h×w. */
export type WindowPredictor = (windows: Float32Array, n: number, h: number, w: number) => Promise<Float32Array>;

export interface Planar {
  /** Channel-first pixels: C×H×W. */
  data: Float32Array;
  channels: number;
  height: number;
  width: number;
}

const f32 = Math.fround;

/** MONAI `_get_scan_interval` for one axis. */
export function scanInterval(imageSize: number, roi: number, overlap: number): number {
  if (roi === imageSize) return roi;
  const interval = Math.trunc(roi * (1 - overlap));
  return interval > 0 ? interval : 1;
}

/** MONAI `dense_patch_slices` for one axis: the window start offsets (image already padded to >= roi). */
export function windowStarts(imageSize: number, roi: number, interval: number): number[] {
  const num = Math.ceil(imageSize / interval);
  let scanNum = 1;
  for (let d = 0; d < num; d++) {
    if (d * interval + roi >= imageSize) {
      scanNum = d + 1;
      break;
    }
  }
  const starts: number[] = [];
  for (let i = 0; i < scanNum; i++) {
    const start = i * interval;
    starts.push(start - Math.max(start + roi - imageSize, 0));
  }
  return starts;
}

function gaussian1d(size: number, sigma: number): Float32Array {
  const g = new Float32Array(size);
  const denom = f32(-2 * sigma * sigma);
  for (let k = 0; k < size; k++) {
    const x = f32(-(size - 1) / 2 + k);
    g[k] = f32(Math.exp(f32(f32(x * x) / denom)));
  }
  return g;
}

/** MONAI `compute_importance_map(mode="gaussian")`: outer product of 1-D Gaussians, clamped at 1e-3. */
export function gaussianImportance(h: number, w: number, sigmaScale: number): Float32Array {
  const gy = gaussian1d(h, h * sigmaScale);
  const gx = gaussian1d(w, w * sigmaScale);
  const map = new Float32Array(h * w);
  let min = Infinity;
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      const v = f32(gy[i]! * gx[j]!);
      map[i * w + j] = v;
      if (v < min) min = v;
    }
  }
  const floor = f32(Math.max(min, 1e-3));
  for (let k = 0; k < map.length; k++) if (map[k]! < floor) map[k] = floor;
  return map;
}

/** Constant zero padding split as MONAI does it: half (rounded down) before, the rest after. */
function padPlanar(img: Planar, ph: number, pw: number): { padded: Planar; top: number; left: number } {
  const H = Math.max(img.height, ph);
  const W = Math.max(img.width, pw);
  const top = Math.floor((H - img.height) / 2);
  const left = Math.floor((W - img.width) / 2);
  if (H === img.height && W === img.width) return { padded: img, top: 0, left: 0 };
  const data = new Float32Array(img.channels * H * W);
  for (let c = 0; c < img.channels; c++) {
    for (let y = 0; y < img.height; y++) {
      const src = (c * img.height + y) * img.width;
      data.set(img.data.subarray(src, src + img.width), (c * H + y + top) * W + left);
    }
  }
  return { padded: { data, channels: img.channels, height: H, width: W }, top, left };
}

function copyWindow(img: Planar, y0: number, x0: number, ph: number, pw: number, dst: Float32Array, at: number): void {
  for (let c = 0; c < img.channels; c++) {
    for (let y = 0; y < ph; y++) {
      const src = (c * img.height + y0 + y) * img.width + x0;
      dst.set(img.data.subarray(src, src + pw), at + (c * ph + y) * pw);
    }
  }
}

/** Window origins in MONAI's order (rows outer, columns inner). */
export function windowGrid(height: number, width: number, cfg: WindowConfig): Array<[number, number]> {
  const [ph, pw] = cfg.patch;
  const ys = windowStarts(height, ph, scanInterval(height, ph, cfg.overlap));
  const xs = windowStarts(width, pw, scanInterval(width, pw, cfg.overlap));
  return ys.flatMap((y) => xs.map((x): [number, number] => [y, x]));
}

/** The window (rows, columns) for an image of height×width (ml/src/medloop_ml/infer.py `fitted_window`). */
export function fittedWindow(height: number, width: number, cfg: WindowConfig): [number, number] {
  const m = cfg.multiple;
  if (m === undefined) return [cfg.patch[0], cfg.patch[1]];
  return [Math.min(cfg.patch[0], Math.ceil(height / m) * m), Math.min(cfg.patch[1], Math.ceil(width / m) * m)];
}

/** Blended network output (C×H×W) for a whole image of any size. */
export async function slidingWindowInference(img: Planar, predict: WindowPredictor, config: WindowConfig): Promise<Planar> {
  const cfg: WindowConfig = { ...config, patch: fittedWindow(img.height, img.width, config) };
  const [ph, pw] = cfg.patch;
  if (!(cfg.overlap >= 0 && cfg.overlap < 1)) throw new Error(`overlap must be in [0, 1), got ${cfg.overlap}`);
  const { padded, top, left } = padPlanar(img, ph, pw);
  const { height: H, width: W } = padded;
  const grid = windowGrid(H, W, cfg);
  const weight = cfg.blend === "gaussian" ? gaussianImportance(ph, pw, cfg.sigmaScale) : new Float32Array(ph * pw).fill(1);
  const area = ph * pw;

  const count = new Float32Array(H * W);
  for (const [y0, x0] of grid) accumulate(count, W, y0, x0, ph, pw, (k) => weight[k]!);

  let out: Float32Array | undefined;
  let outChannels = 0;
  const batch = Math.max(1, Math.floor(cfg.batch));
  for (let b = 0; b < grid.length; b += batch) {
    const chunk = grid.slice(b, b + batch);
    const windows = new Float32Array(chunk.length * padded.channels * area);
    chunk.forEach(([y0, x0], i) => copyWindow(padded, y0, x0, ph, pw, windows, i * padded.channels * area));
    const pred = await predict(windows, chunk.length, ph, pw);
    const channels = pred.length / (chunk.length * area);
    if (!Number.isInteger(channels) || channels < 1) {
      throw new Error(`network returned ${pred.length} values for ${chunk.length} windows of ${ph}×${pw}`);
    }
    if (!out) {
      outChannels = channels;
      out = new Float32Array(channels * H * W);
    }
    chunk.forEach(([y0, x0], i) => {
      for (let c = 0; c < outChannels; c++) {
        const base = (i * outChannels + c) * area;
        const plane = out!.subarray(c * H * W, (c + 1) * H * W);
        accumulate(plane, W, y0, x0, ph, pw, (k) => f32(pred[base + k]! * weight[k]!));
      }
    });
  }
  if (!out) throw new Error("no windows to run");
  for (let c = 0; c < outChannels; c++) {
    for (let k = 0; k < H * W; k++) out[c * H * W + k] = out[c * H * W + k]! / count[k]!;
  }
  return cropPlanar({ data: out, channels: outChannels, height: H, width: W }, top, left, img.height, img.width);
}

function accumulate(
  plane: Float32Array,
  W: number,
  y0: number,
  x0: number,
  ph: number,
  pw: number,
  value: (k: number) => number,
): void {
  for (let y = 0; y < ph; y++) {
    const row = (y0 + y) * W + x0;
    const k0 = y * pw;
    for (let x = 0; x < pw; x++) plane[row + x] = plane[row + x]! + value(k0 + x);
  }
}

function cropPlanar(img: Planar, top: number, left: number, h: number, w: number): Planar {
  if (top === 0 && left === 0 && h === img.height && w === img.width) return img;
  const data = new Float32Array(img.channels * h * w);
  for (let c = 0; c < img.channels; c++) {
    for (let y = 0; y < h; y++) {
      const src = (c * img.height + y + top) * img.width + left;
      data.set(img.data.subarray(src, src + w), (c * h + y) * w);
    }
  }
  return { data, channels: img.channels, height: h, width: w };
}
