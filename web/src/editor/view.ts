// The editor's view transform: screen = image × scale + offset (CSS pixels relative
// to the canvas element's top-left corner). Pure functions so that zooming towards
// the pointer and panning are tested without a browser.

import type { Point } from "../../../services/correction/raster.js";

export interface View {
  scale: number;
  tx: number;
  ty: number;
}

export const MIN_SCALE = 0.05;
export const MAX_SCALE = 64;

export function screenToImage(v: View, sx: number, sy: number): Point {
  return { x: (sx - v.tx) / v.scale, y: (sy - v.ty) / v.scale };
}

export function imageToScreen(v: View, ix: number, iy: number): Point {
  return { x: ix * v.scale + v.tx, y: iy * v.scale + v.ty };
}

export function clampScale(scale: number): number {
  return Math.min(MAX_SCALE, Math.max(MIN_SCALE, scale));
}

/** Scales by `factor` keeping the image point under (sx, sy) where it is. */
export function zoomAt(v: View, sx: number, sy: number, factor: number): View {
  const scale = clampScale(v.scale * factor);
  const p = screenToImage(v, sx, sy);
  return { scale, tx: sx - p.x * scale, ty: sy - p.y * scale };
}

/** Zoom factor for one wheel event: smooth for trackpads, one notch ≈ 1.2×. */
export function wheelFactor(deltaY: number, deltaMode = 0): number {
  const pixels = deltaMode === 1 ? deltaY * 16 : deltaMode === 2 ? deltaY * 400 : deltaY;
  return Math.pow(1.2, -pixels / 100);
}

export function pan(v: View, dx: number, dy: number): View {
  return { scale: v.scale, tx: v.tx + dx, ty: v.ty + dy };
}

/** The whole image centred in a viewport of the given size. */
export function fit(imageW: number, imageH: number, viewW: number, viewH: number): View {
  const scale = clampScale(Math.min(viewW / imageW, viewH / imageH));
  return { scale, tx: (viewW - imageW * scale) / 2, ty: (viewH - imageH * scale) / 2 };
}

/** The image region visible in the viewport, clipped to the image (for repainting). */
export function visibleImageRect(
  v: View,
  viewW: number,
  viewH: number,
  imageW: number,
  imageH: number,
): { x0: number; y0: number; x1: number; y1: number } {
  const a = screenToImage(v, 0, 0);
  const b = screenToImage(v, viewW, viewH);
  return {
    x0: Math.max(0, Math.floor(a.x)),
    y0: Math.max(0, Math.floor(a.y)),
    x1: Math.min(imageW, Math.ceil(b.x)),
    y1: Math.min(imageH, Math.ceil(b.y)),
  };
}
