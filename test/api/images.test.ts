// Image import with real CHASE_DB1 files (read in place from MEDLOOP_CHASE_DIR): the upload
// API and the folder import, and bad files refused with nothing stored.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chaseRole } from "../../services/images.js";
import { importChase } from "../../services/imageImport.js";
import { createProject } from "../../services/projects.js";
import { listFiles, startTestApi, type TestApi } from "../helpers/api.js";
import { rowCounts } from "../helpers/db.js";

describe("images API on CHASE_DB1", () => {
  let api: TestApi;
  let chaseDir: string;
  let projectId: number;
  beforeAll(async () => {
    api = await startTestApi({}, { MEDLOOP_MAX_UPLOAD_MB: "1" });
    chaseDir = api.deps.config.chaseDir;
    const res = await api.call("POST", "/api/projects", { token: api.tokens.lab_lead, json: { name: "chase", description: "CHASE_DB1" } });
    expect(res.status).toBe(201);
    projectId = res.json.id;
  });
  afterAll(async () => {
    await api?.close();
  });

  const read = (...p: string[]) => readFile(path.join(chaseDir, ...p));

  it("uploads a fundus photograph with its reference mask and serves PNG, thumbnail and mask", async () => {
    const jpg = await read("images", "Image_01L.jpg");
    const mask = await read("masks_1stHO", "Image_01L_1stHO.png");
    const form = new FormData();
    form.set("image", new Blob([new Uint8Array(jpg)], { type: "image/jpeg" }), "Image_01L.jpg");
    form.set("mask", new Blob([new Uint8Array(mask)], { type: "image/png" }), "Image_01L_1stHO.png");
    form.set("name", "Image_01L");
    form.set("role", "seed");
    const res = await api.call("POST", `/api/projects/${projectId}/images`, { token: api.tokens.lab_lead, body: form });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    expect(res.json).toMatchObject({
      name: "Image_01L",
      role: "seed",
      format: "jpeg",
      width: 999,
      height: 960,
      bytes: jpg.length,
      sha256: createHash("sha256").update(jpg).digest("hex"),
      has_mask: true,
    });
    const t = api.tokens.auditor;
    const png = await api.call("GET", res.json.image_url, { token: t });
    expect(await sharp(png.bytes).metadata()).toMatchObject({ format: "png", width: 999, height: 960 });
    const thumb = await api.call("GET", res.json.thumbnail_url, { token: t });
    expect(await sharp(thumb.bytes).metadata()).toMatchObject({ format: "png", width: 256 });
    const storedMask = await api.call("GET", res.json.mask_url, { token: t });
    const a = await sharp(storedMask.bytes).extractChannel(0).raw().toBuffer();
    const b = await sharp(mask).extractChannel(0).raw().toBuffer();
    expect(a.equals(b)).toBe(true);
    const original = await api.call("GET", `/api/images/${res.json.id}/original`, { token: t });
    expect(original.bytes.equals(jpg)).toBe(true);
    // The <img src> form: a GET with the token in the query.
    const viaQuery = await fetch(`${api.baseUrl}${res.json.thumbnail_url}?access_token=${t}`);
    expect(viaQuery.status).toBe(200);
  });

  it("uploads a raw image body with name and role in the query", async () => {
    const jpg = await read("images", "Image_12R.jpg");
    const res = await api.call("POST", `/api/projects/${projectId}/images?name=Image_12R&role=test`, {
      token: api.tokens.admin,
      body: jpg,
      contentType: "image/jpeg",
    });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    expect(res.json).toMatchObject({ role: "test", has_mask: false, mask_url: null });
    const list = await api.call("GET", `/api/projects/${projectId}/images?role=test`, { token: api.tokens.lab_lead });
    expect(list.json.map((i: { name: string }) => i.name)).toEqual(["Image_12R"]);
  });

  it("imports CHASE_DB1 from its folder with the documented roles, and resumes", async () => {
    const project = await createProject(api.db.pool, { name: "chase-folder" }, null);
    const only = ["Image_02R.jpg", "Image_05L.jpg", "Image_14L.jpg"];
    const first = await importChase(api.deps, project.id, chaseDir, null, only);
    expect(first.imported.map((i) => [i.name, i.role, i.mask_uri !== null])).toEqual([
      ["Image_02R", "seed", true],
      ["Image_05L", "pool", true],
      ["Image_14L", "test", true],
    ]);
    const again = await importChase(api.deps, project.id, chaseDir, null, only);
    expect(again.imported).toEqual([]);
    expect(again.skipped).toEqual(["Image_02R", "Image_05L", "Image_14L"].map((n) => ({ name: n, reason: "already imported", added: [] })));
    // The split of all 28 names: 6 seeds, 14 pool, 8 test.
    const names = Array.from({ length: 14 }, (_, i) => [`Image_${String(i + 1).padStart(2, "0")}L`, `Image_${String(i + 1).padStart(2, "0")}R`]).flat();
    const roles = names.map(chaseRole);
    expect([roles.filter((r) => r === "seed").length, roles.filter((r) => r === "pool").length, roles.filter((r) => r === "test").length]).toEqual([6, 14, 8]);
  });

  it("refuses bad files with a 4xx naming the problem and stores nothing", async () => {
    const jpg = await read("images", "Image_03L.jpg");
    const mask03 = await read("masks_1stHO", "Image_03L_1stHO.png");
    const otherSizeMask = await sharp(mask03).resize(500, 480).png().toBuffer();
    const form = (image: Buffer, mask?: Buffer, name = "Image_03L") => {
      const f = new FormData();
      f.set("image", new Blob([new Uint8Array(image)]), "x");
      if (mask) f.set("mask", new Blob([new Uint8Array(mask)]), "m.png");
      f.set("name", name);
      return f;
    };
    const otherJpg = await read("images", "Image_04L.jpg");
    const url = `/api/projects/${projectId}/images`;
    const cases: Array<{ name: string; url?: string; body: Buffer | FormData; type?: string; status: number; message: RegExp }> = [
      { name: "text file", url: `${url}?name=x`, body: Buffer.from("just text"), type: "image/png", status: 415, message: /image "x": not an image file of a supported format/ },
      { name: "truncated JPEG", url: `${url}?name=x`, body: jpg.subarray(0, 20_000), type: "image/jpeg", status: 415, message: /could not be decoded/ },
      { name: "wrong content type", url: `${url}?name=x`, body: jpg, type: "text/plain", status: 415, message: /must be one of image\/png/ },
      { name: "mask of another size", body: form(jpg, otherSizeMask), status: 422, message: /mask m\.png: mask is 500x480 but the image is 999x960/ },
      { name: "name taken by other content", body: form(otherJpg, undefined, "Image_01L"), status: 409, message: /already has an image named "Image_01L" with other content/ },
      { name: "missing name", url, body: jpg, type: "image/jpeg", status: 400, message: /name .*is required/ },
      { name: "bad role", url: `${url}?name=y&role=train`, body: jpg, type: "image/jpeg", status: 400, message: /query\.role/ },
      { name: "unknown project", url: "/api/projects/999999/images?name=z", body: jpg, type: "image/jpeg", status: 404, message: /project 999999 not found/ },
      { name: "too large", url: `${url}?name=big`, body: Buffer.concat([jpg, Buffer.alloc(1_100_000)]), type: "image/jpeg", status: 413, message: /larger than the limit/ },
    ];
    const before = await rowCounts(api.db.pool);
    const files = await listFiles(api.deps.config.blobRoot);
    for (const c of cases) {
      const res = await api.call("POST", c.url ?? url, { token: api.tokens.lab_lead, body: c.body, contentType: c.type });
      expect(res.status, `${c.name}: ${JSON.stringify(res.json)}`).toBe(c.status);
      expect(res.json.error.message, c.name).toMatch(c.message);
    }
    expect(await rowCounts(api.db.pool)).toEqual(before);
    expect(await listFiles(api.deps.config.blobRoot)).toEqual(files);
    // Unknown ids on the read side.
    expect((await api.call("GET", "/api/images/999999/thumbnail", { token: api.tokens.auditor })).status).toBe(404);
  });
});
