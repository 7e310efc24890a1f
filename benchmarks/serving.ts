// Serving benchmark → benchmarks/results/serving.json. Not a test.
//
// Model: the engine's default network and window (test/serving/fixtures/make_model.py
// --engine-defaults: TrainConfig's defaults, U-Net width 8, depth 4, local contrast and flip averaging in
// the graph; since issue 11 a 1280-pixel window with overlap 0.125, when the committed figures
// were measured 1024 and 0.25: one window at 999×960 either way), random weights.
// Image: CHASE_DB1 Image_01L.jpg, 999×960.
// Measures, on one machine with the same thread count for every path:
// - in-process: the onnxruntime-node session through serving/model.ts (sliding window only, and
//   decode + window + PNG encode, i.e. the segment endpoint's work without HTTP);
// - HTTP: POST /v1/models/{name}/segment to a server in a child process, with 1, 4 and 16
//   concurrent clients: p50/p99 latency and throughput; one V2 JSON infer at 1 client;
// - Python: the engine's PyTorch Predictor (and its ONNX Runtime predictor) on the same image.
// Usage: npx tsx benchmarks/serving.ts [--threads N] [--requests N] [--patch P]
import { execFile, spawn } from "node:child_process";
import { mkdtemp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { parseArgs } from "node:util";
import express from "express";
import { decodeImage, maskPng, threshold } from "../serving/image.js";
import { loadModel } from "../serving/model.js";
import { windowGrid } from "../serving/slidingWindow.js";
import { createServingRouter, staticProvider } from "../serving/server.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const chaseDir = path.resolve(root, process.env.MEDLOOP_CHASE_DIR ?? "../shared/data/chase_db1");
const imagePath = path.join(chaseDir, "images/Image_01L.jpg");
const KEY = "bench-key";

const { values } = parseArgs({
  options: {
    threads: { type: "string", default: String(Math.min(os.cpus().length, 4)) },
    requests: { type: "string", default: "8" },
    patch: { type: "string" },
    child: { type: "string" },
  },
});
const threads = Number(values.threads);

function quantile(sorted: number[], q: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

function stats(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  const r = (v: number) => Math.round(v * 10) / 10;
  return { n: s.length, p50_ms: r(quantile(s, 0.5)), p99_ms: r(quantile(s, 0.99)), mean_ms: r(s.reduce((a, b) => a + b, 0) / s.length) };
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/** Child mode: serve the model folder on a free port, print the URL, run until killed. */
async function serveChild(dir: string): Promise<void> {
  const model = await loadModel(dir, { threads });
  const provider = staticProvider([{ name: "vessels", version: "1", model }], { vessels: [KEY] });
  const app = express();
  app.use(createServingRouter({ provider, rateLimit: { perSecond: 1e6, burst: 1e6 } }).router);
  const server = app.listen(0, "127.0.0.1", () => {
    // Longer than a queued request can wait, so a kept-alive connection is not closed under a client.
    server.keepAliveTimeout = 120_000;
    server.headersTimeout = 121_000;
    const addr = server.address() as { port: number };
    console.log(`URL http://127.0.0.1:${addr.port}`);
  });
}

async function startServer(dir: string): Promise<{ url: string; stop(): void }> {
  const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), "--child", dir, "--threads", String(threads)], {
    cwd: root,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let text = "";
    child.stdout.on("data", (d: Buffer) => {
      text += d.toString();
      const m = /URL (\S+)/.exec(text);
      if (m) resolve(m[1]!);
    });
    child.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
  });
  return { url, stop: () => child.kill("SIGTERM") };
}

async function clients(concurrency: number, total: number, request: () => Promise<void>) {
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        next++;
        latencies.push(await timed(request));
      }
    }),
  );
  const wall = performance.now() - t0;
  return { concurrency, ...stats(latencies), throughput_rps: Math.round((latencies.length / (wall / 1000)) * 100) / 100 };
}

async function pythonTimes(dir: string, runs: number): Promise<Record<string, unknown>> {
  const script = `
import json, time, numpy as np, torch
from PIL import Image
from medloop_ml.infer import Predictor
from medloop_ml.onnx_export import OnnxPredictor
torch.set_num_threads(${threads})
img = np.asarray(Image.open(${JSON.stringify(imagePath)}).convert("RGB"))
def bench(fn):
    fn(img)
    out = []
    for _ in range(${runs}):
        t = time.perf_counter(); fn(img); out.append((time.perf_counter() - t) * 1000)
    return sorted(out)
pt = Predictor.from_run(${JSON.stringify(dir)})
ox = OnnxPredictor(${JSON.stringify(path.join(dir, "model.onnx"))}, threads=${threads})
print(json.dumps({"pytorch_ms": bench(pt.probability), "onnxruntime_python_ms": bench(ox.probability)}))
`;
  const { stdout } = await promisify(execFile)(path.join(root, ".venv/bin/python"), ["-c", script], { cwd: root, maxBuffer: 1 << 20 });
  const raw = JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<string, number[]>;
  return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k.replace(/_ms$/, ""), stats(v)]));
}

