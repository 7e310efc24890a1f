// The `augmentDataset` activity: runs the declarative augmentation pipeline of
// docs/architecture.md over the labelled images and masks with sharp, writes every
// example to the blob store and a manifest JSON that names them. The dataset is
// versioned by a hash of its inputs (pipeline + sources): a retried or repeated call
// with the same inputs finds the finished manifest and writes nothing again.
import { createHash } from "node:crypto";
import { Context } from "@temporalio/activity";
import { ApplicationFailure } from "@temporalio/common";
import sharp from "sharp";
import type { BlobStore } from "../services/blobs.js";
import type { AugmentPipeline, AugmentStep } from "../workflows/types.js";
import { mulberry32, uniform } from "./random.js";

export interface AugmentSource {
  imageId: string;
  imageUri: string;
  maskUri: string;
}

export interface AugmentInput {
  /** Blob key folder of the dataset, e.g. `datasets/<campaign>/round-0`. */
  datasetKey: string;
  items: AugmentSource[];
  pipeline: AugmentPipeline;
}

export interface AugmentOutput {
  manifestUri: string;
  version: string;
  count: number;
  examples: Array<{ image_uri: string; mask_uri: string }>;
}

export interface ManifestExample {
  index: number;
  source: string;
  ops: string[];
  width: number;
  height: number;
  image_uri: string;
  mask_uri: string;
}

export interface DatasetManifest {
  format: "medloop-dataset/1";
  version: string;
  pipeline: AugmentPipeline;
  sources: AugmentSource[];
  count: number;
  examples: ManifestExample[];
}

/** One example in memory: RGB pixels and a 0/255 mask of the same size. */
export interface Example {
  width: number;
  height: number;
  rgb: Uint8Array;
  mask: Uint8Array;
  ops: string[];
}

// ---------------------------------------------------------------- validation

function bad(index: number, op: string, field: string, problem: string): never {
  throw ApplicationFailure.nonRetryable(`augmentation step ${index} (${op}): ${field} ${problem}`, "BadPipeline");
}

function isNumber(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}

function checkProbability(i: number, op: string, p: unknown): void {
  if (p !== undefined && (!isNumber(p) || p < 0 || p > 1)) bad(i, op, "p", "must be a number from 0 to 1");
}

/** Checks the pipeline; a bad one fails naming the step index, the op and the field. */
export function validatePipeline(pipeline: AugmentPipeline): void {
  if (!pipeline || !Number.isInteger(pipeline.seed)) {
    throw ApplicationFailure.nonRetryable("augmentation pipeline: seed must be an integer", "BadPipeline");
  }
  if (!Array.isArray(pipeline.steps)) {
    throw ApplicationFailure.nonRetryable("augmentation pipeline: steps must be a list", "BadPipeline");
  }
  pipeline.steps.forEach((step: AugmentStep, i) => {
    const s = step as unknown as Record<string, unknown>;
    const op = String(s?.op);
    switch (step?.op) {
      case "flip":
        if (!Array.isArray(step.modes) || step.modes.length === 0) bad(i, op, "modes", "must be a non-empty list");
        for (const m of step.modes) if (!["none", "h", "v", "hv"].includes(m)) bad(i, op, "modes", `has unknown mode "${m}"`);
        break;
      case "random_crop":
        if (!Array.isArray(step.size) || step.size.length !== 2 || !step.size.every((v) => Number.isInteger(v) && v > 0)) {
          bad(i, op, "size", "must be [height, width] of positive integers");
        }
        if (!Number.isInteger(step.count) || step.count < 1) bad(i, op, "count", "must be an integer >= 1");
        break;
      case "rotate90":
        if (!Array.isArray(step.ks) || step.ks.length === 0 || !step.ks.every((k) => Number.isInteger(k))) {
          bad(i, op, "ks", "must be a non-empty list of integers");
        }
        break;
      case "intensity":
        if (!isNumber(step.brightness) || step.brightness < 0) bad(i, op, "brightness", "must be a number >= 0");
        if (!isNumber(step.contrast) || step.contrast < 0 || step.contrast >= 1) bad(i, op, "contrast", "must be in [0, 1)");
        checkProbability(i, op, step.p);
        break;
      case "elastic":
        if (!isNumber(step.alpha) || step.alpha < 0) bad(i, op, "alpha", "must be a number >= 0");
        if (!isNumber(step.sigma) || step.sigma <= 0) bad(i, op, "sigma", "must be a number > 0");
        checkProbability(i, op, step.p);
        break;
      default:
        bad(i, op, "op", "is unknown (flip, random_crop, rotate90, intensity, elastic)");
    }
  });
}

