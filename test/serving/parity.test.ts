// TypeScript sliding window over onnxruntime-node against the Python engine (PyTorch network inside
// MONAI's SlidingWindowInferer, mode="gaussian") on CHASE_DB1 image crops and a full image.
import { readFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeImage, interleavedToPlanar } from "../../serving/image.js";
import { loadModel, type LoadedModel } from "../../serving/model.js";
import {
  fittedWindow,
  gaussianImportance,
  scanInterval,
  slidingWindowInference,
  windowGrid,
  windowStarts,
} from "../../serving/slidingWindow.js";
import { chaseDir, makeModelFixture, type ModelFixture } from "./fixtures.js";

let fx: ModelFixture;
let model: LoadedModel;

beforeAll(async () => {
  fx = await makeModelFixture({ full: true });
  model = await loadModel(fx.dir, { threads: 2 });
});
afterAll(async () => {
  await model?.close();
  await fx?.cleanup();
});

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let k = 0; k < a.length; k++) worst = Math.max(worst, Math.abs(a[k]! - b[k]!));
  return worst;
}

describe("window placement (MONAI dense_patch_slices)", () => {
  it("covers the image with the last window flush against the far edge", () => {
    expect(scanInterval(999, 256, 0.25)).toBe(192);
    expect(windowStarts(999, 256, 192)).toEqual([0, 192, 384, 576, 743]);
    expect(windowStarts(960, 256, 192)).toEqual([0, 192, 384, 576, 704]);
    expect(scanInterval(256, 256, 0.5)).toBe(256);
    expect(windowStarts(256, 256, 256)).toEqual([0]);
  });

  it("orders windows rows outer, columns inner", () => {
    const grid = windowGrid(200, 300, { patch: [128, 128], overlap: 0.5, blend: "gaussian", sigmaScale: 0.125, batch: 1 });
    expect(grid.slice(0, 3)).toEqual([
      [0, 0],
      [0, 64],
      [0, 128],
    ]);
    expect(grid.at(-1)).toEqual([72, 172]);
  });

  it("builds a Gaussian importance map peaking at the centre, floored at 1e-3", () => {
    const map = gaussianImportance(8, 6, 0.125);
    expect(Math.max(...map)).toBeLessThanOrEqual(1);
    expect(Math.min(...map)).toBeCloseTo(1e-3, 6);
    expect(map[3 * 6 + 2]).toBeGreaterThan(map[0]!);
  });

  it.each(["gaussian", "constant"] as const)("blends a constant network output back to that constant (%s)", async (blend) => {
    const img = { data: new Float32Array(3 * 50 * 70), channels: 3, height: 50, width: 70 };
    let calls = 0;
    const out = await slidingWindowInference(
      img,
      async (_w, n, h, w) => {
        calls += n;
        return new Float32Array(n * h * w).fill(0.25);
      },
      { patch: [32, 32], overlap: 0.25, blend, sigmaScale: 0.125, batch: 3 },
    );
    expect(calls).toBe(windowGrid(50, 70, { patch: [32, 32], overlap: 0.25, blend, sigmaScale: 0.125, batch: 3 }).length);
    expect([out.height, out.width]).toEqual([50, 70]);
    for (const v of out.data) expect(v).toBeCloseTo(0.25, 6);
  });
});

describe("window fitted to the image (ml/src/medloop_ml/infer.py fitted_window)", () => {
  const cfg = { patch: [128, 128] as const, overlap: 0.25, blend: "gaussian" as const, sigmaScale: 0.125, batch: 1 };
  it("shrinks the window along short sides to the side rounded up to the size multiple", async () => {
    expect(fittedWindow(67, 99, { ...cfg, multiple: 16 })).toEqual([80, 112]);
    expect(fittedWindow(960, 999, { ...cfg, patch: [1280, 1280], multiple: 16 })).toEqual([960, 1008]);
    expect(fittedWindow(2336, 3504, { ...cfg, patch: [1280, 1280], multiple: 16 })).toEqual([1280, 1280]);
    expect(fittedWindow(67, 99, cfg)).toEqual([128, 128]); // older model.json: the whole window
    const seen: number[][] = [];
    const img = { data: new Float32Array(3 * 67 * 99), channels: 3, height: 67, width: 99 };
    const out = await slidingWindowInference(
      img,
      async (_w, n, h, w) => {
        seen.push([n, h, w]);
        return new Float32Array(n * h * w).fill(0.5);
      },
      { ...cfg, multiple: 16 },
    );
    expect(seen).toEqual([[1, 80, 112]]);
    expect([out.height, out.width]).toEqual([67, 99]);
  });
});

describe("TypeScript/Python parity", () => {
  it("decodes CHASE_DB1 JPEGs to the same pixels as the engine (Pillow)", async () => {
    const jpeg = await readFile(path.join(chaseDir, "images/Image_01L.jpg"));
    const img = await decodeImage(jpeg, 4_000_000);
    expect([img.height, img.width]).toEqual([960, 999]);
    const ref = await fx.input("full");
    const planar = interleavedToPlanar(ref, 999, 960, 3);
    expect(maxAbsDiff(img.data, planar.data)).toBe(0);
  });

  it.each(["crop", "small", "full"])("matches the engine's probabilities within 1e-4 on %s", async (name) => {
    const c = fx.cases.find((x) => x.name === name)!;
    const img = interleavedToPlanar(await fx.input(name), c.width, c.height, 3);
    const out = await model.segment(img);
    expect([out.channels, out.height, out.width]).toEqual([1, c.height, c.width]);
    const ref = await fx.prob(name);
    expect(maxAbsDiff(out.data, ref)).toBeLessThan(1e-4);
  });

  it("gives the same map whatever the number of windows per network call", async () => {
    const c = fx.cases.find((x) => x.name === "crop")!;
    const img = interleavedToPlanar(await fx.input("crop"), c.width, c.height, 3);
    const a = await model.segment(img);
    model.window.batch = 1;
    const b = await model.segment(img);
    model.window.batch = 4;
    expect(maxAbsDiff(a.data, b.data)).toBeLessThan(1e-6);
  });
});
