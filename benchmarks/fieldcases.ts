// Field-case matrix → benchmarks/results/fieldcases.json. Not a test (the tests assert the same
// cases per entry point); this measures a checkout, so the same script scores an older commit too:
//
//   npx tsx benchmarks/fieldcases.ts [--root CHECKOUT] [--json PATH]
//
// For every field case (../shared/fieldcases, cases.json) and every entry point that reads files —
// the engine's readers (medloop-ml train/predict/evaluate and the gpu worker, run with
// PYTHONPATH=<root>/ml/src), `medloop import`, the upload API, serving's image decoding and the
// UI uploader's pairing — it records what the checkout did and whether that is the case's right
// result: accepted at the stated upright size, mask and FOV counts (and EXIF / 16-bit pixel
// checks), or refused with a 4xx / non-zero exit leaving no row and no blob behind. Only the
// interfaces every version has are used: the CLIs, the test API helper, serving/image.ts'
// decodeImage and web/src/pages/uploadPairs.ts.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import sharp from "sharp";

const here = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values: args } = parseArgs({ options: { root: { type: "string" }, json: { type: "string" } } });
const root = path.resolve(args.root ?? here);
const fieldcases = path.resolve(here, process.env.MEDLOOP_FIELDCASES ?? "../shared/fieldcases");
const run = promisify(execFile);

interface Item {
  image: string;
  mask: string;
  fov?: string;
  duplicate?: string;
  expected: "accept" | "refuse";
  width?: number;
  height?: number;
  mask_foreground?: number;
  mask_foreground_tolerance?: number;
  fov_foreground?: number;
  checks?: { bright_block?: number[]; bright_min_mean?: number; dark_blocks?: number[][]; dark_max_mean?: number; mean_8bit?: number[]; mean_tolerance?: number };
}
interface Case {
  id: string;
  title: string;
  expected: "accept" | "refuse";
  mask_suffix: string;
  items: Item[];
}
/** What an entry point did with one item. */
interface Seen {
  refused: boolean;
  /** For refusals: nothing of it was stored. */
  clean?: boolean;
  message?: string;
  width?: number;
  height?: number;
  maskPixels?: number;
  fovPixels?: number | null;
  /** The stored/decoded image, 8-bit RGB interleaved, for the EXIF and 16-bit checks. */
  rgb?: Uint8Array;
}
interface Verdict {
  right: boolean;
  what: string;
}

const cases = (JSON.parse(await readFile(path.join(fieldcases, "cases.json"), "utf8")) as { cases: Case[] }).cases;
const stemOf = (file: string) => path.basename(file).replace(/\.[^.]+$/, "");

// ------------------------------------------------------------------------------------ judging

function blockMean(rgb: Uint8Array, width: number, [x0, y0, x1, y1]: number[]): number {
  let sum = 0;
  let n = 0;
  for (let y = y0!; y < y1!; y++) for (let x = x0!; x < x1!; x++) for (let c = 0; c < 3; c++, n++) sum += rgb[(y * width + x) * 3 + c]!;
  return sum / n;
}

function pixelChecks(item: Item, seen: Seen): string | null {
  const c = item.checks;
  if (!c || !seen.rgb) return null;
  if (c.bright_block && blockMean(seen.rgb, seen.width!, c.bright_block) < c.bright_min_mean!) return "stored sideways/upside down (EXIF ignored)";
  if (c.dark_blocks?.some((b) => blockMean(seen.rgb!, seen.width!, b) > c.dark_max_mean!)) return "stored sideways/upside down (EXIF ignored)";
  if (c.mean_8bit) {
    const n = seen.rgb.length / 3;
    const means = c.mean_8bit.map((_, ch) => seen.rgb!.reduce((s, v, k) => (k % 3 === ch ? s + v : s), 0) / n);
    if (means.some((m, ch) => Math.abs(m - c.mean_8bit![ch]!) > c.mean_tolerance!)) return `16-bit scaled wrongly (mean ${means.map((m) => m.toFixed(1)).join("/")} instead of ${c.mean_8bit.join("/")})`;
  }
  return null;
}

function judge(item: Item, seen: Seen): Verdict {
  if (item.expected === "refuse") {
    if (!seen.refused) return { right: false, what: `accepted (${seen.width}x${seen.height}, mask ${seen.maskPixels} px)` };
    if (seen.clean === false) return { right: false, what: `refused but left rows/blobs behind: ${seen.message ?? ""}` };
    return { right: true, what: `refused: ${seen.message ?? ""}` };
  }
  if (seen.refused) return { right: false, what: `refused: ${seen.message ?? ""}` };
  if (seen.width !== item.width || seen.height !== item.height) return { right: false, what: `stored ${seen.width}x${seen.height} instead of ${item.width}x${item.height}` };
  if (seen.maskPixels !== undefined && Math.abs(seen.maskPixels - item.mask_foreground!) > (item.mask_foreground_tolerance ?? 0)) {
    return { right: false, what: `mask ${seen.maskPixels} px instead of ${item.mask_foreground}` };
  }
  if (item.fov && seen.fovPixels !== undefined && seen.fovPixels !== item.fov_foreground) {
    return { right: false, what: seen.fovPixels === null ? "FOV mask not importable" : `FOV ${seen.fovPixels} px instead of ${item.fov_foreground}` };
  }
  const pixels = pixelChecks(item, seen);
  return pixels ? { right: false, what: pixels } : { right: true, what: "stored as stated" };
}

