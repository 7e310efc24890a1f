// The serving router over HTTP: V2 protocol conformance, the segment endpoint, keys, the rate
// limit, size limits, each kind of bad input and the Prometheus metrics. Real model (ONNX built by
// test/serving/fixtures/make_model.py), real onnxruntime-node, real CHASE_DB1 pixels.
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeRunLengths, interleavedToPlanar } from "../../serving/image.js";
import { loadModel, type LoadedModel } from "../../serving/model.js";
import { createServingRouter, staticProvider } from "../../serving/server.js";
import { makeModelFixture, type ModelFixture } from "./fixtures.js";
import { listen, type Running } from "./http.js";

const KEY = "test-key-vessels";
const OTHER_KEY = "test-key-other";
let fx: ModelFixture;
let model: LoadedModel;
let srv: Running;
let limited: Running;

const auth = { authorization: `Bearer ${KEY}` };
const json = { ...auth, "content-type": "application/json" };

beforeAll(async () => {
  fx = await makeModelFixture();
  model = await loadModel(fx.dir, { threads: 2 });
  const provider = staticProvider(
    [
      { name: "vessels", version: "1", model },
      { name: "vessels", version: "2", model },
      { name: "other", version: "1", model },
    ],
    { vessels: [KEY], other: [OTHER_KEY] },
  );
  srv = await listen(
    createServingRouter({ provider, maxPixels: 400_000, maxImageBytes: 2 * 1024 * 1024, rateLimit: { perSecond: 1000, burst: 1000 } }).router,
  );
  limited = await listen(createServingRouter({ provider, rateLimit: { perSecond: 0.01, burst: 3 } }).router);
});
afterAll(async () => {
  await srv?.close();
  await limited?.close();
  await model?.close();
  await fx?.cleanup();
});

async function caseTensor(name: string) {
  const c = fx.cases.find((x) => x.name === name)!;
  const img = interleavedToPlanar(await fx.input(name), c.width, c.height, 3);
  return { c, data: Array.from(img.data), ref: await fx.prob(name) };
}

function infer(body: unknown, path = "/v2/models/vessels/infer") {
  return fetch(srv.url + path, { method: "POST", headers: json, body: JSON.stringify(body) });
}

async function expectError(res: Response, status: number, pattern: RegExp) {
  expect(res.status).toBe(status);
  const body = (await res.json()) as { error: string };
  expect(Object.keys(body)).toEqual(["error"]);
  expect(body.error).toMatch(pattern);
}

describe("V2 health and metadata", () => {
  it("answers live and ready with 200 and an empty body", async () => {
    for (const p of ["/v2/health/live", "/v2/health/ready"]) {
      const res = await fetch(srv.url + p);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("");
    }
  });

  it("gives server metadata", async () => {
    const res = await fetch(`${srv.url}/v2`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ name: "medloop", version: "0.1.0", extensions: [] });
  });

  it("gives model metadata as the specification shapes it", async () => {
    for (const p of ["/v2/models/vessels", "/v2/models/vessels/versions/1"]) {
      const res = await fetch(srv.url + p, { headers: auth });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        name: "vessels",
        versions: ["1", "2"],
        platform: "onnxruntime_onnx",
        inputs: [{ name: "image", datatype: "FP32", shape: [-1, 3, -1, -1] }],
        outputs: [{ name: "probability", datatype: "FP32", shape: [-1, 1, -1, -1] }],
      });
    }
  });

  it("answers model readiness per version and 404 for unknown models and versions", async () => {
    expect((await fetch(`${srv.url}/v2/models/vessels/ready`, { headers: auth })).status).toBe(200);
    expect((await fetch(`${srv.url}/v2/models/vessels/versions/2/ready`, { headers: auth })).status).toBe(200);
    await expectError(await fetch(`${srv.url}/v2/models/nope`, { headers: auth }), 404, /no model named "nope"/);
    await expectError(await fetch(`${srv.url}/v2/models/vessels/versions/9/ready`, { headers: auth }), 404, /no version "9"/);
  });
});