/** Examples per source image: the product of the expanding steps. */
export function examplesPerImage(pipeline: AugmentPipeline): number {
  return pipeline.steps.reduce((n, s) => {
    if (s.op === "flip") return n * s.modes.length;
    if (s.op === "random_crop") return n * s.count;
    if (s.op === "rotate90") return n * s.ks.length;
    return n;
  }, 1);
}

// ---------------------------------------------------------------- pixel operations

/** Maps every output pixel to an input pixel index; used by flip and rotate. */
function remap(ex: Example, width: number, height: number, source: (x: number, y: number) => number, op: string): Example {
  const rgb = new Uint8Array(width * height * 3);
  const mask = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = y * width + x;
      const s = source(x, y);
      rgb[o * 3] = ex.rgb[s * 3] as number;
      rgb[o * 3 + 1] = ex.rgb[s * 3 + 1] as number;
      rgb[o * 3 + 2] = ex.rgb[s * 3 + 2] as number;
      mask[o] = ex.mask[s] as number;
    }
  }
  return { width, height, rgb, mask, ops: [...ex.ops, op] };
}

export function flip(ex: Example, mode: "none" | "h" | "v" | "hv"): Example {
  const { width: w, height: h } = ex;
  const fx = mode === "h" || mode === "hv";
  const fy = mode === "v" || mode === "hv";
  return remap(ex, w, h, (x, y) => (fy ? h - 1 - y : y) * w + (fx ? w - 1 - x : x), `flip:${mode}`);
}

export function crop(ex: Example, top: number, left: number, height: number, width: number): Example {
  return remap(ex, width, height, (x, y) => (y + top) * ex.width + x + left, `crop:${top},${left},${height},${width}`);
}

/** Rotates counter-clockwise by k quarter turns (numpy's rot90 convention). */
export function rotate90(ex: Example, k: number): Example {
  const q = ((k % 4) + 4) % 4;
  const { width: w, height: h } = ex;
  if (q === 0) return { ...ex, ops: [...ex.ops, "rot90:0"] };
  if (q === 2) return remap(ex, w, h, (x, y) => (h - 1 - y) * w + (w - 1 - x), "rot90:2");
  // Output is h wide and w tall.
  if (q === 1) return remap(ex, h, w, (x, y) => x * w + (w - 1 - y), "rot90:1");
  return remap(ex, h, w, (x, y) => (h - 1 - x) * w + y, "rot90:3");
}

function intensity(ex: Example, brightness: number, contrast: number): Example {
  const rgb = new Uint8Array(ex.rgb.length);
  for (let i = 0; i < rgb.length; i++) {
    const v = ((ex.rgb[i] as number) / 255 - 0.5) * contrast + 0.5 + brightness;
    rgb[i] = Math.max(0, Math.min(255, Math.round(v * 255)));
  }
  return { ...ex, rgb, ops: [...ex.ops, `intensity:${brightness.toFixed(3)},${contrast.toFixed(3)}`] };
}

