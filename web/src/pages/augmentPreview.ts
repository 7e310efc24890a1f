// A preview of what the augmentation pipeline does to a seed image, drawn in the browser:
// flips, random crops, quarter turns and brightness/contrast jitter as configured (elastic
// deformation is not drawn). The API offers no preview of the worker's own examples, so
// this shows the kind of crops, not the exact pixels the training will see.

import { mulberry32 } from "../../../activities/random.js";
import type { AugmentStep } from "../api/types.js";
import { h } from "../ui/dom.js";

const pick = <T>(rand: () => number, xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;

/** Draws `count` example crops of `image` following the pipeline's steps. */
export function previewCrops(image: ImageBitmap, steps: AugmentStep[], seed: number, count = 8, size = 110): HTMLCanvasElement[] {
  const rand = mulberry32(seed);
  const out: HTMLCanvasElement[] = [];
  for (let n = 0; n < count; n++) {
    let flip = "none";
    let crop: [number, number] = [image.height, image.width];
    let k = 0;
    let filter = "none";
    for (const s of steps) {
      if (s.op === "flip") flip = pick(rand, (s.modes as string[] | undefined) ?? ["none"]);
      else if (s.op === "random_crop") crop = ((s.size as number[] | undefined) ?? crop) as [number, number];
      else if (s.op === "rotate90") k = pick(rand, (s.ks as number[] | undefined) ?? [0]);
      else if (s.op === "intensity" && rand() < Number(s.p ?? 1)) {
        const b = 1 + (rand() * 2 - 1) * Number(s.brightness ?? 0);
        const c = 1 + (rand() * 2 - 1) * Number(s.contrast ?? 0);
        filter = `brightness(${b.toFixed(3)}) contrast(${c.toFixed(3)})`;
      }
    }
    const ch = Math.min(crop[0], image.height);
    const cw = Math.min(crop[1], image.width);
    const y = Math.floor(rand() * (image.height - ch + 1));
    const x = Math.floor(rand() * (image.width - cw + 1));
    const canvas = h("canvas", { width: size, height: size, title: `flip ${flip}, crop ${cw}×${ch} at ${x},${y}, ${k} quarter turns` });
    const ctx = canvas.getContext("2d")!;
    ctx.translate(size / 2, size / 2);
    ctx.rotate((k * Math.PI) / 2);
    ctx.scale(flip.includes("h") ? -1 : 1, flip.includes("v") ? -1 : 1);
    ctx.filter = filter;
    ctx.drawImage(image, x, y, cw, ch, -size / 2, -size / 2, size, size);
    out.push(canvas);
  }
  return out;
}