describe("V2 infer", () => {
  it("returns the probability tensor matching the Python engine, echoing the id", async () => {
    const { c, data, ref } = await caseTensor("crop");
    const res = await infer({ id: "req-42", inputs: [{ name: "image", shape: [1, 3, c.height, c.width], datatype: "FP32", data }] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { model_name: string; model_version: string; id: string; outputs: Array<Record<string, unknown>> };
    expect(body.model_name).toBe("vessels");
    expect(body.model_version).toBe("2");
    expect(body.id).toBe("req-42");
    expect(body.outputs).toHaveLength(1);
    const out = body.outputs[0]! as { name: string; datatype: string; shape: number[]; data: number[] };
    expect(Object.keys(out).sort()).toEqual(["data", "datatype", "name", "shape"]);
    expect([out.name, out.datatype, out.shape]).toEqual(["probability", "FP32", [1, 1, c.height, c.width]]);
    expect(out.data).toHaveLength(c.height * c.width);
    let worst = 0;
    out.data.forEach((v, k) => (worst = Math.max(worst, Math.abs(v - ref[k]!))));
    expect(worst).toBeLessThan(1e-4);
  });

  it("accepts nested data, a batch of two and a pinned version", async () => {
    const { c, data, ref } = await caseTensor("small");
    const plane = c.height * c.width;
    const nestedImage = [0, 1, 2].map((ch) =>
      Array.from({ length: c.height }, (_, y) => data.slice(ch * plane + y * c.width, ch * plane + (y + 1) * c.width)),
    );
    const res = await infer(
      { inputs: [{ name: "image", shape: [2, 3, c.height, c.width], datatype: "FP32", data: [nestedImage, nestedImage] }], outputs: [{ name: "probability" }] },
      "/v2/models/vessels/versions/1/infer",
    );
    expect(res.status).toBe(200);
    const body = (await res.json()) as { model_version: string; id?: string; outputs: Array<{ shape: number[]; data: number[] }> };
    expect(body.model_version).toBe("1");
    expect(body.id).toBeUndefined();
    expect(body.outputs[0]!.shape).toEqual([2, 1, c.height, c.width]);
    const second = body.outputs[0]!.data.slice(plane);
    expect(Math.max(...second.map((v, k) => Math.abs(v - ref[k]!)))).toBeLessThan(1e-4);
  });

  const shape = [1, 3, 4, 4];
  const data = new Array(48).fill(0.5);
  it.each([
    ["wrong datatype", { inputs: [{ name: "image", shape, datatype: "INT32", data }] }, 400, /datatype INT32; expected FP32/],
    ["wrong shape", { inputs: [{ name: "image", shape: [1, 1, 4, 4], datatype: "FP32", data: data.slice(0, 16) }] }, 400, /shape \[1, 1, 4, 4\]; expected \[N, 3, H, W\]/],
    ["data not matching the shape", { inputs: [{ name: "image", shape, datatype: "FP32", data: data.slice(1) }] }, 400, /47 values; shape \[1, 3, 4, 4\] needs 48/],
    ["unknown input", { inputs: [{ name: "pixels", shape, datatype: "FP32", data }] }, 400, /unknown input "pixels"/],
    ["unknown output", { inputs: [{ name: "image", shape, datatype: "FP32", data }], outputs: [{ name: "logits" }] }, 400, /unknown output "logits"/],
    ["no inputs", { inputs: [] }, 400, /inputs/],
    ["not a number", { inputs: [{ name: "image", shape, datatype: "FP32", data: ["x", ...data.slice(1)] }] }, 400, /value 0 is not a finite number/],
    ["too many pixels", { inputs: [{ name: "image", shape: [1, 3, 1000, 1000], datatype: "FP32", data: [] }] }, 413, /1000000 pixels; the limit is 400000/],
  ])("refuses %s", async (_label, body, status, pattern) => {
    await expectError(await infer(body), status, pattern);
  });

  it("refuses a body that is not JSON", async () => {
    const res = await fetch(`${srv.url}/v2/models/vessels/infer`, { method: "POST", headers: json, body: "{inputs: [" });
    await expectError(res, 400, /not valid JSON/);
  });
});

describe("segment endpoint", () => {
  async function cropPng() {
    const c = fx.cases.find((x) => x.name === "crop")!;
    const png = await sharp(await fx.input("crop"), { raw: { width: c.width, height: c.height, channels: 3 } }).png().toBuffer();
    return { c, png, ref: await fx.prob("crop") };
  }
  const post = (body: Uint8Array, headers: Record<string, string> = {}) =>
    fetch(`${srv.url}/v1/models/vessels/segment`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/octet-stream", ...headers },
      body: new Uint8Array(body),
    });

  function agreesWithRef(mask: Uint8Array, ref: Float32Array) {
    let checked = 0;
    ref.forEach((p, k) => {
      if (Math.abs(p - 0.5) > 1e-4) {
        checked++;
        expect(mask[k]! > 0).toBe(p >= 0.5);
      }
    });
    expect(checked).toBeGreaterThan(ref.length * 0.9);
  }

  it("returns a PNG mask thresholding the engine's probabilities", async () => {
    const { c, png, ref } = await cropPng();
    const res = await post(png);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/png");
    const out = Buffer.from(await res.arrayBuffer());
    const meta = await sharp(out).metadata();
    expect([meta.format, meta.width, meta.height, meta.channels]).toEqual(["png", c.width, c.height, 1]);
    const { data } = await sharp(out).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    agreesWithRef(new Uint8Array(data), ref);
  });

  it("returns a run-length mask and a summary as JSON", async () => {
    const { c, png, ref } = await cropPng();
    const res = await post(png, { accept: "application/json" });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      width: number; height: number; threshold: number;
      mask: { size: number[]; counts: number[] };
      summary: { foreground_pixels: number; foreground_fraction: number; mean_probability: number };
    };
    expect([body.width, body.height, body.threshold]).toEqual([c.width, c.height, 0.5]);
    expect(body.mask.size).toEqual([c.height, c.width]);
    expect(body.mask.counts.reduce((a, b) => a + b, 0)).toBe(c.width * c.height);
    const mask = decodeRunLengths(body.mask.counts, c.width * c.height);
    agreesWithRef(mask, ref);
    expect(body.summary.foreground_pixels).toBe(mask.filter((v) => v > 0).length);
    expect(body.summary.foreground_fraction).toBeCloseTo(body.summary.foreground_pixels / mask.length, 10);
    expect(body.summary.mean_probability).toBeCloseTo(ref.reduce((a, b) => a + b, 0) / ref.length, 4);
  });

  it("refuses a body that is not an image, an empty body, too many pixels and too many bytes", async () => {
    await expectError(await post(new TextEncoder().encode("hello, not an image")), 415, /not an image/);
    await expectError(await post(new Uint8Array(0)), 400, /empty body/);
    const big = await sharp({ create: { width: 700, height: 700, channels: 3, background: "#800" } }).png().toBuffer();
    await expectError(await post(big), 413, /700×700 = 490000 pixels; the limit is 400000/);
    await expectError(await post(new Uint8Array(3 * 1024 * 1024)), 413, /larger than the limit/);
  });

  it("answers 406 when the client accepts neither PNG nor JSON", async () => {
    const { png } = await cropPng();
    await expectError(await post(png, { accept: "text/csv" }), 406, /image\/png or application\/json/);
  });
});

