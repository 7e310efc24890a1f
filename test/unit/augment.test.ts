// The augmentation activity on real PNGs in a temporary blob store (sharp decodes and
// encodes; MockActivityEnvironment provides the activity context for heartbeats).
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { MockActivityEnvironment } from "@temporalio/testing";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applySteps,
  createAugmentActivities,
  examplesPerImage,
  rotate90,
  validatePipeline,
  type AugmentOutput,
  type AugmentSource,
  type DatasetManifest,
  type Example,
} from "../../activities/augment.js";
import { mulberry32 } from "../../activities/random.js";
import { BlobStore } from "../../services/blobs.js";
import type { AugmentPipeline } from "../../workflows/types.js";
import { makeImage } from "../workflow/helpers.js";

let dir: string;
let blobs: BlobStore;
let sources: AugmentSource[];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "medloop-augment-"));
  blobs = new BlobStore(dir);
  sources = await Promise.all(
    ["a", "b"].map(async (id) => ({ imageId: id, ...(await makeImage(blobs, id, 64)) })),
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A 3×2 example whose pixel values are their indices, to follow pixels through transforms. */
function tiny(): Example {
  const rgb = new Uint8Array(18);
  const mask = new Uint8Array(6);
  for (let i = 0; i < 6; i++) {
    rgb.set([i, i, i], i * 3);
    mask[i] = i;
  }
  return { width: 3, height: 2, rgb, mask, ops: [] };
}

describe("pipeline", () => {
  it("counts examples like the published recipe: 6 images × 4 flips × 11 crops = 264", () => {
    const recipe: AugmentPipeline = {
      seed: 7,
      steps: [
        { op: "flip", modes: ["none", "h", "v", "hv"] },
        { op: "random_crop", size: [448, 448], count: 11 },
        { op: "intensity", brightness: 0.1, contrast: 0.1, p: 1 },
      ],
    };
    validatePipeline(recipe);
    expect(6 * examplesPerImage(recipe)).toBe(264);
  });

  it("names the step index, op and field of a bad config", () => {
    const bad = (steps: unknown[]) => () => validatePipeline({ seed: 1, steps } as AugmentPipeline);
    expect(bad([{ op: "flip", modes: ["h"] }, { op: "random_crop", size: [0, 10], count: 2 }])).toThrow(
      "augmentation step 1 (random_crop): size must be [height, width] of positive integers",
    );
    expect(bad([{ op: "flip", modes: ["x"] }])).toThrow('augmentation step 0 (flip): modes has unknown mode "x"');
    expect(bad([{ op: "intensity", brightness: 0.1, contrast: 2 }])).toThrow("step 0 (intensity): contrast must be in [0, 1)");
    expect(bad([{ op: "swirl" }])).toThrow("step 0 (swirl): op is unknown");
    expect(() => validatePipeline({ seed: 1.5, steps: [] })).toThrow("seed must be an integer");
  });

  it("flips, crops and rotates image and mask together (numpy rot90 convention)", () => {
    const [none, h, v] = applySteps(tiny(), [{ op: "flip", modes: ["none", "h", "v"] }], mulberry32(1));
    expect([...none!.mask]).toEqual([0, 1, 2, 3, 4, 5]);
    expect([...h!.mask]).toEqual([2, 1, 0, 5, 4, 3]);
    expect([...v!.mask]).toEqual([3, 4, 5, 0, 1, 2]);
    // [[0,1,2],[3,4,5]] rotated 90° counter-clockwise is [[2,5],[1,4],[0,3]].
    const r1 = rotate90(tiny(), 1);
    expect([r1.width, r1.height]).toEqual([2, 3]);
    expect([...r1.mask]).toEqual([2, 5, 1, 4, 0, 3]);
    expect([...rotate90(tiny(), 3).mask]).toEqual([3, 0, 4, 1, 5, 2]);
    expect([...rotate90(tiny(), 2).mask]).toEqual([5, 4, 3, 2, 1, 0]);
    for (const ex of [h!, v!, r1]) for (let i = 0; i < ex.mask.length; i++) expect(ex.rgb[i * 3]).toBe(ex.mask[i]);
    const crops = applySteps(tiny(), [{ op: "random_crop", size: [1, 2], count: 4 }], mulberry32(2));
    expect(crops.map((c) => [c.width, c.height])).toEqual(Array(4).fill([2, 1]));
    expect(() => applySteps(tiny(), [{ op: "random_crop", size: [3, 3], count: 1 }], mulberry32(2))).toThrow(
      "step 0 (random_crop): size 3x3 is larger than the 2x3 image",
    );
  });
});

describe("augmentDataset activity", () => {
  const pipeline: AugmentPipeline = {
    seed: 11,
    steps: [
      { op: "flip", modes: ["none", "hv"] },
      { op: "random_crop", size: [40, 32], count: 3 },
      { op: "rotate90", ks: [0, 1] },
      { op: "elastic", alpha: 2, sigma: 3, p: 0.5 },
    ],
  };

  it("writes every example and a versioned manifest; the same inputs give the same dataset, written once", async () => {
    const { augmentDataset } = createAugmentActivities(blobs);
    const env = new MockActivityEnvironment();
    const input = { datasetKey: "datasets/c1/round-0", items: sources, pipeline };
    const out: AugmentOutput = await env.run(augmentDataset, input);
    expect(out.count).toBe(2 * 2 * 3 * 2);
    expect(out.examples).toHaveLength(out.count);
    expect(out.manifestUri).toBe(`blob://datasets/c1/round-0/${out.version}/manifest.json`);
    const manifest = JSON.parse((await blobs.get(out.manifestUri)).toString("utf8")) as DatasetManifest;
    expect(manifest).toMatchObject({ format: "medloop-dataset/1", version: out.version, count: out.count, pipeline });
    expect(manifest.examples.filter((e) => e.source === "a")).toHaveLength(12);

    for (const ex of manifest.examples) {
      const img = await sharp(await blobs.get(ex.image_uri)).raw().toBuffer({ resolveWithObject: true });
      const maskPng = await blobs.get(ex.mask_uri);
      expect((await sharp(maskPng).metadata()).channels).toBe(1); // a one-channel PNG on disk
      const mask = await sharp(maskPng).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
      const rotated = ex.ops.includes("rot90:1");
      expect([img.info.width, img.info.height]).toEqual(rotated ? [40, 32] : [32, 40]);
      expect([mask.info.width, mask.info.height, mask.info.channels]).toEqual([img.info.width, img.info.height, 1]);
      // The synthetic vessels are dark red (60) on 180: wherever the mask says vessel, the image agrees.
      let agree = 0;
      let vessel = 0;
      for (let i = 0; i < mask.data.length; i++) {
        expect([0, 255]).toContain(mask.data[i]);
        if (mask.data[i] === 255) {
          vessel++;
          if ((img.data[i * img.info.channels] as number) < 120) agree++;
        }
      }
      if (!ex.ops.some((o) => o.startsWith("elastic"))) expect(agree).toBe(vessel);
      else expect(agree).toBeGreaterThanOrEqual(vessel * 0.8); // bilinear image vs nearest mask at edges
    }

    const mtime = (await stat(path.join(dir, "datasets/c1/round-0", out.version, "manifest.json"))).mtimeMs;
    const again = await env.run(augmentDataset, input);
    expect(again).toEqual(out);
    expect((await stat(path.join(dir, "datasets/c1/round-0", out.version, "manifest.json"))).mtimeMs).toBe(mtime);

    const otherSeed: AugmentOutput = await env.run(augmentDataset, { ...input, pipeline: { ...pipeline, seed: 12 } });
    expect(otherSeed.version).not.toBe(out.version);
    const firstCrop = async (uri: string) => (await blobs.get(uri)).toString("base64");
    expect(await firstCrop(otherSeed.examples[0]!.image_uri)).not.toBe(await firstCrop(out.examples[0]!.image_uri));
  });

  it("fails clearly and writes nothing when one mask has another size", async () => {
    const { augmentDataset } = createAugmentActivities(blobs);
    const small = await makeImage(blobs, "small", 32);
    const items = [sources[0]!, { imageId: "mixed", imageUri: sources[1]!.imageUri, maskUri: small.maskUri }];
    await expect(new MockActivityEnvironment().run(augmentDataset, { datasetKey: "datasets/bad", items, pipeline })).rejects.toThrow(
      "image mixed: mask is 32x32, image is 64x64",
    );
    expect(await blobs.exists("blob://datasets/bad")).toBe(false);
  });
});