function gaussianBlur(field: Float32Array, width: number, height: number, sigma: number): Float32Array {
  const radius = Math.max(1, Math.ceil(3 * sigma));
  const kernel = Array.from({ length: 2 * radius + 1 }, (_, i) => Math.exp(-((i - radius) ** 2) / (2 * sigma * sigma)));
  const sum = kernel.reduce((a, b) => a + b, 0);
  const k = kernel.map((v) => v / sum);
  const tmp = new Float32Array(field.length);
  const out = new Float32Array(field.length);
  const clamp = (v: number, hi: number) => (v < 0 ? 0 : v > hi ? hi : v);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let acc = 0;
      for (let t = -radius; t <= radius; t++) acc += (k[t + radius] as number) * (field[y * width + clamp(x + t, width - 1)] as number);
      tmp[y * width + x] = acc;
    }
  }
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let acc = 0;
      for (let t = -radius; t <= radius; t++) acc += (k[t + radius] as number) * (tmp[clamp(y + t, height - 1) * width + x] as number);
      out[y * width + x] = acc;
    }
  }
  return out;
}

/** Simard's elastic deformation: a smoothed random displacement field; bilinear image, nearest mask. */
function elastic(ex: Example, alpha: number, sigma: number, random: () => number): Example {
  const { width: w, height: h } = ex;
  const noise = () => Float32Array.from({ length: w * h }, () => random() * 2 - 1);
  const dx = gaussianBlur(noise(), w, h, sigma);
  const dy = gaussianBlur(noise(), w, h, sigma);
  const rgb = new Uint8Array(ex.rgb.length);
  const mask = new Uint8Array(ex.mask.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = y * w + x;
      const sx = Math.min(w - 1, Math.max(0, x + alpha * (dx[o] as number)));
      const sy = Math.min(h - 1, Math.max(0, y + alpha * (dy[o] as number)));
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const x1 = Math.min(w - 1, x0 + 1);
      const y1 = Math.min(h - 1, y0 + 1);
      const ax = sx - x0;
      const ay = sy - y0;
      for (let c = 0; c < 3; c++) {
        const p = (yy: number, xx: number) => ex.rgb[(yy * w + xx) * 3 + c] as number;
        const top = p(y0, x0) * (1 - ax) + p(y0, x1) * ax;
        const bottom = p(y1, x0) * (1 - ax) + p(y1, x1) * ax;
        rgb[o * 3 + c] = Math.round(top * (1 - ay) + bottom * ay);
      }
      mask[o] = ex.mask[Math.round(sy) * w + Math.round(sx)] as number;
    }
  }
  return { width: w, height: h, rgb, mask, ops: [...ex.ops, `elastic:${alpha},${sigma}`] };
}

/** Runs the steps over one source example; `random` is shared so the whole dataset follows one seed. */
export function applySteps(source: Example, steps: AugmentStep[], random: () => number): Example[] {
  let examples = [source];
  steps.forEach((step, i) => {
    examples = examples.flatMap((ex): Example[] => {
      switch (step.op) {
        case "flip":
          return step.modes.map((m) => flip(ex, m));
        case "random_crop": {
          const [ch, cw] = step.size;
          if (ch > ex.height || cw > ex.width) {
            bad(i, step.op, "size", `${ch}x${cw} is larger than the ${ex.height}x${ex.width} image`);
          }
          return Array.from({ length: step.count }, () => {
            const top = Math.floor(random() * (ex.height - ch + 1));
            const left = Math.floor(random() * (ex.width - cw + 1));
            return crop(ex, top, left, ch, cw);
          });
        }
        case "rotate90":
          return step.ks.map((k) => rotate90(ex, k));
        case "intensity": {
          const b = uniform(random, -step.brightness, step.brightness);
          const c = uniform(random, 1 - step.contrast, 1 + step.contrast);
          return [random() < (step.p ?? 1) ? intensity(ex, b, c) : ex];
        }
        case "elastic":
          return [random() < (step.p ?? 1) ? elastic(ex, step.alpha, step.sigma, random) : ex];
      }
    });
  });
  return examples;
}

// ---------------------------------------------------------------- blob I/O