describe("API keys and rate limit", () => {
  it("requires a key valid for the model", async () => {
    const url = `${srv.url}/v2/models/vessels`;
    await expectError(await fetch(url), 401, /missing API key/);
    await expectError(await fetch(url, { headers: { authorization: "Bearer wrong" } }), 401, /not valid for model "vessels"/);
    await expectError(await fetch(url, { headers: { "x-api-key": OTHER_KEY } }), 401, /not valid/);
    expect((await fetch(url, { headers: { "x-api-key": KEY } })).status).toBe(200);
    expect((await fetch(`${srv.url}/v2/models/other`, { headers: { "x-api-key": OTHER_KEY } })).status).toBe(200);
  });

  it("answers 429 with Retry-After once a key's bucket is empty, other keys unaffected", async () => {
    const url = `${limited.url}/v2/models/vessels/ready`;
    for (let i = 0; i < 3; i++) expect((await fetch(url, { headers: auth })).status).toBe(200);
    const res = await fetch(url, { headers: auth });
    await expectError(res, 429, /rate limit exceeded/);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect((await fetch(`${limited.url}/v2/models/other/ready`, { headers: { "x-api-key": OTHER_KEY } })).status).toBe(200);
  });
});

describe("metrics", () => {
  it("exposes request counts, latency histogram and errors in Prometheus format", async () => {
    const res = await fetch(`${srv.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/text\/plain/);
    const text = await res.text();
    expect(text).toMatch(/medloop_serving_requests_total\{model="vessels",endpoint="infer",status="200"\} [1-9]/);
    expect(text).toMatch(/medloop_serving_request_duration_seconds_bucket\{le="\+Inf",model="vessels",endpoint="segment"\} [1-9]/);
    expect(text).toMatch(/medloop_serving_errors_total\{model="vessels",endpoint="metadata",reason="unauthorized"\} 3/);
    expect(text).toMatch(/medloop_serving_errors_total\{model="vessels",endpoint="infer",reason="bad_input"\} [1-9]/);
    expect(text).toMatch(/medloop_serving_errors_total\{model="unknown",endpoint="metadata",reason="not_found"\} 1/);
  });
});
