// The field cases (../shared/fieldcases, read in place) through the two TypeScript entry points
// that store files: the upload API and the `medloop import` command. Each case's right result
// (cases.json) is the assertion: accepted items are stored at the stated upright size with the
// stated mask (and FOV) counts; refused ones answer a 4xx / exit non-zero naming the file and the
// reason, and leave no row and no blob behind.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readMask } from "../../services/ingest/decode.js";
import { startTestApi, type TestApi } from "../helpers/api.js";
import { rowCounts } from "../helpers/db.js";
import { caseFile, fieldCase, loadCases, type FieldItem } from "../helpers/fieldcases.js";

const repoRoot = path.resolve(import.meta.dirname, "../..");

/** How each refused item's message must name its reason. */
const REASON: Record<string, RegExp> = {
  fc07: /holds 2 pages/,
  fc08: /mask is \d+x\d+ but the image is 64x48/,
  fc13: /is too small; the minimum side is 32 pixels/,
  fc15: /eye_0[34]/,
};

let api: TestApi;
let scratch: string;
beforeAll(async () => {
  api = await startTestApi();
  scratch = await mkdtemp(path.join(tmpdir(), "medloop-fieldcases-"));
});
afterAll(async () => {
  await api?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

async function foregroundOf(url: string, size: { width: number; height: number }): Promise<number> {
  const res = await api.call("GET", url, { token: api.tokens.auditor });
  expect(res.status).toBe(200);
  expect(await sharp(res.bytes).metadata()).toMatchObject({ format: "png", channels: 1, ...size });
  return (await readMask(res.bytes, url, size)).foreground;
}

async function expectStored(image: { width: number; height: number; mask_url: string; fov_url: string | null }, item: FieldItem): Promise<void> {
  const size = { width: item.width!, height: item.height! };
  expect({ width: image.width, height: image.height }).toEqual(size);
  expect(Math.abs((await foregroundOf(image.mask_url, size)) - item.mask_foreground!)).toBeLessThanOrEqual(item.mask_foreground_tolerance ?? 0);
  if (item.fov) expect(await foregroundOf(image.fov_url!, size)).toBe(item.fov_foreground);
}

/** Every file and folder of the blob store (a refusal may not leave even an empty folder). */
async function blobEntries(): Promise<string[]> {
  const root = api.deps.config.blobRoot;
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.map((e) => `${path.relative(root, path.join(e.parentPath, e.name))}${e.isDirectory() ? "/" : ""}`).sort();
}

async function nothingChanged<T>(fn: () => Promise<T>): Promise<T> {
  const rows = await rowCounts(api.db.pool);
  const entries = await blobEntries();
  const out = await fn();
  expect(await rowCounts(api.db.pool)).toEqual(rows);
  expect(await blobEntries()).toEqual(entries);
  return out;
}

describe("field cases through the upload API", () => {
  let projectId: number;
  beforeAll(async () => {
    projectId = (await api.call("POST", "/api/projects", { token: api.tokens.lab_lead, json: { name: "field cases (API)" } })).json.id;
  });

  async function upload(caseId: string, item: FieldItem, parts: Array<[field: string, rel: string]>, name = `${caseId}-${path.parse(item.image).name}`) {
    const form = new FormData();
    for (const [field, rel] of parts) form.append(field, new Blob([new Uint8Array(await readFile(caseFile(caseId, rel)))]), path.basename(rel));
    form.set("name", name);
    return api.call("POST", `/api/projects/${projectId}/images`, { token: api.tokens.lab_lead, body: form });
  }

  for (const c of loadCases()) {
    for (const item of c.items.filter((i) => !i.duplicate)) {
      it(`${c.id} ${c.title}: ${path.basename(item.image)} is ${item.expected === "accept" ? "stored" : "refused"}`, async () => {
        const parts: Array<[string, string]> = [["image", item.image], ["mask", item.mask]];
        if (item.fov) parts.push(["fov", item.fov]);
        if (item.expected === "accept") {
          const res = await upload(c.id, item, parts);
          expect(res.status, JSON.stringify(res.json)).toBe(201);
          await expectStored(res.json, item);
          return;
        }
        const res = await nothingChanged(() => upload(c.id, item, parts));
        expect([413, 415, 422], JSON.stringify(res.json)).toContain(res.status);
        expect(res.json.error.message).toMatch(REASON[c.id]!);
        // The message names the file it refuses (the image, or the mask whose size is wrong).
        expect(res.json.error.message).toMatch(new RegExp(`${path.basename(item.image)}|${path.basename(item.mask)}`));
      });
    }
  }

  it("fc15: one stem twice in one request is refused naming the stem, never last-one-wins", async () => {
    const fc15 = fieldCase("fc15");
    const [eye03, eye04] = fc15.items as [FieldItem, FieldItem];
    // eye_03.png and eye_03.tif as two image parts, and two different files both named eye_04.png.
    for (const [item, parts] of [
      [eye03, [["image", eye03.image], ["image", eye03.duplicate!], ["mask", eye03.mask]]],
      [eye04, [["image", eye04.image], ["image", eye04.duplicate!], ["mask", eye04.mask]]],
    ] as const) {
      const res = await nothingChanged(() => upload("fc15", item, parts as unknown as Array<[string, string]>));
      expect(res.status, JSON.stringify(res.json)).toBe(422);
      expect(res.json.error.message).toMatch(new RegExp(`field "image" is given 2 times with the same stem "${path.parse(item.image).name}"`));
    }
  });

  it("a retried upload of the same content answers 200 with the stored image; a name with other content is a 409", async () => {
    const item = fieldCase("fc14").items[0]!;
    const first = await upload("fc14", item, [["image", item.image], ["mask", item.mask]]);
    const again = await nothingChanged(() => upload("fc14", item, [["image", item.image], ["mask", item.mask]]));
    expect(again.status).toBe(200);
    expect(again.json.id).toBe(first.json.id);
    const form = new FormData();
    form.set("image", new Blob([new Uint8Array(await readFile(caseFile("fc12", "images/z03.png")))]), "z03.png");
    form.set("name", first.json.name);
    const clash = await nothingChanged(() => api.call("POST", `/api/projects/${projectId}/images`, { token: api.tokens.lab_lead, body: form }));
    expect(clash.status).toBe(409);
  });

  it("a repeated upload adds a mask or FOV the stored image lacks, and refuses a different one", async () => {
    const item = fieldCase("fc03").items[0]!;
    const bare = await upload("fc03", item, [["image", item.image]], "repeat-d21");
    expect(bare.status).toBe(201);
    expect(bare.json).toMatchObject({ has_mask: false, has_fov: false });
    const completed = await upload("fc03", item, [["image", item.image], ["mask", item.mask], ["fov", item.fov!]], "repeat-d21");
    expect(completed.status, JSON.stringify(completed.json)).toBe(200);
    expect(completed.json.id).toBe(bare.json.id);
    await expectStored(completed.json, item);
    const other = fieldCase("fc03").items[1]!; // the other image's vessels: another mask of the same size
    const changed = await nothingChanged(() => upload("fc03", item, [["image", item.image], ["mask", other.mask]], "repeat-d21"));
    expect(changed.status).toBe(409);
    expect(changed.json.error.message).toMatch(/with another reference mask; replace it with PUT \/api\/images\/\d+\/mask/);
  });

  it("PUT /images/:id/fov sets the FOV mask under the contract, refusing another size", async () => {
    const item = fieldCase("fc11").items[0]!;
    const res = await upload("fc11", item, [["image", item.image], ["mask", item.mask]], "fov-later");
    const put = (rel: string) =>
      readFile(caseFile(rel.startsWith("fc") ? rel.slice(0, 4) : "fc11", rel.startsWith("fc") ? rel.slice(5) : rel)).then((body) =>
        api.call("PUT", `/api/images/${res.json.id}/fov`, { token: api.tokens.lab_lead, body, contentType: "image/png" }),
      );
    const set = await put(item.fov!);
    expect(set.status, JSON.stringify(set.json)).toBe(200);
    expect(await foregroundOf(set.json.fov_url, { width: item.width!, height: item.height! })).toBe(item.fov_foreground);
    const wrong = await nothingChanged(() => put("fc14/masks/q02.png"));
    expect(wrong.status).toBe(422);
    expect(wrong.json.error.message).toMatch(/mask is 999x960 but the image is 3504x2336/);
  });

  it("refuses multipart fields of the wrong kind or unknown, and names with invisible characters", async () => {
    const image = new Blob([new Uint8Array(await readFile(caseFile("fc12", "images/z03.png")))]);
    const send = async (build: (f: FormData) => void) => {
      const form = new FormData();
      form.set("image", image, "z03.png");
      build(form);
      return nothingChanged(() => api.call("POST", `/api/projects/${projectId}/images`, { token: api.tokens.lab_lead, body: form }));
    };
    const asText = await send((f) => f.set("mask", "not a file"));
    expect([asText.status, asText.json.error.message]).toEqual([422, expect.stringMatching(/"mask" must be a file, not text/)]);
    const unknown = await send((f) => f.set("labels", "x"));
    expect([unknown.status, unknown.json.error.message]).toEqual([422, expect.stringMatching(/"labels" is not a field of this request/)]);
    for (const name of ["eye\u202Egnp.exe", "a\u0000b", "zero\u200Bwidth", "line\u2028break", "../up"]) {
      const res = await send((f) => f.set("name", name));
      expect(res.status, name).toBe(400);
      // NUL is refused before the name rules, as in every text field of every route (docs/api.md, Errors).
      const reason = name.includes("\u0000") ? /^multipart\.name: must not contain NUL/ : /must not hold control or invisible formatting characters/;
      expect(res.json.error.message).toMatch(reason);
    }
  });

  it("names the image after the part's file name (NFC) when no name is given", async () => {
    const form = new FormData();
    form.set("image", new Blob([new Uint8Array(await readFile(caseFile("fc12", "images/z03.png")))]), "Cafe\u0301 z03.PNG");
    const res = await api.call("POST", `/api/projects/${projectId}/images`, { token: api.tokens.lab_lead, body: form });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    expect(res.json.name).toBe("Caf\u00e9 z03");
  });
});

describe("field cases through `medloop import`", () => {
  const run = async (args: string[]) => {
    try {
      const { stdout, stderr } = await promisify(execFile)(process.execPath, [path.join(repoRoot, "bin/medloop.mjs"), "import", ...args], {
        cwd: repoRoot,
        env: { ...process.env, MEDLOOP_DATABASE_URL: api.db.url, MEDLOOP_DATA_DIR: api.dataDir, MEDLOOP_BLOB_ROOT: api.deps.config.blobRoot },
      });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };
  const folderArgs = (dir: string, suffix: string, fov: boolean) => [
    "--images", path.join(dir, "images"), "--masks", path.join(dir, "masks"),
    ...(suffix ? ["--mask-suffix", suffix] : []), ...(fov ? ["--fov", path.join(dir, "fov")] : []),
  ];

  /** A folder holding links to just these files of a case, laid out as the case is. */
  async function linkFolder(caseId: string, name: string, files: string[]): Promise<string> {
    const dir = path.join(scratch, name);
    for (const rel of files) {
      await mkdir(path.join(dir, path.dirname(rel)), { recursive: true });
      await symlink(caseFile(caseId, rel), path.join(dir, rel));
    }
    return dir;
  }

  for (const c of loadCases().filter((c) => c.expected === "accept")) {
    it(`${c.id} ${c.title}: the folder is imported as stated`, async () => {
      const dir = caseFile(c.id, "");
      const project = `import ${c.id}`;
      const res = await run(["--project", project, ...folderArgs(dir, c.mask_suffix, c.items.some((i) => i.fov))]);
      expect(res.code, res.stderr).toBe(0);
      expect(res.stdout).toContain(`imported ${c.items.length} image(s)`);
      const { rows } = await api.db.pool.query<{ id: number; name: string }>(
        "SELECT i.id, i.name FROM images i JOIN projects p ON p.id = i.project_id WHERE p.name = $1 ORDER BY i.name", [project],
      );
      for (const item of c.items) {
        const row = rows.find((r) => r.name === path.parse(item.image).name)!;
        await expectStored((await api.call("GET", `/api/images/${row.id}`, { token: api.tokens.auditor })).json, item);
      }
      if (c.id === "fc05") expect(res.stdout).toMatch(/2 mask\(s\) came from lossy files/);
      // Running it again stores nothing new: the content is already there.
      const again = await nothingChanged(() => run(["--project", project, ...folderArgs(dir, c.mask_suffix, c.items.some((i) => i.fov))]));
      expect(again.stdout).toContain(`imported 0 image(s), skipped ${c.items.length} already there`);
    });
  }

  for (const c of loadCases().filter((c) => c.expected === "refuse" && c.id !== "fc15")) {
    for (const item of c.items) {
      it(`${c.id} ${c.title}: ${path.basename(item.image)} is refused, nothing stored, no project`, async () => {
        const dir = await linkFolder(c.id, `${c.id}-${path.parse(item.image).name}`, [item.image, item.mask]);
        const res = await nothingChanged(() => run(["--project", `refused ${c.id}`, ...folderArgs(dir, "", false)]));
        expect(res.code).toBe(1);
        expect(res.stderr).toMatch(REASON[c.id]!);
        expect(res.stderr).toMatch(new RegExp(`${path.basename(item.image)}|${path.basename(item.mask)}`));
      });
    }
  }

  it("fc15 one stem twice in one folder: refused naming the stem, nothing stored", async () => {
    const res = await nothingChanged(() => run(["--project", "refused fc15", ...folderArgs(caseFile("fc15", ""), "", false)]));
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/stem "eye_03" has 2 files: eye_03\.png, eye_03\.tif/);
  });

  it("a refusal after good files leaves no project, image or blob (all or nothing)", async () => {
    // Good files sorting before a bad one: the good ones are decoded and written first.
    const dir = await linkFolder("fc13", "mixed", ["images/t01.png", "masks/t01.png"]);
    for (const rel of ["images/q01.png", "masks/q01.png"]) await symlink(caseFile("fc14", rel), path.join(dir, rel));
    for (const rel of ["images/a01.png", "masks/a01.png"]) await symlink(caseFile("fc12", rel.replace("a01", "z03")), path.join(dir, rel));
    const res = await nothingChanged(() => run(["--project", "all or nothing", ...folderArgs(dir, "", false)]));
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/t01\.png: 700x1 is too small/);
  });
});
