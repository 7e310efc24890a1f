// HTTP serving of deployed models: the V2 Open Inference Protocol (health, model metadata and
// readiness, infer) and a convenience image → mask endpoint, behind per-deployment API keys, a
// token-bucket rate limit, size limits and Prometheus metrics. An Express router, so it mounts in
// the API process or runs alone (`medloop serve-model`, serving/standalone.ts).
import { MAX_PIXELS } from "../services/ingest/contract.js";
import express, { type NextFunction, type Request, type Response } from "express";
import { decodeImage, InputError, maskPng, runLengths, threshold } from "./image.js";
import { createMetrics, type ServingMetrics } from "./metrics.js";
import type { LoadedModel } from "./model.js";
import {
  EXTENSIONS,
  float32ToLE,
  HEADER_LENGTH,
  imageTensor,
  outputAsBinary,
  parseInferBody,
  type InferResponse,
  type ModelMetadataResponse,
} from "./protocol.js";
import { TokenBuckets, type RateLimitOptions } from "./rateLimit.js";

export interface ServedModel {
  name: string;
  version: string;
  model: LoadedModel;
}

/** Where the router finds models and checks keys: the deployment registry or a fixed set. */
export interface ModelProvider {
  /** Whether a deployment of this name (and version, when given) exists. */
  exists(name: string, version?: string): Promise<boolean>;
  /** The loaded model (latest active version when none is given); loads it on first use. */
  resolve(name: string, version?: string): Promise<ServedModel>;
  /** The known versions of a deployment, oldest first. */
  versions(name: string): Promise<string[]>;
  /** The id of the key when `key` opens deployment `name`, else null. */
  authenticate(name: string, key: string): Promise<string | null>;
  /** Whether every model this server is meant to serve is loaded. */
  ready(): boolean;
}

export interface ServingOptions {
  provider: ModelProvider;
  /** Largest image (width × height, or N×H×W of an infer tensor). Default 25 megapixels. */
  maxPixels?: number;
  /** Largest uploaded image file. Default 20 MiB. */
  maxImageBytes?: number;
  /**
   * Largest infer body, JSON or (binary tensor data extension) JSON header plus raw tensor bytes,
   * counted after gzip/deflate decoding. Default 256 MiB: a 999×960 RGB tensor is about 60 MiB of
   * JSON, or 11.5 MiB of float32 bytes.
   */
  maxJsonBytes?: number;
  rateLimit?: RateLimitOptions;
  metrics?: ServingMetrics;
}

const SERVER_VERSION = "0.1.0";

type Endpoint = "metadata" | "ready" | "infer" | "segment";

interface Ctx {
  served?: ServedModel;
  /** The deployment exists (labels metrics with its name even when the key is refused). */
  known?: boolean;
  endpoint: Endpoint;
  name: string;
}

function ctxOf(res: Response): Ctx {
  return res.locals.serving as Ctx;
}

function sendError(res: Response, status: number, message: string): void {
  res.status(status).json({ error: message });
}

/** The API key from `Authorization: Bearer …` or `x-api-key`. */
function apiKeyOf(req: Request): string | null {
  const auth = req.get("authorization");
  if (auth) {
    const m = /^Bearer\s+(\S+)$/i.exec(auth);
    return m ? m[1]! : null;
  }
  return req.get("x-api-key") ?? null;
}

function errorReason(status: number): string {
  return ({ 400: "bad_input", 401: "unauthorized", 404: "not_found", 406: "not_acceptable", 413: "too_large",
    415: "not_an_image", 422: "unprocessable", 429: "rate_limited" } as Record<number, string>)[status] ?? (status >= 500 ? "internal" : "client");
}