/** The pixels of a stored or decoded PNG (its size is the record's, which the judge compares). */
async function rgbOf(png: Buffer | string): Promise<{ rgb: Uint8Array }> {
  const { data } = await sharp(png).removeAlpha().toColourspace("srgb").raw().toBuffer({ resolveWithObject: true });
  return { rgb: new Uint8Array(data) };
}

async function maskPixels(png: Buffer): Promise<number> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  let n = 0;
  for (let k = 0; k < data.length; k += info.channels) if (data[k]! > 127) n++;
  return n;
}

// ------------------------------------------------------------------------------- entry points

type Results = Record<string, Record<string, Verdict>>; // case → item → verdict

async function engine(scratch: string): Promise<Results> {
  const { stdout } = await run(path.join(here, ".venv/bin/python"), [path.join(here, "benchmarks/fieldcases_engine.py"), fieldcases, path.join(scratch, "engine")], {
    env: { ...process.env, PYTHONPATH: path.join(root, "ml/src") },
    maxBuffer: 1 << 26,
  });
  const report = JSON.parse(stdout) as Record<string, { items: Record<string, Seen & { png?: string; mask_pixels?: number; fov_pixels?: number | null }>; folder: Record<string, { refused: boolean; message?: string }> }>;
  const out: Results = {};
  for (const c of cases) {
    out[c.id] = {};
    for (const item of c.items) {
      const r = report[c.id]!.items[path.basename(item.image)]!;
      let seen: Seen = { refused: r.refused, message: r.message };
      if (!r.refused) seen = { refused: false, width: r.width, height: r.height, maskPixels: r.mask_pixels, fovPixels: r.fov_pixels ?? undefined, ...(await rgbOf(r.png!)) };
      if (item.duplicate) {
        const folder = report[c.id]!.folder;
        seen = { refused: folder.pairs!.refused && folder.images!.refused, message: folder.pairs!.message };
      }
      out[c.id]![path.basename(item.image)] = judge(item, seen);
    }
  }
  return out;
}

/** A folder holding links to some files of a case, laid out as the case is. */
async function linkFolder(scratch: string, caseId: string, name: string, files: string[]): Promise<string> {
  const dir = path.join(scratch, name);
  for (const rel of files) {
    await mkdir(path.join(dir, path.dirname(rel)), { recursive: true });
    await symlink(path.join(fieldcases, caseId, rel), path.join(dir, rel));
  }
  return dir;
}

async function listFiles(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name)).sort();
}

// The checkout's own test helpers: a throw-away database, the real HTTP app, its row counts.
const dbHelpers = (await import(path.join(root, "test/helpers/db.ts"))) as {
  createTestDatabase(): Promise<{ url: string; pool: import("pg").Pool; drop(): Promise<void> }>;
  rowCounts(pool: import("pg").Pool): Promise<Record<string, number>>;
};
const apiHelpers = (await import(path.join(root, "test/helpers/api.ts"))) as {
  startTestApi(): Promise<{
    db: { url: string; pool: import("pg").Pool };
    deps: { config: { blobRoot: string } };
    tokens: Record<string, string>;
    call(method: string, url: string, opts?: { token?: string; body?: FormData; json?: unknown }): Promise<{ status: number; json: any; bytes: Buffer }>; // eslint-disable-line @typescript-eslint/no-explicit-any
    close(): Promise<void>;
  }>;
};