async function loadExample(blobs: BlobStore, item: AugmentSource): Promise<Example> {
  const img = await sharp(await blobs.get(item.imageUri)).removeAlpha().toColourspace("srgb").raw().toBuffer({ resolveWithObject: true });
  const msk = await sharp(await blobs.get(item.maskUri)).removeAlpha().greyscale().raw().toBuffer({ resolveWithObject: true });
  if (img.info.width !== msk.info.width || img.info.height !== msk.info.height) {
    throw ApplicationFailure.nonRetryable(
      `image ${item.imageId}: mask is ${msk.info.width}x${msk.info.height}, image is ${img.info.width}x${img.info.height}`,
    );
  }
  const mask = new Uint8Array(msk.data.length);
  for (let i = 0; i < mask.length; i++) mask[i] = (msk.data[i] as number) > 0 ? 255 : 0;
  return { width: img.info.width, height: img.info.height, rgb: new Uint8Array(img.data), mask, ops: [] };
}

function encode(pixels: Uint8Array, width: number, height: number, channels: 1 | 3): Promise<Buffer> {
  const image = sharp(Buffer.from(pixels), { raw: { width, height, channels } });
  // Without "b-w" sharp writes a one-channel raw buffer as an RGB PNG.
  return (channels === 1 ? image.toColourspace("b-w") : image).png().toBuffer();
}

/** The dataset version: a hash of everything that determines its examples. */
export function datasetVersion(items: AugmentSource[], pipeline: AugmentPipeline): string {
  const h = createHash("sha256");
  h.update(JSON.stringify({ items, pipeline }));
  return h.digest("hex").slice(0, 16);
}

async function writeExamples(
  blobs: BlobStore,
  folder: string,
  version: string,
  input: AugmentInput,
  loaded: Example[],
): Promise<DatasetManifest> {
  const random = mulberry32(input.pipeline.seed);
  const examples: ManifestExample[] = [];
  for (const [i, source] of loaded.entries()) {
    const imageId = (input.items[i] as AugmentSource).imageId;
    for (const ex of applySteps(source, input.pipeline.steps, random)) {
      const index = examples.length;
      const stem = `${folder}/${String(index).padStart(5, "0")}`;
      const image_uri = await blobs.put(`${stem}_image.png`, await encode(ex.rgb, ex.width, ex.height, 3));
      const mask_uri = await blobs.put(`${stem}_mask.png`, await encode(ex.mask, ex.width, ex.height, 1));
      examples.push({ index, source: imageId, ops: ex.ops, width: ex.width, height: ex.height, image_uri, mask_uri });
    }
    Context.current().heartbeat({ done: examples.length });
  }
  return { format: "medloop-dataset/1", version, pipeline: input.pipeline, sources: input.items, count: examples.length, examples };
}

export function createAugmentActivities(blobs: BlobStore) {
  async function augmentDataset(input: AugmentInput): Promise<AugmentOutput> {
    validatePipeline(input.pipeline);
    if (input.items.length === 0) throw ApplicationFailure.nonRetryable("augmentation needs at least one image");
    const version = datasetVersion(input.items, input.pipeline);
    const folder = `${input.datasetKey}/${version}`;
    const manifestUri = blobs.uriForKey(`${folder}/manifest.json`);
    if (await blobs.exists(manifestUri)) return outputOf(JSON.parse((await blobs.get(manifestUri)).toString("utf8")), manifestUri);

    // Every source is decoded (and its mask checked) before anything is written.
    const loaded: Example[] = [];
    for (const item of input.items) loaded.push(await loadExample(blobs, item));
    try {
      const manifest = await writeExamples(blobs, folder, version, input, loaded);
      // Written last: its presence means the whole dataset is there.
      await blobs.put(`${folder}/manifest.json`, Buffer.from(JSON.stringify(manifest, null, 1)));
      return outputOf(manifest, manifestUri);
    } catch (err) {
      await blobs.remove(`blob://${folder}`); // no half-written dataset
      throw err;
    }
  }
  return { augmentDataset };
}

function outputOf(m: DatasetManifest, manifestUri: string): AugmentOutput {
  return {
    manifestUri,
    version: m.version,
    count: m.count,
    examples: m.examples.map(({ image_uri, mask_uri }) => ({ image_uri, mask_uri })),
  };
}

export type AugmentActivities = ReturnType<typeof createAugmentActivities>;
