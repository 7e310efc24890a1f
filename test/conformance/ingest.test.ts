// The ingest contract across the languages (docs/ingest.md): the Python side writes a corpus of
// generated variants (formats, bit depths, EXIF orientations, palettes, alpha, sizes at the
// limits, mask encodings, name forms) and describes how it reads each file and the field cases
// (../shared/fieldcases, read in place); the TypeScript side (services/ingest/) must give
// identical sizes, pixels, mask counts and refusals, and the values the corpus and cases.json
// state.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeSamples } from "../../services/ingest/decode.js";
import { isImageFileName, pairByStem } from "../../services/ingest/names.js";
import { imageFromSamples, IngestError, maskFromSamples } from "../../services/ingest/samples.js";
import { fieldcasesDir, loadCases } from "../helpers/fieldcases.js";

const repoRoot = path.resolve(import.meta.dirname, "../..");
const python = path.join(repoRoot, ".venv/bin/python");
const script = path.join(repoRoot, "ml/tests/ingest_conformance.py");

interface Answer {
  ok: boolean;
  error?: string;
  width?: number;
  height?: number;
  sha256?: string;
  foreground?: number;
  lossy?: boolean;
}
interface Entry {
  file: string;
  kind: "image" | "mask";
  expect: Partial<Answer> & { error?: string };
  case?: string;
}
interface Manifest {
  root: string;
  files: Entry[];
  pairing: { images: string; masks: string; mask_suffix: string; expected: string[] };
}

async function describeInTypeScript(file: string, kind: "image" | "mask"): Promise<Answer> {
  try {
    const samples = await decodeSamples(await readFile(file), file);
    const answer: Answer = { ok: true, width: samples.width, height: samples.height };
    if (kind === "image") return { ...answer, sha256: sha256(imageFromSamples(samples).rgb) };
    const mask = maskFromSamples(samples);
    return { ...answer, sha256: sha256(mask.bits), foreground: mask.foreground, lossy: mask.lossy };
  } catch (err) {
    if (err instanceof IngestError) return { ok: false, error: err.kind };
    throw err;
  }
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

let dir: string;
let manifest: Manifest;
let pythonAnswers: { files: Record<string, Answer>; pairing: string[] | { error: string } };
const typescriptAnswers = new Map<string, Answer>();

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "medloop-conformance-"));
  const run = promisify(execFile);
  const env = { ...process.env, MEDLOOP_FIELDCASES: fieldcasesDir() };
  const { stdout: manifestPath } = await run(python, [script, "variants", dir], { cwd: repoRoot, env });
  manifest = JSON.parse(await readFile(manifestPath.trim(), "utf8")) as Manifest;
  const { stdout } = await run(python, [script, "describe", manifestPath.trim()], { cwd: repoRoot, env, maxBuffer: 1 << 26 });
  pythonAnswers = JSON.parse(stdout) as typeof pythonAnswers;
  for (const entry of manifest.files) {
    typescriptAnswers.set(entry.file, await describeInTypeScript(path.resolve(manifest.root, entry.file), entry.kind));
  }
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("the ingest contract gives the same answer in Python and TypeScript", () => {
  it("covers the generated variants and every field case file", () => {
    expect(manifest.files.filter((e) => !e.case).length).toBeGreaterThan(80);
    const cases = loadCases();
    const caseFiles = cases.flatMap((c) => c.items.flatMap((i) => [i.image, i.mask, i.fov].filter(Boolean)));
    expect(manifest.files.filter((e) => e.case).length).toBe(caseFiles.length);
  });

  it("reads every file identically: size, pixels, mask count, lossy flag, or the same refusal", () => {
    const differing = manifest.files
      .filter((e) => JSON.stringify(typescriptAnswers.get(e.file)) !== JSON.stringify(pythonAnswers.files[e.file]))
      .map((e) => ({ file: e.file, typescript: typescriptAnswers.get(e.file), python: pythonAnswers.files[e.file] }));
    expect(differing).toEqual([]);
  });

  it("gives the values the corpus states (pixels computed independently, refusals by kind)", () => {
    const wrong = [];
    for (const entry of manifest.files) {
      const answer = typescriptAnswers.get(entry.file)!;
      const { error, ...values } = entry.expect as Record<string, unknown>;
      delete values.pages;
      const got: Record<string, unknown> = error ? { error: answer.error } : Object.fromEntries(Object.keys(values).map((k) => [k, answer[k as keyof Answer]]));
      const want = error ? { error } : values;
      if (JSON.stringify(got) !== JSON.stringify(want)) wrong.push({ file: entry.file, got, want });
    }
    expect(wrong).toEqual([]);
  });

  it("gives each field case's stated sizes, mask counts and refusals", () => {
    const root = fieldcasesDir();
    const wrong = [];
    for (const c of loadCases()) {
      for (const item of c.items) {
        const image = typescriptAnswers.get(path.join(root, c.id, item.image))!;
        const mask = typescriptAnswers.get(path.join(root, c.id, item.mask))!;
        if (item.expected === "refuse") {
          // Refused by the file itself, or by the pair (sizes) or the folder (stems): the
          // per-file answer is checked here, the pair and folder rules by the entry points' tests.
          const refusedHere = !image.ok || !mask.ok || image.width !== mask.width || image.height !== mask.height;
          if (!refusedHere && !item.duplicate) wrong.push({ case: c.id, item: item.image, image, mask });
          continue;
        }
        const tolerance = item.mask_foreground_tolerance ?? 0;
        const ok =
          image.ok && image.width === item.width && image.height === item.height &&
          Math.abs(mask.foreground! - item.mask_foreground!) <= tolerance &&
          (!item.fov || typescriptAnswers.get(path.join(root, c.id, item.fov))!.foreground === item.fov_foreground);
        if (!ok) wrong.push({ case: c.id, item: item.image, image, mask });
      }
    }
    expect(wrong).toEqual([]);
  });

  it("pairs names the same way: NFC, case-insensitive extensions, mask suffix, hidden files ignored", async () => {
    const p = manifest.pairing;
    const list = async (sub: string) =>
      (await readdir(path.join(manifest.root, sub))).filter(isImageFileName).map((name) => ({ name }));
    const pairing = pairByStem(await list(p.images), await list(p.masks), p.mask_suffix);
    expect(pairing.clashes).toEqual([]);
    expect(pairing.orphanMasks).toEqual([]);
    expect(pairing.pairs.every((pair) => pair.mask !== null)).toBe(true);
    const stems = pairing.pairs.map((pair) => pair.name).sort();
    expect(stems).toEqual(p.expected);
    expect(pythonAnswers.pairing).toEqual(stems);
  });
});
