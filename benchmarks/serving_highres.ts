// Full-resolution serving → benchmarks/results/serving_highres.json. Not a test.
//
// The TypeScript serving path (serving/model.ts: onnxruntime-node and serving/slidingWindow.ts)
// on a 3504×2336 image (CHASE_DB1 Image_01L.jpg tiled to a high-resolution fundus size) and on the
// 999×960 original: median seconds of `segment` (the sliding window over the whole image) after
// one warm-up, the process's peak resident memory, and the largest difference from the engine's
// PyTorch probabilities on the same image (parity ≤ 1e-4). Model: the engine's default network
// and window (test/serving/fixtures/make_model.py --engine-defaults), random weights: timing does
// not depend on the weights.
// Usage: npx tsx benchmarks/serving_highres.ts [--threads 2] [--repeat 3]
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import sharp from "sharp";
import { interleavedToPlanar } from "../serving/image.js";
import { loadModel } from "../serving/model.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const chaseDir = path.resolve(root, process.env.MEDLOOP_CHASE_DIR ?? "../shared/data/chase_db1");
const { values } = parseArgs({ options: { threads: { type: "string", default: "2" }, repeat: { type: "string", default: "3" } } });
const threads = Number(values.threads);
const repeat = Number(values.repeat);
const run = promisify(execFile);

/** The CHASE image tiled to width × height, as interleaved RGB. */
async function tiled(width: number, height: number): Promise<Buffer> {
  const { data, info } = await sharp(path.join(chaseDir, "images/Image_01L.jpg")).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const out = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const src = ((y % info.height) * info.width + (x % info.width)) * 3;
      data.copy(out, (y * width + x) * 3, src, src + 3);
    }
  }
  return out;
}

/** The engine's PyTorch probabilities of a PNG, as float32 (written by Python to `out`). */
async function enginePrediction(dir: string, png: string, out: string): Promise<number> {
  const script = `
import sys, time, numpy as np, torch
from medloop_ml.infer import Predictor
from medloop_ml.ingest import read_image
torch.set_num_threads(${threads})
img = read_image(sys.argv[1])
p = Predictor.from_run(sys.argv[2])
p.probability(img)
t = time.perf_counter(); prob = p.probability(img); t = time.perf_counter() - t
prob.astype(np.float32).tofile(sys.argv[3])
print(t)
`;
  const { stdout } = await run(path.join(root, ".venv/bin/python"), ["-c", script, png, dir, out], { cwd: root, maxBuffer: 1 << 20 });
  return Number(stdout.trim().split("\n").at(-1));
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "medloop-highres-"));
  const loadBefore = os.loadavg()[0];
  try {
    await run(path.join(root, ".venv/bin/python"), ["test/serving/fixtures/make_model.py", "--out", dir, "--chase", chaseDir, "--engine-defaults"], { cwd: root });
    const model = await loadModel(dir, { threads });
    const results = [];
    for (const [width, height] of [
      [999, 960],
      [3504, 2336],
    ] as const) {
      const rgb = await tiled(width, height);
      const png = path.join(dir, `image_${width}x${height}.png`);
      await sharp(rgb, { raw: { width, height, channels: 3 } }).png().toFile(png);
      const image = interleavedToPlanar(rgb, width, height, 3);
      await model.segment(image); // warm-up
      const times: number[] = [];
      let prob = await model.segment(image);
      for (let i = 0; i < repeat; i++) {
        const t = performance.now();
        prob = await model.segment(image);
        times.push((performance.now() - t) / 1000);
      }
      const refPath = path.join(dir, `ref_${width}x${height}.f32`);
      const torchSeconds = await enginePrediction(dir, png, refPath);
      const refBytes = await readFile(refPath);
      const ref = new Float32Array(refBytes.buffer, refBytes.byteOffset, refBytes.byteLength / 4);
      let maxDiff = 0;
      for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref[i]! - prob.data[i]!));
      times.sort((a, b) => a - b);
      const row = {
        size: `${width}x${height}`,
        serving_seconds: times[Math.floor(times.length / 2)]!,
        serving_runs: times,
        engine_pytorch_seconds: torchSeconds,
        max_abs_diff_vs_pytorch: maxDiff,
      };
      console.log(JSON.stringify(row));
      results.push(row);
    }
    await model.close();
    const report = {
      benchmark: "serving_highres",
      window: model.window,
      threads,
      repeat,
      peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, load_average_1m_before: loadBefore, load_average_1m_after: os.loadavg()[0] },
      results,
    };
    await writeFile(path.join(root, "benchmarks/results/serving_highres.json"), JSON.stringify(report, null, 2) + "\n");
    console.log(`peak RSS ${report.peak_rss_mb} MB; wrote benchmarks/results/serving_highres.json`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
