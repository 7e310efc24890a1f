// The serving router over HTTP: V2 protocol conformance, the segment endpoint, keys, the rate
// limit, size limits, each kind of bad input and the Prometheus metrics. Real model (ONNX built by
// test/serving/fixtures/make_model.py), real onnxruntime-node, real CHASE_DB1 pixels.
import { gzipSync } from "node:zlib";
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
    expect(await res.json()).toEqual({ name: "medloop", version: "0.1.0", extensions: ["binary_tensor_data"] });
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
    ["a side under the ingest contract's minimum", { inputs: [{ name: "image", shape, datatype: "FP32", data }] }, 422, /is 4x4 \(W x H\); the minimum side is 32 pixels/],
  ])("refuses %s", async (_label, body, status, pattern) => {
    await expectError(await infer(body), status, pattern);
  });

  it("refuses a body that is not JSON", async () => {
    const res = await fetch(`${srv.url}/v2/models/vessels/infer`, { method: "POST", headers: json, body: "{inputs: [" });
    await expectError(res, 400, /not valid JSON/);
  });
});

/** A request of the binary tensor data extension: JSON header, then the tensors' bytes. */
function binaryInfer(header: unknown, tensors: Uint8Array[], headers: Record<string, string> = {}, path = "/v2/models/vessels/infer") {
  const json = Buffer.from(JSON.stringify(header));
  return fetch(srv.url + path, {
    method: "POST",
    headers: { ...auth, "content-type": "application/octet-stream", "inference-header-content-length": String(json.length), ...headers },
    body: new Uint8Array(Buffer.concat([json, ...tensors])),
  });
}

/** Float32 little-endian bytes of numbers (the extension's byte order). */
function f32(values: ArrayLike<number>): Buffer {
  const out = Buffer.alloc(values.length * 4);
  for (let k = 0; k < values.length; k++) out.writeFloatLE(values[k]!, 4 * k);
  return out;
}

/** Splits a binary answer into its JSON header and the float32 data after it. */
async function readBinaryAnswer(res: Response) {
  const bytes = Buffer.from(await res.arrayBuffer());
  const n = Number(res.headers.get("inference-header-content-length"));
  const header = JSON.parse(bytes.subarray(0, n).toString("utf8")) as {
    model_version: string; id?: string; outputs: Array<{ name: string; datatype: string; shape: number[]; data?: number[]; parameters?: { binary_data_size: number } }>;
  };
  const rest = bytes.subarray(n);
  return { header, data: Array.from({ length: rest.length / 4 }, (_, k) => rest.readFloatLE(4 * k)) };
}