async function importCommand(scratch: string): Promise<Results> {
  const db = await dbHelpers.createTestDatabase();
  const blobRoot = path.join(scratch, "import-blobs");
  const env = { ...process.env, MEDLOOP_DATABASE_URL: db.url, MEDLOOP_DATA_DIR: path.join(scratch, "import-data"), MEDLOOP_BLOB_ROOT: blobRoot };
  const out: Results = {};
  const medloopImport = async (project: string, dir: string, suffix: string, fov: boolean) => {
    const argv = ["--project", project, "--images", path.join(dir, "images"), "--masks", path.join(dir, "masks"), ...(suffix ? ["--mask-suffix", suffix] : []), ...(fov ? ["--fov", path.join(dir, "fov")] : [])];
    try {
      await run(process.execPath, [path.join(root, "bin/medloop.mjs"), "import", ...argv], { cwd: root, env });
      return { code: 0, stderr: "" };
    } catch (err) {
      const e = err as { code: number; stderr: string };
      return { code: e.code, stderr: e.stderr.trim().split("\n")[0] ?? "" };
    }
  };
  const hasFov = (await db.pool.query("SELECT 1 FROM information_schema.columns WHERE table_name = 'images' AND column_name = 'fov_uri'")).rowCount === 1;
  const blob = (uri: string) => readFile(path.join(blobRoot, uri.slice("blob://".length)));
  for (const c of cases) {
    out[c.id] = {};
    const jobs: Array<{ items: Item[]; dir: string; suffix: string }> =
      c.expected === "accept" || c.id === "fc15"
        ? [{ items: c.items, dir: path.join(fieldcases, c.id), suffix: c.mask_suffix }]
        : await Promise.all(c.items.map(async (i) => ({ items: [i], dir: await linkFolder(scratch, c.id, `import-${c.id}-${stemOf(i.image)}`, [i.image, i.mask]), suffix: "" })));
    for (const job of jobs) {
      const project = `${c.id}-${stemOf(job.items[0]!.image)}`;
      const before = { rows: await dbHelpers.rowCounts(db.pool), files: await listFiles(blobRoot) };
      const { code, stderr } = await medloopImport(project, job.dir, job.suffix, job.items.some((i) => i.fov));
      const clean = JSON.stringify(await dbHelpers.rowCounts(db.pool)) === JSON.stringify(before.rows) && JSON.stringify(await listFiles(blobRoot)) === JSON.stringify(before.files);
      const { rows } = await db.pool.query(
        `SELECT i.name, i.width, i.height, i.png_uri, i.mask_uri${hasFov ? ", i.fov_uri" : ""} FROM images i JOIN projects p ON p.id = i.project_id WHERE p.name = $1`,
        [project],
      );
      for (const item of job.items) {
        let seen: Seen = { refused: true, clean, message: stderr };
        const row = rows.find((r) => r.name === stemOf(item.image));
        if (code === 0 && row) {
          seen = { refused: false, width: row.width, height: row.height, maskPixels: row.mask_uri ? await maskPixels(await blob(row.mask_uri)) : 0, ...(await rgbOf(await blob(row.png_uri))) };
          seen.fovPixels = item.fov ? (hasFov && row.fov_uri ? await maskPixels(await blob(row.fov_uri)) : null) : undefined;
        } else if (code === 0) seen = { refused: false, message: "not stored", width: 0, height: 0 };
        out[c.id]![path.basename(item.image)] = judge(item, seen);
      }
    }
  }
  await db.drop();
  return out;
}

async function uploadApi(): Promise<Results> {
  const api = await apiHelpers.startTestApi();
  const out: Results = {};
  const token = api.tokens.lab_lead!;
  try {
    const projectId = (await api.call("POST", "/api/projects", { token, json: { name: "field cases" } })).json.id as number;
    const blob = (url: string) => api.call("GET", url, { token: api.tokens.auditor }).then((r) => r.bytes);
    for (const c of cases) {
      out[c.id] = {};
      for (const item of c.items) {
        const form = new FormData();
        const part = async (field: string, rel: string) => form.append(field, new Blob([new Uint8Array(await readFile(path.join(fieldcases, c.id, rel)))]), path.basename(rel));
        await part("image", item.image);
        if (item.duplicate) await part("image", item.duplicate);
        await part("mask", item.mask);
        if (item.fov) await part("fov", item.fov);
        form.set("name", `${c.id}-${stemOf(item.image)}`);
        const before = { rows: await dbHelpers.rowCounts(api.db.pool), files: await listFiles(api.deps.config.blobRoot) };
        const res = await api.call("POST", `/api/projects/${projectId}/images`, { token, body: form });
        const clean = JSON.stringify(await dbHelpers.rowCounts(api.db.pool)) === JSON.stringify(before.rows) && JSON.stringify(await listFiles(api.deps.config.blobRoot)) === JSON.stringify(before.files);
        let seen: Seen;
        if (res.status === 201 || res.status === 200) {
          const img = res.json;
          seen = { refused: false, width: img.width, height: img.height, maskPixels: img.mask_url ? await maskPixels(await blob(img.mask_url)) : 0, ...(await rgbOf(await blob(img.image_url))) };
          seen.fovPixels = item.fov ? (img.fov_url ? await maskPixels(await blob(img.fov_url)) : null) : undefined;
        } else {
          seen = { refused: res.status < 500, clean, message: `${res.status} ${res.json?.error?.message ?? ""}` };
          if (res.status >= 500) seen.message = `answered ${seen.message}`;
        }
        out[c.id]![path.basename(item.image)] = judge(item, seen);
      }
    }
  } finally {
    await api.close();
  }
  return out;
}

