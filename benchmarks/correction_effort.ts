// What correcting a prediction costs a doctor, by the action-level effort model
// (services/correction/effort.ts), for the CHASE_DB1 reference split's 22 test images: a simulated
// doctor (services/simulate/correctionDoctor.ts) draws each image from scratch, corrects the
// model's prediction with the manual tools only, and with the assisted tools. Also times each
// assisted tool on the full-size images (the editor's response).
//
//   npx tsx benchmarks/correction_effort.ts --predictions DIR [--label TEXT] [--out FILE] [--limit N]
//
// DIR holds `<stem>.png` (the predicted mask) and `<stem>_prob.png` (16-bit probabilities) per
// test image, as `medloop-ml demo-chase --out RUN` writes them under RUN/predictions (the round-0
// model: six seed images, the campaign's 5-minute budget). Writes benchmarks/results/
// correction_effort.json (per condition `minutes_mean`, `actions_mean`, ...) and a chart beside it.
import { readFile, readdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import sharp from "sharp";
import { grow, probabilityFromSamples, remove, rethreshold, trace, type ProbabilityMap } from "../services/correction/assist.js";
import { EFFORT_CONSTANTS, actionSeconds, effortMinutes, summariseActions, type Action } from "../services/correction/effort.js";
import type { Mask } from "../services/correction/raster.js";
import { longestPath } from "../services/correction/skeleton.js";
import { decodeSamples, readMask as readMaskFile } from "../services/ingest/decode.js";
import { prepareTruth, simulateCorrection, type Condition, type SimulatedCorrection } from "../services/simulate/correctionDoctor.js";

const CONDITIONS: Condition[] = ["scratch", "manual", "assisted"];
const PUBLISHED_SCRATCH_MINUTES = 36;
const F1_MARKS = [0.85, 0.9, 0.95];

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** A mask as 0/1 (the ingest contract's reading: services/ingest/decode.ts). */
async function readMask(file: string): Promise<Mask> {
  const mask = await readMaskFile(await readFile(file), path.basename(file));
  return { width: mask.width, height: mask.height, data: mask.bits };
}

/** The engine's 16-bit probability PNG as probabilities in [0, 1]. */
async function readProb(file: string): Promise<ProbabilityMap> {
  return probabilityFromSamples(await decodeSamples(await readFile(file), path.basename(file)));
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const r3 = (v: number) => Math.round(v * 1000) / 1000;

/** Clicks until the F1 first reaches `mark` (null when it never does). */
function clicksTo(run: SimulatedCorrection, mark: number): number | null {
  return run.curve.find((p) => p.f1 >= mark)?.clicks ?? null;
}

/** Times of each assisted tool on one image, milliseconds. */
function toolTimes(mask: Mask, prob: ProbabilityMap, truthSkeleton: Uint8Array): Record<string, number> {
  const w = mask.width;
  const pixels: number[] = [];
  for (let i = 0; i < truthSkeleton.length; i++) if (truthSkeleton[i]) pixels.push(i);
  const run = longestPath(pixels.slice(0, 4000), w);
  const at = (k: number) => ({ x: (run[k]! % w) + 0.5, y: Math.floor(run[k]! / w) + 0.5 });
  const a = at(0);
  const b = at(Math.min(run.length - 1, 120));
  let masked = 0;
  for (let i = 0; i < mask.data.length && !masked; i++) if (mask.data[i]) masked = i;
  const timed = (f: () => unknown) => {
    const t = performance.now();
    f();
    return performance.now() - t;
  };
  return {
    trace: timed(() => trace(mask, prob, [a, b])),
    grow: timed(() => grow(mask, prob, a)),
    remove: timed(() => remove(mask, { x: (masked % w) + 0.5, y: Math.floor(masked / w) + 0.5 })),
    rethreshold: timed(() => rethreshold(mask, prob, [a, b], 20, 0.3)),
  };
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((u, v) => u - v);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}

function chartSvg(summary: Record<Condition, { minutes_mean: number }>, curves: Record<"manual" | "assisted", Array<[number, number]>>, title: string): string {
  const W = 960;
  const H = 420;
  const parts = [`<rect width="${W}" height="${H}" fill="white"/>`, `<text x="${W / 2}" y="28" font-size="17" text-anchor="middle" font-family="sans-serif">${title}</text>`];
  // Left: modelled minutes per image by condition.
  const maxMin = Math.max(...CONDITIONS.map((c) => summary[c].minutes_mean), 1);
  const colours: Record<Condition, string> = { scratch: "#999", manual: "#e08a2c", assisted: "#2c7be0" };
  CONDITIONS.forEach((c, k) => {
    const h = (summary[c].minutes_mean / maxMin) * 280;
    const x = 80 + k * 110;
    parts.push(`<rect x="${x}" y="${360 - h}" width="70" height="${h}" fill="${colours[c]}"/>`);
    parts.push(`<text x="${x + 35}" y="${352 - h}" font-size="13" text-anchor="middle" font-family="sans-serif">${summary[c].minutes_mean.toFixed(1)}</text>`);
    parts.push(`<text x="${x + 35}" y="380" font-size="13" text-anchor="middle" font-family="sans-serif">${c}</text>`);
  });
  parts.push(`<text x="215" y="405" font-size="13" text-anchor="middle" font-family="sans-serif">modelled minutes per image (mean)</text>`);
  // Right: mean F1 against the truth versus clicks.
  const x0 = 480;
  const maxClicks = Math.max(1, ...Object.values(curves).flatMap((c) => c.map((p) => p[0])));
  const px = (c: number) => x0 + (c / maxClicks) * 440;
  const py = (f: number) => 360 - ((f - 0.5) / 0.5) * 300;
  parts.push(`<line x1="${x0}" y1="360" x2="${x0 + 440}" y2="360" stroke="black"/><line x1="${x0}" y1="60" x2="${x0}" y2="360" stroke="black"/>`);
  for (const f of [0.5, 0.6, 0.7, 0.8, 0.9, 1]) {
    parts.push(`<text x="${x0 - 6}" y="${py(f) + 4}" font-size="11" text-anchor="end" font-family="sans-serif">${f.toFixed(1)}</text>`);
    parts.push(`<line x1="${x0}" y1="${py(f)}" x2="${x0 + 440}" y2="${py(f)}" stroke="#eee"/>`);
  }
  for (const [cond, pts] of Object.entries(curves) as Array<["manual" | "assisted", Array<[number, number]>]>) {
    parts.push(`<polyline fill="none" stroke="${colours[cond]}" stroke-width="2" points="${pts.map(([c, f]) => `${px(c).toFixed(1)},${py(f).toFixed(1)}`).join(" ")}"/>`);
  }
  parts.push(`<text x="${x0 + 220}" y="385" font-size="13" text-anchor="middle" font-family="sans-serif">clicks (0 … ${maxClicks}); F1 against the truth, mean of the images</text>`);
  parts.push(`<text x="${x0 + 300}" y="80" font-size="13" fill="${colours.assisted}" font-family="sans-serif">assisted</text><text x="${x0 + 300}" y="98" font-size="13" fill="${colours.manual}" font-family="sans-serif">manual</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${parts.join("")}</svg>`;
}

/** Mean F1 after c clicks over the runs (a run that has finished keeps its last F1). */
function meanCurve(runs: SimulatedCorrection[]): Array<[number, number]> {
  const maxClicks = Math.max(...runs.map((r) => r.curve[r.curve.length - 1]!.clicks));
  const step = Math.max(1, Math.ceil(maxClicks / 200));
  const out: Array<[number, number]> = [];
  for (let c = 0; c <= maxClicks; c += step) {
    out.push([c, mean(runs.map((r) => [...r.curve].reverse().find((p) => p.clicks <= c)!.f1))]);
  }
  return out;
}

async function main(): Promise<void> {
  const predictions = arg("predictions");
  if (!predictions) throw new Error("usage: correction_effort.ts --predictions DIR [--label TEXT] [--out FILE] [--limit N]");
  const chase = process.env.MEDLOOP_CHASE_DIR ?? path.resolve(import.meta.dirname, "../../shared/data/chase_db1");
  const out = arg("out") ?? path.resolve(import.meta.dirname, "results/correction_effort.json");
  const stems = (await readdir(predictions)).filter((f) => f.endsWith("_prob.png")).map((f) => f.slice(0, -"_prob.png".length)).sort();
  const chosen = stems.slice(0, Number(arg("limit") ?? stems.length));
  if (chosen.length === 0) throw new Error(`no <stem>_prob.png files in ${predictions}`);

  const runs: Record<Condition, SimulatedCorrection[]> = { scratch: [], manual: [], assisted: [] };
  const images: unknown[] = [];
  const times: Record<string, number[]> = { trace: [], grow: [], remove: [], rethreshold: [] };
  for (const stem of chosen) {
    const truth = prepareTruth(
      await readMask(path.join(chase, "masks_1stHO", `${stem}_1stHO.png`)),
      await readMask(path.join(chase, "masks_2ndHO", `${stem}_2ndHO.png`)),
    );
    const pred = await readMask(path.join(predictions, `${stem}.png`));
    const prob = await readProb(path.join(predictions, `${stem}_prob.png`));
    const row: Record<string, unknown> = { stem };
    for (const condition of CONDITIONS) {
      const run = simulateCorrection(condition, pred, truth, prob);
      runs[condition].push(run);
      row[condition] = {
        minutes: r3(effortMinutes(run.actions)),
        actions: run.actions.length,
        clicks: run.actions.reduce((n, a) => n + a.clicks, 0),
        f1_start: r3(run.f1Start),
        f1: r3(run.f1),
        tools: summariseActions(run.actions),
      };
    }
    for (const [tool, ms] of Object.entries(toolTimes(pred, prob, truth.skeleton))) times[tool]!.push(ms);
    images.push(row);
    process.stdout.write(`${stem}: ${CONDITIONS.map((c) => `${c} ${(row[c] as { minutes: number }).minutes} min`).join(", ")}\n`);
  }

  // Calibration: scratch minutes are linear in the steering constant k; the k that makes the mean
  // scratch image cost the published 36 minutes.
  const fixed = (a: Action) => actionSeconds(a, { ...EFFORT_CONSTANTS, steeringK: 0 });
  const steerUnits = (a: Action) => a.path_px / Math.max(a.width_px, EFFORT_CONSTANTS.minWidthPx);
  const scratchActions = runs.scratch.flatMap((r) => r.actions);
  const calibratedK = (PUBLISHED_SCRATCH_MINUTES * 60 * runs.scratch.length - scratchActions.reduce((s, a) => s + fixed(a), 0)) / scratchActions.reduce((s, a) => s + steerUnits(a), 0);

  const summarise = (rs: SimulatedCorrection[]) => ({
        minutes_mean: r3(mean(rs.map((r) => effortMinutes(r.actions)))),
        actions_mean: r3(mean(rs.map((r) => r.actions.length))),
        clicks_mean: r3(mean(rs.map((r) => r.actions.reduce((n, a) => n + a.clicks, 0)))),
        f1_start_mean: r3(mean(rs.map((r) => r.f1Start))),
        f1_mean: r3(mean(rs.map((r) => r.f1))),
        clicks_to_f1: Object.fromEntries(F1_MARKS.map((m) => {
          const reached = rs.map((r) => clicksTo(r, m)).filter((v): v is number => v !== null);
          return [m.toFixed(2), { images_reaching: reached.length, clicks_mean: reached.length ? r3(mean(reached)) : null }];
        })),
  });
  const summary = { scratch: summarise(runs.scratch), manual: summarise(runs.manual), assisted: summarise(runs.assisted) };
  const result = {
    benchmark: "correction_effort",
    label: arg("label") ?? "round-0 model (6 seed images, 5-minute budget)",
    images: chosen.length,
    effort_model: { ...EFFORT_CONSTANTS, calibrated_steering_k: r3(calibratedK) },
    conditions: summary,
    ratio_scratch_to_assisted: r3(summary.scratch.minutes_mean / summary.assisted.minutes_mean),
    ratio_scratch_to_manual: r3(summary.scratch.minutes_mean / summary.manual.minutes_mean),
    tool_response_ms: Object.fromEntries(Object.entries(times).map(([t, xs]) => [t, { median: r3(percentile(xs, 0.5)), max: r3(Math.max(...xs)) }])),
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? "unknown", load_1min: r3(os.loadavg()[0]!) },
    per_image: images,
  };
  await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
  const svg = chartSvg(summary, { manual: meanCurve(runs.manual), assisted: meanCurve(runs.assisted) }, `Correction effort, CHASE_DB1 test images (${result.label})`);
  await sharp(Buffer.from(svg)).png().toFile(out.replace(/\.json$/, ".png"));
  process.stdout.write(`${JSON.stringify({ ...result, per_image: undefined }, null, 2)}\n`);
  if (Math.abs(calibratedK - EFFORT_CONSTANTS.steeringK) > 0.01 * calibratedK) {
    process.stdout.write(`note: EFFORT_CONSTANTS.steeringK is ${EFFORT_CONSTANTS.steeringK}; these images calibrate it to ${calibratedK.toFixed(4)}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`correction_effort: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
