// Triton's own HTTP client (`tritonclient.http`, Python) against the serving router: the binary
// tensor data extension (binary input and output, binary input with JSON output) and JSON tensors
// give the probabilities of the server's JSON answer and of the Python engine. The client runs as
// test/serving/fixtures/triton_client.py with the repository's .venv.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { interleavedToPlanar } from "../../serving/image.js";
import { loadModel, type LoadedModel } from "../../serving/model.js";
import { createServingRouter, staticProvider } from "../../serving/server.js";
import { makeModelFixture, repoRoot, type ModelFixture } from "./fixtures.js";
import { listen, type Running } from "./http.js";

const KEY = "test-key-triton";
const CASE = "crop";
let fx: ModelFixture;
let model: LoadedModel;
let srv: Running;
let outDir: string;

beforeAll(async () => {
  fx = await makeModelFixture();
  model = await loadModel(fx.dir, { threads: 2 });
  srv = await listen(createServingRouter({ provider: staticProvider([{ name: "vessels", version: "1", model }], { vessels: [KEY] }) }).router);
  outDir = await mkdtemp(path.join(os.tmpdir(), "medloop-triton-"));
});
afterAll(async () => {
  await srv?.close();
  await model?.close();
  await fx?.cleanup();
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

interface Report {
  server: { name: string; extensions: string[] };
  ready: boolean;
  results: Record<string, { id: string; shape: number[]; dtype: string; binary: boolean }>;
  refused: { status: string; message: string } | null;
}

async function readF32(file: string): Promise<Float32Array> {
  const buf = await readFile(file);
  return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let k = 0; k < a.length; k++) worst = Math.max(worst, Math.abs(a[k]! - b[k]!));
  return worst;
}

describe("tritonclient.http", () => {
  it("infers with binary and JSON tensors, matching the server's JSON answer and the engine", async () => {
    const c = fx.cases.find((x) => x.name === CASE)!;
    const { stdout } = await promisify(execFile)(
      path.join(repoRoot, ".venv/bin/python"),
      [
        path.join(repoRoot, "test/serving/fixtures/triton_client.py"),
        "--url", new URL(srv.url).host, "--model", "vessels", "--key", KEY, "--fixture", fx.dir, "--case", CASE, "--out", outDir,
      ],
      { cwd: repoRoot, env: { ...process.env, OMP_NUM_THREADS: "1" } },
    ).catch((err: Error & { stdout?: string; stderr?: string }) => {
      throw new Error(`triton_client.py failed: ${err.stdout ?? ""}${err.stderr ?? ""}`, { cause: err });
    });
    const report = JSON.parse(stdout.trim().split("\n").at(-1)!) as Report;
    expect(report.server).toMatchObject({ name: "medloop", extensions: ["binary_tensor_data"] });
    expect(report.ready).toBe(true);
    expect(Object.keys(report.results)).toEqual(["binary_binary", "binary_json", "json_default", "json_json"]);
    for (const [combo, r] of Object.entries(report.results)) {
      expect(r, combo).toMatchObject({ id: combo, shape: [1, 1, c.height, c.width], dtype: "float32" });
    }
    // The answer's encoding is the one each request asked for.
    expect(Object.values(report.results).map((r) => r.binary)).toEqual([true, false, true, false]);
    // The client reads the server's {"error": ...} of a refused request.
    expect(report.refused).toEqual({ status: "400", message: expect.stringMatching(/unknown input "pixels"/) });

    // The server's own JSON answer for the same tensor (the client's input scaling is the engine's).
    const data = Array.from(interleavedToPlanar(await fx.input(CASE), c.width, c.height, 3).data);
    const res = await fetch(`${srv.url}/v2/models/vessels/infer`, {
      method: "POST",
      headers: { "x-api-key": KEY, "content-type": "application/json" },
      body: JSON.stringify({ inputs: [{ name: "image", shape: [1, 3, c.height, c.width], datatype: "FP32", data }] }),
    });
    expect(res.status).toBe(200);
    const json = ((await res.json()) as { outputs: Array<{ data: number[] }> }).outputs[0]!.data;
    const engine = await fx.prob(CASE);
    for (const combo of Object.keys(report.results)) {
      const prob = await readF32(path.join(outDir, `${combo}.f32`));
      expect(maxDiff(prob, json), combo).toBeLessThanOrEqual(1e-5);
      // The Python engine's sliding window over the same network (parity limit of test/serving).
      expect(maxDiff(prob, engine), combo).toBeLessThan(1e-4);
    }
  });
});