async function serving(): Promise<Results> {
  const { decodeImage } = (await import(path.join(root, "serving/image.ts"))) as {
    decodeImage(bytes: Buffer, maxPixels: number): Promise<{ data: Float32Array; width: number; height: number }>;
  };
  const out: Results = {};
  for (const c of cases) {
    out[c.id] = {};
    for (const item of c.items) {
      if (c.expected === "refuse" && !["fc07", "fc13"].includes(c.id)) continue; // mask or folder refusals: not serving's
      let seen: Seen;
      try {
        const p = await decodeImage(await readFile(path.join(fieldcases, c.id, item.image)), 25_000_000);
        const n = p.width * p.height;
        const rgb = new Uint8Array(n * 3);
        for (let k = 0; k < n; k++) for (let ch = 0; ch < 3; ch++) rgb[k * 3 + ch] = Math.round(p.data[ch * n + k]! * 255);
        seen = { refused: false, width: p.width, height: p.height, rgb };
      } catch (err) {
        seen = { refused: true, message: (err as Error).message };
      }
      out[c.id]![path.basename(item.image)] = judge(item, seen);
    }
  }
  return out;
}

async function uploaderPairing(): Promise<Results> {
  const ui = (await import(path.join(root, "web/src/pages/uploadPairs.ts"))) as {
    pairUploads(files: { name: string }[], suffix: string, waiting?: { name: string }[]): { pairs: { name: string; image: { name: string }; mask: { name: string } | null }[]; clashes?: unknown[] };
    planMasks?(masks: { name: string }[], suffix: string, images: { name: string }[]): { waiting: { name: string }[] };
  };
  const out: Results = {};
  for (const c of cases) {
    out[c.id] = {};
    // The case's images folder and masks folder dropped on the uploader: on a mask drop zone where
    // the UI has one, else together on its one drop zone.
    const list = async (folder: string) => (await readdir(path.join(fieldcases, c.id, folder))).map((name) => ({ name }));
    const images = await list("images");
    const masks = await list("masks");
    const drop = ui.planMasks
      ? ui.pairUploads(images, c.mask_suffix, ui.planMasks(masks, c.mask_suffix, []).waiting)
      : ui.pairUploads([...images, ...masks], c.mask_suffix);
    for (const item of c.items) {
      const pair = drop.pairs.find((p) => p.image.name === path.basename(item.image));
      let verdict: Verdict;
      if (item.duplicate) verdict = drop.clashes?.length ? { right: true, what: "drop refused naming the stem" } : { right: false, what: "one of the two files sent (last one wins)" };
      else if (!pair) verdict = { right: false, what: "image not found in the drop" };
      else if (pair.mask?.name !== path.basename(item.mask)) verdict = { right: false, what: pair.mask ? `paired with ${pair.mask.name}` : "mask not paired (uploaded as an image)" };
      else verdict = { right: true, what: "paired" };
      out[c.id]![path.basename(item.image)] = verdict;
    }
  }
  return out;
}

// --------------------------------------------------------------------------------------- main

const scratch = await mkdtemp(path.join(os.tmpdir(), "medloop-fieldcases-"));
try {
  const entryPoints: Record<string, Results> = {
    engine: await engine(scratch),
    "medloop import": await importCommand(scratch),
    "upload API": await uploadApi(),
    serving: await serving(),
    "uploader pairing": await uploaderPairing(),
  };
  const commit = (await run("git", ["rev-parse", "--short", "HEAD"], { cwd: root })).stdout.trim();
  const summary = Object.fromEntries(
    Object.entries(entryPoints).map(([ep, res]) => {
      const verdicts = Object.values(res).flatMap((items) => Object.values(items));
      return [ep, { right: verdicts.filter((v) => v.right).length, items: verdicts.length, cases_wrong: Object.entries(res).filter(([, items]) => Object.values(items).some((v) => !v.right)).map(([id]) => id) }];
    }),
  );
  const report = { commit, measured_at: new Date().toISOString(), fieldcases: path.relative(here, fieldcases), summary, entry_points: entryPoints };
  const json = args.json ?? path.join(here, "benchmarks/results/fieldcases.json");
  await mkdir(path.dirname(json), { recursive: true });
  await writeFile(json, `${JSON.stringify(report, null, 1)}\n`);
  console.log(`commit ${commit}`);
  for (const [ep, s] of Object.entries(summary)) console.log(`${ep.padEnd(18)} ${s.right}/${s.items} items right; cases wrong: ${s.cases_wrong.join(", ") || "none"}`);
  console.log(`→ ${json}`);
} finally {
  await rm(scratch, { recursive: true, force: true });
}
process.exit(0);
