import { describe, expect, it } from "vitest";
import {
  MAX_SCALE,
  MIN_SCALE,
  fit,
  imageToScreen,
  pan,
  screenToImage,
  visibleImageRect,
  wheelFactor,
  zoomAt,
} from "../../web/src/editor/view.js";

describe("view transform", () => {
  it("maps screen to image and back", () => {
    const v = { scale: 2.5, tx: 13, ty: -7 };
    const p = screenToImage(v, 100, 50);
    expect(p.x).toBeCloseTo((100 - 13) / 2.5);
    const s = imageToScreen(v, p.x, p.y);
    expect(s.x).toBeCloseTo(100);
    expect(s.y).toBeCloseTo(50);
  });

  it("zooms towards the pointer: the image point under it stays put", () => {
    let v = { scale: 1, tx: 20, ty: 30 };
    const under = screenToImage(v, 300, 200);
    v = zoomAt(v, 300, 200, 3);
    expect(v.scale).toBe(3);
    const after = screenToImage(v, 300, 200);
    expect(after.x).toBeCloseTo(under.x, 9);
    expect(after.y).toBeCloseTo(under.y, 9);
    v = zoomAt(v, 10, 400, 0.25);
    const p = screenToImage(zoomAt(v, 10, 400, 2), 10, 400);
    expect(p.x).toBeCloseTo(screenToImage(v, 10, 400).x, 9);
  });

  it("clamps the scale", () => {
    expect(zoomAt({ scale: 1, tx: 0, ty: 0 }, 0, 0, 1e6).scale).toBe(MAX_SCALE);
    expect(zoomAt({ scale: 1, tx: 0, ty: 0 }, 0, 0, 1e-6).scale).toBe(MIN_SCALE);
  });

  it("wheel up zooms in, wheel down zooms out, symmetric", () => {
    expect(wheelFactor(-100)).toBeGreaterThan(1);
    expect(wheelFactor(100)).toBeLessThan(1);
    expect(wheelFactor(-100) * wheelFactor(100)).toBeCloseTo(1);
    expect(wheelFactor(-3, 1)).toBeCloseTo(wheelFactor(-48));
  });

  it("pans by screen pixels", () => {
    const v = pan({ scale: 2, tx: 0, ty: 0 }, 10, -4);
    expect(screenToImage(v, 10, -4)).toEqual({ x: 0, y: 0 });
  });

  it("fits a 999×960 image centred in the viewport", () => {
    const v = fit(999, 960, 1200, 800);
    expect(v.scale).toBeCloseTo(800 / 960);
    const c = imageToScreen(v, 999 / 2, 960 / 2);
    expect(c.x).toBeCloseTo(600);
    expect(c.y).toBeCloseTo(400);
  });

  it("reports the visible image region clipped to the image", () => {
    const v = { scale: 2, tx: -100, ty: -50 };
    expect(visibleImageRect(v, 400, 300, 999, 960)).toEqual({ x0: 50, y0: 25, x1: 250, y1: 175 });
    expect(visibleImageRect(fit(999, 960, 500, 500), 500, 500, 999, 960)).toEqual({ x0: 0, y0: 0, x1: 999, y1: 960 });
  });
});
