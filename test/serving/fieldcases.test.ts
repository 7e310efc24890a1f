// The field cases (../shared/fieldcases, read in place) through model serving's segment endpoint:
// every image the contract accepts comes back as a mask of exactly its upright size (EXIF
// orientation applied, 16-bit and PPM inputs read, odd sizes kept); the images it refuses answer a
// 4xx naming the reason. Real ONNX model (test/serving/fixtures/make_model.py), real onnxruntime.
import { readFile } from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadModel, type LoadedModel } from "../../serving/model.js";
import { createServingRouter, staticProvider } from "../../serving/server.js";
import { caseFile, loadCases } from "../helpers/fieldcases.js";
import { makeModelFixture, type ModelFixture } from "./fixtures.js";
import { listen, type Running } from "./http.js";

const KEY = "test-key-fieldcases";
let fx: ModelFixture;
let model: LoadedModel;
let srv: Running;

beforeAll(async () => {
  fx = await makeModelFixture();
  model = await loadModel(fx.dir, { threads: 2 });
  const provider = staticProvider([{ name: "vessels", version: "1", model }], { vessels: [KEY] });
  srv = await listen(createServingRouter({ provider, maxImageBytes: 64 * 1024 * 1024, rateLimit: { perSecond: 1000, burst: 1000 } }).router);
});
afterAll(async () => {
  await srv?.close();
  await model?.close();
  await fx?.cleanup();
});

const segment = async (file: string) =>
  fetch(`${srv.url}/v1/models/vessels/segment`, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/octet-stream", accept: "image/png" },
    body: new Uint8Array(await readFile(file)),
  });

/** Cases whose refusal is about the image itself (the others are about masks or folders). */
const IMAGE_REFUSALS: Record<string, RegExp> = { fc07: /holds 2 pages/, fc13: /is too small; the minimum side is 32 pixels/ };

describe("field cases through the segment endpoint", () => {
  for (const c of loadCases()) {
    for (const item of c.items) {
      if (c.expected === "accept") {
        it(`${c.id} ${c.title}: ${path.basename(item.image)} → a ${item.width}x${item.height} mask`, async () => {
          const res = await segment(caseFile(c.id, item.image));
          expect(res.status, await res.clone().text()).toBe(200);
          const meta = await sharp(Buffer.from(await res.arrayBuffer())).metadata();
          expect({ width: meta.width, height: meta.height }).toEqual({ width: item.width, height: item.height });
        });
      } else if (IMAGE_REFUSALS[c.id]) {
        it(`${c.id} ${c.title}: ${path.basename(item.image)} is refused`, async () => {
          const res = await segment(caseFile(c.id, item.image));
          expect(res.status).toBe(422);
          expect(((await res.json()) as { error: string }).error).toMatch(IMAGE_REFUSALS[c.id]!);
        });
      }
    }
  }
});