async function main(): Promise<void> {
  if (values.child) return serveChild(values.child);
  const requests = Number(values.requests);
  const dir = await mkdtemp(path.join(os.tmpdir(), "medloop-bench-"));
  try {
    const fixtureArgs = ["test/serving/fixtures/make_model.py", "--out", dir, "--chase", chaseDir];
    fixtureArgs.push(...(values.patch ? ["--width", "16", "--depth", "4", "--patch", values.patch] : ["--engine-defaults"]));
    console.log("building the model (engine network, ONNX export with parity check) …");
    await promisify(execFile)(path.join(root, ".venv/bin/python"), fixtureArgs, { cwd: root });
    const meta = JSON.parse(await readFile(path.join(dir, "model.json"), "utf8")) as Record<string, unknown>;
    const jpeg = await readFile(imagePath);

    console.log("Python …");
    const python = await pythonTimes(dir, Math.min(requests, 5)).catch((err: Error) => ({ error: err.message.split("\n").at(-2) }));
    console.log(JSON.stringify(python));

    console.log("in-process and HTTP, paired …");
    const server = await startServer(dir);
    const model = await loadModel(dir, { threads });
    const image = await decodeImage(jpeg, 25e6);
    const windowCount = windowGrid(Math.max(image.height, model.window.patch[0]), Math.max(image.width, model.window.patch[1]), model.window).length;
    const segment = async () => {
      const res = await fetch(`${server.url}/v1/models/vessels/segment`, {
        method: "POST",
        headers: { "x-api-key": KEY, "content-type": "image/jpeg" },
        body: new Uint8Array(jpeg),
      });
      if (res.status !== 200) throw new Error(`segment answered ${res.status}`);
      await res.arrayBuffer();
    };
    const http: Array<Awaited<ReturnType<typeof clients>>> = [];
    const windowOnly: number[] = [];
    const endToEnd: number[] = [];
    const paired: number[] = [];
    let v2: ReturnType<typeof stats> | null = null;
    try {
      await model.segment(image); // warm-up
      await segment();
      // The machine is shared: in-process and HTTP calls alternate, so both see the same load, and
      // the overhead ratio is the median of per-pair ratios.
      for (let i = 0; i < requests; i++) {
        windowOnly.push(await timed(() => model.segment(image)));
        endToEnd.push(
          await timed(async () => {
            const img = await decodeImage(jpeg, 25e6);
            const prob = await model.segment(img);
            await maskPng(threshold(prob, 0.5), img.width, img.height);
          }),
        );
        paired.push(await timed(segment));
      }
      await model.close();
      http.push({ concurrency: 1, ...stats(paired), throughput_rps: Math.round((1000 / stats(paired).mean_ms) * 100) / 100 });
      for (const c of [4, 16]) {
        console.log(`  ${c} concurrent clients`);
        http.push(await clients(c, Math.max(requests, c), segment));
      }
      const body = JSON.stringify({
        inputs: [{ name: "image", shape: [1, 3, image.height, image.width], datatype: "FP32", data: Array.from(image.data) }],
      });
      const v2Times: number[] = [];
      for (let i = 0; i < 3; i++) {
        v2Times.push(
          await timed(async () => {
            const res = await fetch(`${server.url}/v2/models/vessels/infer`, {
              method: "POST",
              headers: { "x-api-key": KEY, "content-type": "application/json" },
              body,
            });
            await res.json();
          }),
        );
      }
      v2 = { ...stats(v2Times), request_mb: Math.round(body.length / 1e5) / 10 } as ReturnType<typeof stats>;
    } finally {
      server.stop();
    }

    const inproc = { sliding_window: stats(windowOnly), decode_window_encode: stats(endToEnd) };
    const median = (xs: number[]) => quantile([...xs].sort((a, b) => a - b), 0.5);
    const ratio = (v: number) => Math.round(v * 1000) / 1000;
    const result = {
      generated_at: new Date().toISOString(),
      machine: { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, load_average_1m: os.loadavg()[0], node: process.version },
      threads,
      image: { file: "CHASE_DB1 images/Image_01L.jpg", width: image.width, height: image.height },
      model: { network: "engine U-Net (random weights)", patch_size: meta.patch_size, overlap: meta.overlap, windows_per_image: windowCount },
      in_process: inproc,
      http_segment: http,
      http_v2_infer_json: v2,
      overhead_ratio: {
        note: "HTTP segment (1 client) / in-process, median of per-pair ratios; >1 means HTTP costs more",
        vs_in_process_sliding_window: ratio(median(paired.map((h, i) => h / windowOnly[i]!))),
        vs_in_process_decode_window_encode: ratio(median(paired.map((h, i) => h / endToEnd[i]!))),
      },
      python,
      typescript_vs_pytorch_p50:
        "pytorch" in python
          ? Math.round((inproc.sliding_window.p50_ms / (python.pytorch as { p50_ms: number }).p50_ms) * 1000) / 1000
          : null,
    };
    const out = path.join(root, "benchmarks/results/serving.json");
    await mkdir(path.dirname(out), { recursive: true });
    await writeFile(out, JSON.stringify(result, null, 2) + "\n");
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
