// Paints the editor: the image (with brightness/contrast), the prediction and the mask as
// overlays, under the current view. The mask lives in an offscreen canvas at image
// resolution; an edit rewrites only its dirty rectangle there, and the next frame
// repaints only that rectangle's footprint on screen, so a brush stroke costs a few
// thousand pixels, not the whole 999×960 image.

import { unionRect, type Mask, type Rect } from "../../../services/correction/raster.js";
import { imageToScreen, type View } from "./view.js";

export interface Layers {
  image: boolean;
  mask: boolean;
  prediction: boolean;
}

export interface Look {
  opacity: number; // mask overlay 0..1
  brightness: number; // CSS filter factors, 1 = unchanged
  contrast: number;
}

// RGBA packed as little-endian uint32 (ImageData byte order R, G, B, A).
export const rgba = (r: number, g: number, b: number, a = 255) => ((a << 24) | (b << 16) | (g << 8) | r) >>> 0;
const MASK_COLOUR = rgba(40, 255, 90);
const PREDICTION_COLOUR = rgba(60, 140, 255);

function makeCanvas(w: number, h: number): HTMLCanvasElement {
  const c = document.createElement("canvas");
  c.width = w;
  c.height = h;
  return c;
}

/** Colours a binary mask into an RGBA layer canvas. */
export function paintLayer(ctx: CanvasRenderingContext2D, pixels: ImageData, mask: Mask, colour: number, r: Rect): void {
  const px = new Uint32Array(pixels.data.buffer);
  const { width, data } = mask;
  for (let y = r.y0; y < r.y1; y++) {
    const row = y * width;
    for (let x = r.x0; x < r.x1; x++) px[row + x] = data[row + x] ? colour : 0;
  }
  ctx.putImageData(pixels, 0, 0, r.x0, r.y0, r.x1 - r.x0, r.y1 - r.y0);
}

export class Renderer {
  readonly ctx: CanvasRenderingContext2D;
  readonly maskLayer: HTMLCanvasElement;
  private readonly maskCtx: CanvasRenderingContext2D;
  private readonly maskPixels: ImageData;
  private predictionLayer: HTMLCanvasElement | null = null;
  private dirty: Rect | null = null;
  private full = true;
  private frame = 0;
  private dpr = 1;
  view: View = { scale: 1, tx: 0, ty: 0 };
  layers: Layers = { image: true, mask: true, prediction: false };
  look: Look = { opacity: 0.55, brightness: 1, contrast: 1 };
  /** Last paint's duration in ms (for the status line and the benchmark). */
  lastPaintMs = 0;

  constructor(
    readonly canvas: HTMLCanvasElement,
    private readonly image: CanvasImageSource,
    private readonly mask: Mask,
  ) {
    const ctx = canvas.getContext("2d", { alpha: false });
    if (!ctx) throw new Error("this browser has no 2D canvas");
    this.ctx = ctx;
    this.maskLayer = makeCanvas(mask.width, mask.height);
    const mctx = this.maskLayer.getContext("2d", { willReadFrequently: false });
    if (!mctx) throw new Error("this browser has no 2D canvas");
    this.maskCtx = mctx;
    this.maskPixels = mctx.createImageData(mask.width, mask.height);
    this.maskChanged({ x0: 0, y0: 0, x1: mask.width, y1: mask.height });
  }

  setPrediction(prediction: Mask | null): void {
    if (!prediction) {
      this.predictionLayer = null;
    } else {
      const layer = makeCanvas(prediction.width, prediction.height);
      const ctx = layer.getContext("2d")!;
      paintLayer(ctx, ctx.createImageData(prediction.width, prediction.height), prediction, PREDICTION_COLOUR, {
        x0: 0, y0: 0, x1: prediction.width, y1: prediction.height,
      });
      this.predictionLayer = layer;
    }
    this.invalidate();
  }

  /** Matches the canvas's backing store to its CSS size; returns the CSS size. */
  resize(): { width: number; height: number } {
    const box = this.canvas.getBoundingClientRect();
    this.dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(box.width * this.dpr));
    const h = Math.max(1, Math.round(box.height * this.dpr));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    this.invalidate();
    return { width: box.width, height: box.height };
  }

  /** The mask changed inside `r` (image pixels): recolour that part and repaint it. */
  maskChanged(r: Rect | null): void {
    if (!r) return;
    const x0 = Math.max(0, r.x0);
    const y0 = Math.max(0, r.y0);
    const x1 = Math.min(this.mask.width, r.x1);
    const y1 = Math.min(this.mask.height, r.y1);
    if (x0 >= x1 || y0 >= y1) return;
    const rect = { x0, y0, x1, y1 };
    paintLayer(this.maskCtx, this.maskPixels, this.mask, MASK_COLOUR, rect);
    this.dirty = unionRect(this.dirty, rect);
    this.schedule();
  }

  /** Everything must be repainted (view, layers or look changed). */
  invalidate(): void {
    this.full = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.paint();
    });
  }

  /** Paints now (the benchmark calls this directly). */
  paint(): void {
    const t0 = performance.now();
    const { ctx, view, dpr } = this;
    ctx.save();
    if (!this.full && this.dirty) {
      // Clip to the dirty rectangle's screen footprint, one pixel wider for smoothing.
      const a = imageToScreen(view, this.dirty.x0, this.dirty.y0);
      const b = imageToScreen(view, this.dirty.x1, this.dirty.y1);
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.beginPath();
      ctx.rect(Math.floor(a.x) - 1, Math.floor(a.y) - 1, Math.ceil(b.x - a.x) + 3, Math.ceil(b.y - a.y) + 3);
      ctx.clip();
    }
    this.drawScene();
    ctx.restore();
    this.full = false;
    this.dirty = null;
    this.lastPaintMs = performance.now() - t0;
  }

  private drawScene(): void {
    const { ctx, view, dpr, look, layers } = this;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#111";
    ctx.fillRect(0, 0, this.canvas.width / dpr, this.canvas.height / dpr);
    ctx.setTransform(dpr * view.scale, 0, 0, dpr * view.scale, dpr * view.tx, dpr * view.ty);
    // Smooth when zoomed out; crisp pixels when zoomed in to edit them.
    ctx.imageSmoothingEnabled = view.scale < 2;
    if (layers.image) {
      ctx.filter = look.brightness !== 1 || look.contrast !== 1 ? `brightness(${look.brightness}) contrast(${look.contrast})` : "none";
      ctx.drawImage(this.image, 0, 0);
      ctx.filter = "none";
    }
    ctx.imageSmoothingEnabled = false;
    if (layers.prediction && this.predictionLayer) {
      ctx.globalAlpha = Math.min(1, look.opacity + 0.1);
      ctx.drawImage(this.predictionLayer, 0, 0);
    }
    if (layers.mask) {
      ctx.globalAlpha = look.opacity;
      ctx.drawImage(this.maskLayer, 0, 0);
    }
    ctx.globalAlpha = 1;
  }

  destroy(): void {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
  }
}
