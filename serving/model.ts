// A loaded model: the onnxruntime-node session plus the window settings of model.json. One
// session serves every request of a deployment; onnxruntime runs calls on its own thread pool.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { z } from "zod";
import { slidingWindowInference, type Planar, type WindowConfig } from "./slidingWindow.js";

const size = z.number().int().min(8).max(4096);

/** model.json as the engine writes it (docs/architecture.md, "Model files"). */
export const modelMetaSchema = z.object({
  input: z.string().default("image"),
  output: z.string().default("probability"),
  patch_size: z.union([size, z.tuple([size, size])]),
  /** The network's size multiple (2^depth) the window is fitted to small images with; absent in older files. */
  size_multiple: z.number().int().min(1).max(4096).optional(),
  overlap: z.number().min(0).lt(1).default(0.25),
  threshold: z.number().gt(0).lt(1).default(0.5),
  /** How overlapping windows are blended (MONAI's mode); the engine uses "gaussian". */
  blend: z.enum(["gaussian", "constant"]).default("gaussian"),
  sigma_scale: z.number().positive().default(0.125),
  sw_batch_size: z.number().int().min(1).max(64).optional(),
  channels: z.literal(3).default(3),
  metrics: z.record(z.string(), z.unknown()).default({}),
});
export type ModelMeta = z.infer<typeof modelMetaSchema>;

export interface LoadedModel {
  meta: ModelMeta;
  window: WindowConfig;
  /** The execution provider the session runs on ("cuda" or "cpu"). */
  provider: string;
  session: ort.InferenceSession;
  /** Runs the raw network on an N×3×H×W batch (the V2 `infer` path). */
  run(data: Float32Array, dims: readonly number[]): Promise<{ data: Float32Array; dims: number[] }>;
  /** Sliding-window probability map (1×H×W) of a 3×H×W image in [0, 1]. */
  segment(image: Planar): Promise<Planar>;
  close(): Promise<void>;
}

export async function readModelMeta(file: string): Promise<ModelMeta> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, "utf8"));
  } catch (err) {
    throw new Error(`cannot read model description ${path.basename(file)}: ${(err as Error).message}`, { cause: err });
  }
  const parsed = modelMetaSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`model.json: ${issue.path.join(".") || "(root)"}: ${issue.message}`);
  }
  return parsed.data;
}

/** CUDA when onnxruntime-node's CUDA provider library is installed (its optional download), else CPU. */
export function availableProviders(): string[] {
  const wanted = process.env.MEDLOOP_SERVING_PROVIDER;
  if (wanted) return [wanted];
  const require = createRequire(import.meta.url);
  const bindingDir = path.join(
    path.dirname(require.resolve("onnxruntime-node")),
    "..",
    "bin",
    "napi-v6",
    process.platform,
    process.arch,
  );
  return existsSync(path.join(bindingDir, "libonnxruntime_providers_cuda.so")) ? ["cuda", "cpu"] : ["cpu"];
}

async function createSession(file: string, threads?: number): Promise<{ session: ort.InferenceSession; provider: string }> {
  const base: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: "all" };
  if (threads) base.intraOpNumThreads = threads;
  const providers = availableProviders();
  if (providers[0] !== "cpu") {
    try {
      const session = await ort.InferenceSession.create(file, { ...base, executionProviders: providers });
      return { session, provider: providers[0]! };
    } catch {
      // A CUDA library that is present but unusable (driver mismatch): serve on the CPU instead.
    }
  }
  return { session: await ort.InferenceSession.create(file, { ...base, executionProviders: ["cpu"] }), provider: "cpu" };
}

export interface LoadOptions {
  /** onnxruntime intra-op threads (default: onnxruntime's choice, all cores). */
  threads?: number;
}

/** Loads `model.onnx` + `model.json` from a run folder. */
export async function loadModel(dir: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  const meta = await readModelMeta(path.join(dir, "model.json"));
  const onnxFile = path.join(dir, "model.onnx");
  if (!existsSync(onnxFile)) throw new Error(`model.onnx is missing from the model folder`);
  const { session, provider } = await createSession(onnxFile, opts.threads);
  if (!session.inputNames.includes(meta.input) || !session.outputNames.includes(meta.output)) {
    await session.release();
    throw new Error(
      `model.onnx has inputs [${session.inputNames.join(", ")}] and outputs [${session.outputNames.join(", ")}]; ` +
        `model.json names ${meta.input} → ${meta.output}`,
    );
  }
  const patch: [number, number] = typeof meta.patch_size === "number" ? [meta.patch_size, meta.patch_size] : meta.patch_size;
  const window: WindowConfig = {
    patch,
    ...(meta.size_multiple === undefined ? {} : { multiple: meta.size_multiple }),
    overlap: meta.overlap,
    blend: meta.blend,
    sigmaScale: meta.sigma_scale,
    // One window per call: at 1024×1024 a batch of four holds about 0.5 GB of activations and
    // was slower per window on 2 cores (benchmarks/inference.py).
    batch: meta.sw_batch_size ?? 1,
  };

  const run = async (data: Float32Array, dims: readonly number[]) => {
    const feeds = { [meta.input]: new ort.Tensor("float32", data, dims) };
    const result = await session.run(feeds);
    const out = result[meta.output]!;
    return { data: out.data as Float32Array, dims: [...out.dims] };
  };
  return {
    meta,
    window,
    provider,
    session,
    run,
    segment: (image) =>
      slidingWindowInference(image, async (windows, n, h, w) => (await run(windows, [n, 3, h, w])).data, window),
    close: () => session.release(),
  };
}