export function createServingRouter(opts: ServingOptions): { router: express.Router; metrics: ServingMetrics } {
  const metrics = opts.metrics ?? createMetrics();
  // The ingest contract's limit (docs/ingest.md); a deployment may lower it, never raise it.
  const maxPixels = Math.min(opts.maxPixels ?? MAX_PIXELS, MAX_PIXELS);
  const maxInferBytes = opts.maxJsonBytes ?? 256 * 1024 * 1024;
  const maxImageBytes = opts.maxImageBytes ?? 20 * 1024 * 1024;
  const buckets = new TokenBuckets(opts.rateLimit ?? { perSecond: 10, burst: 20 });
  const { provider } = opts;
  const router = express.Router();

  // Server metadata (V2 "Server Metadata"): the binary tensor data extension is offered.
  router.get("/v2", (_req, res) => void res.json({ name: "medloop", version: SERVER_VERSION, extensions: [...EXTENSIONS] }));
  router.get("/v2/health/live", (_req, res) => void res.status(200).end());
  router.get("/v2/health/ready", (_req, res) => void res.status(provider.ready() ? 200 : 503).end());
  router.get("/metrics", async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  // Every model route: count and time it, find the deployment (404), check the key (401), spend a
  // token (429); only then read the body, so a stranger cannot make the server parse 100 MB.
  const guard = (endpoint: Endpoint) => async (req: Request, res: Response, next: NextFunction) => {
    const name = String(req.params.name);
    const version = req.params.version === undefined ? undefined : String(req.params.version);
    const ctx: Ctx = { endpoint, name };
    res.locals.serving = ctx;
    const stop = metrics.latency.startTimer();
    res.on("finish", () => {
      const model = ctx.known ? name : "unknown";
      stop({ model, endpoint });
      metrics.requests.inc({ model, endpoint, status: String(res.statusCode) });
      if (res.statusCode >= 400) metrics.errors.inc({ model, endpoint, reason: errorReason(res.statusCode) });
    });
    try {
      if (!(await provider.exists(name, version))) {
        return sendError(res, 404, version ? `model "${name}" has no version "${version}"` : `no model named "${name}"`);
      }
      ctx.known = true;
      const key = apiKeyOf(req);
      if (!key) return sendError(res, 401, "missing API key: send Authorization: Bearer <key> or x-api-key");
      const keyId = await provider.authenticate(name, key);
      if (!keyId) return sendError(res, 401, `API key is not valid for model "${name}"`);
      const decision = buckets.take(keyId);
      if (!decision.ok) {
        res.set("Retry-After", String(decision.retryAfterSeconds));
        return sendError(res, 429, `rate limit exceeded for this key; retry after ${decision.retryAfterSeconds} s`);
      }
      ctx.served = await provider.resolve(name, version);
      next();
    } catch (err) {
      next(err);
    }
  };

  const modelPath = "/v2/models/:name{/versions/:version}";
  router.get(modelPath, guard("metadata"), async (_req, res) => {
    const { served, name } = ctxOf(res);
    const { meta } = served!.model;
    const body: ModelMetadataResponse = {
      name,
      versions: await provider.versions(name),
      platform: "onnxruntime_onnx",
      inputs: [{ name: meta.input, datatype: "FP32", shape: [-1, 3, -1, -1] }],
      outputs: [{ name: meta.output, datatype: "FP32", shape: [-1, 1, -1, -1] }],
    };
    res.json(body);
  });
  router.get(`${modelPath}/ready`, guard("ready"), (_req, res) => void res.status(200).end());

  // Infer: the body is read raw (any content type, gzip/deflate decoded) because with the binary
  // tensor data extension it is a JSON object followed by tensor bytes; the header says where the
  // JSON ends. The answer is JSON, or JSON + bytes with the header when an output is binary.
  router.post(
    `${modelPath}/infer`,
    guard("infer"),
    express.raw({ limit: maxInferBytes, type: () => true }),
    async (req, res) => {
      const { served } = ctxOf(res);
      const { model, name, version } = served!;
      const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const body = parseInferBody(raw, req.get(HEADER_LENGTH));
      const { request } = body;
      const wanted = request.outputs?.find((o) => o.name !== model.meta.output);
      if (wanted) throw new InputError(`unknown output "${wanted.name}": this model gives "${model.meta.output}"`);
      const binaryOut = outputAsBinary(request, model.meta.output);
      const { data, shape } = imageTensor(body, model.meta.input, maxPixels);
      const [n, , h, w] = shape;
      const plane = 3 * h * w;
      const out = new Float32Array(n * h * w);
      for (let i = 0; i < n; i++) {
        const prob = await model.segment({ data: data.subarray(i * plane, (i + 1) * plane), channels: 3, height: h, width: w });
        out.set(prob.data, i * h * w);
      }
      const tensor = { name: model.meta.output, datatype: "FP32", shape: [n, 1, h, w] };
      const answer: InferResponse = {
        model_name: name,
        model_version: version,
        ...(request.id === undefined ? {} : { id: request.id }),
        outputs: [binaryOut ? { ...tensor, parameters: { binary_data_size: out.byteLength } } : { ...tensor, data: Array.from(out) }],
      };
      if (!binaryOut) return void res.json(answer);
      const header = Buffer.from(JSON.stringify(answer), "utf8");
      res.set(HEADER_LENGTH, String(header.length));
      res.type("application/octet-stream").send(Buffer.concat([header, float32ToLE(out)]));
    },
  );

  router.post(
    "/v1/models/:name/segment",
    guard("segment"),
    express.raw({ limit: maxImageBytes, type: () => true }),
    async (req, res) => {
      const { model, name, version } = ctxOf(res).served!;
      const format = req.accepts(["image/png", "application/json"]);
      if (!format) return sendError(res, 406, "Accept must allow image/png or application/json");
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const image = await decodeImage(body, maxPixels);
      const started = performance.now();
      const prob = await model.segment(image);
      const inferenceMs = performance.now() - started;
      const level = model.meta.threshold;
      const mask = threshold(prob, level);
      res.set("X-Model-Version", version);
      if (format === "image/png") return void res.type("image/png").send(await maskPng(mask, image.width, image.height));
      let fg = 0;
      let sum = 0;
      for (let k = 0; k < mask.length; k++) {
        if (mask[k]) fg++;
        sum += prob.data[k]!;
      }
      res.json({
        model_name: name,
        model_version: version,
        width: image.width,
        height: image.height,
        threshold: level,
        mask: { encoding: "rle", order: "row-major", size: [image.height, image.width], start: 0, counts: runLengths(mask) },
        summary: {
          foreground_pixels: fg,
          foreground_fraction: fg / mask.length,
          mean_probability: sum / mask.length,
          inference_ms: Math.round(inferenceMs * 10) / 10,
        },
      });
    },
  );

  // Every failure answers {"error": "..."}: body-parser's own errors carry a status (413, 400).
  router.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    const e = err as { status?: number; type?: string; message?: string };
    if (err instanceof InputError) return sendError(res, err.status, err.message);
    if (e.type === "entity.too.large") {
      const limit = (res.locals.serving as Ctx | undefined)?.endpoint === "segment" ? maxImageBytes : maxInferBytes;
      return sendError(res, 413, `request body is larger than the limit of ${limit} bytes`);
    }
    if (typeof e.status === "number" && e.status >= 400 && e.status < 500) return sendError(res, e.status, e.message ?? "bad request");
    console.error(`serving: ${e.message ?? String(err)}`);
    sendError(res, 500, "inference failed");
  });
  return { router, metrics };
}

/** A fixed set of loaded models with their accepted keys (tests, benchmarks, a plain model folder). */
export function staticProvider(models: ServedModel[], keys: Record<string, string[]>): ModelProvider {
  const find = (name: string, version?: string) =>
    models.filter((m) => m.name === name && (version === undefined || m.version === version)).at(-1);
  return {
    exists: async (name, version) => find(name, version) !== undefined,
    resolve: async (name, version) => {
      const m = find(name, version);
      if (!m) throw new InputError(`no model named "${name}"`, 404);
      return m;
    },
    versions: async (name) => models.filter((m) => m.name === name).map((m) => m.version),
    authenticate: async (name, key) => ((keys[name] ?? []).includes(key) ? `${name}:${key}` : null),
    ready: () => true,
  };
}