describe("V2 infer with the binary tensor data extension", () => {
  it("takes a binary input and answers a binary output equal to the JSON answer, bit for bit", async () => {
    const { c, data, ref } = await caseTensor("crop");
    const shape = [1, 3, c.height, c.width];
    const json = (await (await infer({ inputs: [{ name: "image", shape, datatype: "FP32", data }] })).json()) as { outputs: Array<{ data: number[] }> };
    const res = await binaryInfer(
      { id: "b-1", inputs: [{ name: "image", shape, datatype: "FP32", parameters: { binary_data_size: data.length * 4 } }], outputs: [{ name: "probability", parameters: { binary_data: true } }] },
      [f32(data)],
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/application\/octet-stream/);
    const { header, data: out } = await readBinaryAnswer(res);
    expect(header.id).toBe("b-1");
    expect(header.outputs).toEqual([{ name: "probability", datatype: "FP32", shape: [1, 1, c.height, c.width], parameters: { binary_data_size: c.height * c.width * 4 } }]);
    expect(out).toEqual(json.outputs[0]!.data);
    let worst = 0;
    out.forEach((v, k) => (worst = Math.max(worst, Math.abs(v - ref[k]!))));
    expect(worst).toBeLessThan(1e-4);
  });

  it("answers JSON for a binary input unless an output asks for binary; binary_data_output asks for all", async () => {
    const { c, data } = await caseTensor("small");
    const input = { name: "image", shape: [1, 3, c.height, c.width], datatype: "FP32", parameters: { binary_data_size: data.length * 4 } };
    const asJson = await binaryInfer({ inputs: [input] }, [f32(data)]);
    expect(asJson.status).toBe(200);
    expect(asJson.headers.get("inference-header-content-length")).toBeNull();
    const body = (await asJson.json()) as { outputs: Array<{ data: number[] }> };
    expect(body.outputs[0]!.data).toHaveLength(c.height * c.width);
    // binary_data on the output overrides the request's binary_data_output.
    const overridden = await binaryInfer({ parameters: { binary_data_output: true }, inputs: [input], outputs: [{ name: "probability", parameters: { binary_data: false } }] }, [f32(data)]);
    expect(((await overridden.json()) as { outputs: Array<{ data: number[] }> }).outputs[0]!.data).toEqual(body.outputs[0]!.data);
    // A JSON input with binary_data_output (what tritonclient sends when no output is named).
    const all = await infer({ parameters: { binary_data_output: true }, inputs: [{ name: "image", shape: input.shape, datatype: "FP32", data }] });
    expect(all.status).toBe(200);
    expect((await readBinaryAnswer(all)).data).toEqual(body.outputs[0]!.data);
  });

  it("takes a gzip-compressed binary request", async () => {
    const { c, data } = await caseTensor("small");
    const json = Buffer.from(JSON.stringify({ inputs: [{ name: "image", shape: [1, 3, c.height, c.width], datatype: "FP32", parameters: { binary_data_size: data.length * 4 } }] }));
    const res = await fetch(`${srv.url}/v2/models/vessels/infer`, {
      method: "POST",
      headers: { ...auth, "content-encoding": "gzip", "inference-header-content-length": String(json.length) },
      body: new Uint8Array(gzipSync(Buffer.concat([json, f32(data)]))),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { outputs: Array<{ shape: number[] }> }).outputs[0]!.shape).toEqual([1, 1, c.height, c.width]);
  });

  const shape = [1, 3, 4, 4];
  const bytes = f32(new Array(48).fill(0.5));
  const input = (parameters: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ inputs: [{ name: "image", shape, datatype: "FP32", parameters, ...extra }] });
  it.each([
    ["binary_data_size not matching the shape", input({ binary_data_size: 100 }), [bytes], 400, /binary_data_size is 100 bytes; shape \[1, 3, 4, 4\] of FP32 needs 192/],
    ["fewer bytes than declared", input({ binary_data_size: 192 }), [bytes.subarray(0, 190)], 400, /holds 190 bytes of binary data after the JSON; the inputs declare 192/],
    ["more bytes than declared", input({ binary_data_size: 192 }), [bytes, Buffer.alloc(8)], 400, /holds 200 bytes .* declare 192/],
    ["bytes no input declares", input({}, { data: new Array(48).fill(0.5) }), [bytes], 400, /192 bytes of binary data after the JSON but no input declares/],
    ["a negative binary_data_size", input({ binary_data_size: -4 }), [bytes], 400, /binary_data_size must be a non-negative integer byte count, not -4/],
    ["a binary_data_size that is not a number", input({ binary_data_size: "192" }), [bytes], 400, /binary_data_size must be a non-negative integer byte count, not "192"/],
    ["both data and binary_data_size", input({ binary_data_size: 192 }, { data: new Array(48).fill(0.5) }), [bytes], 400, /both data and parameters.binary_data_size/],
    ["neither data nor binary_data_size", input({}), [], 400, /neither data nor parameters.binary_data_size/],
    ["a NaN in the tensor", input({ binary_data_size: 192 }), [f32([0.5, Number.NaN, ...new Array(46).fill(0.5)])], 400, /value 1 is not a finite number/],
    ["the wrong datatype", { inputs: [{ name: "image", shape, datatype: "FP64", parameters: { binary_data_size: 384 } }] }, [Buffer.alloc(384)], 400, /datatype FP64; expected FP32/],
    ["too many pixels", { inputs: [{ name: "image", shape: [1, 3, 1000, 1000], datatype: "FP32", parameters: { binary_data_size: 12_000_000 } }] }, [], 413, /1000000 pixels; the limit is 400000/],
    ["a shared-memory input", input({ shared_memory_region: "r0", shared_memory_byte_size: 192 }), [], 400, /shared_memory_region: the shared-memory extension is not supported/],
    ["a classification output", { ...input({ binary_data_size: 192 }), outputs: [{ name: "probability", parameters: { classification: 3 } }] }, [bytes], 400, /classification extension is not supported/],
    ["a binary_data flag that is not a boolean", { ...input({ binary_data_size: 192 }), outputs: [{ name: "probability", parameters: { binary_data: "yes" } }] }, [bytes], 400, /binary_data must be true or false/],
  ])("refuses %s", async (_label, header, tensors, status, pattern) => {
    await expectError(await binaryInfer(header, tensors as Uint8Array[]), status as number, pattern as RegExp);
  });

  it.each([
    ["a header that is not a byte count", "12abc", /Inference-Header-Content-Length "12abc" is not a byte count/],
    ["a header longer than the body", "100000", /Inference-Header-Content-Length is 100000 bytes but the whole body holds \d+/],
    ["a header cutting the JSON short", "10", /the inference header \(the first 10 bytes, per Inference-Header-Content-Length\) is not valid JSON/],
  ])("refuses %s", async (_label, length, pattern) => {
    await expectError(await binaryInfer(input({ binary_data_size: 192 }), [bytes], { "inference-header-content-length": length }), 400, pattern);
  });

  it("refuses binary data sent without the header, naming the header", async () => {
    const json = Buffer.from(JSON.stringify(input({ binary_data_size: 192 })));
    const res = await fetch(`${srv.url}/v2/models/vessels/infer`, { method: "POST", headers: auth, body: new Uint8Array(Buffer.concat([json, bytes])) });
    await expectError(res, 400, /not valid JSON \(binary tensor data needs the Inference-Header-Content-Length header/);
  });

  it("refuses a body over the byte limit with 413 naming the limit, before any key-less parsing", async () => {
    const small = await listen(createServingRouter({ provider: staticProvider([{ name: "vessels", version: "1", model }], { vessels: [KEY] }), maxJsonBytes: 1000 }).router);
    try {
      const json = Buffer.from(JSON.stringify(input({ binary_data_size: 2000 })));
      const post = (headers: Record<string, string>) =>
        fetch(`${small.url}/v2/models/vessels/infer`, {
          method: "POST",
          headers: { "inference-header-content-length": String(json.length), ...headers },
          body: new Uint8Array(Buffer.concat([json, Buffer.alloc(2000)])),
        });
      await expectError(await post(auth), 413, /larger than the limit of 1000 bytes/);
      await expectError(await post({}), 401, /missing API key/);
    } finally {
      await small.close();
    }
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
    await expectError(await post(big), 413, /700x700 = 490000 pixels is too large; the limit is 400000 pixels/);
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
