// Continuous learning against rounds on CHASE_DB1 with simulated doctors (issue 13): for each
// mode (rounds, continuous), strategy and seed, one `medloop simulate chase` run (its own embedded
// stack, the real Python worker), then per mode and strategy the doctor-minutes and wall-clock to
// test F1 0.80, the first useful pre-annotation (live F1 >= 0.70 against the doctor's final mask),
// and the learning curve, with bootstrap 95% intervals over the seeds.
//
//   npx tsx benchmarks/continuous_learning.ts [--modes rounds,continuous] [--strategies diverse,random]
//       [--seeds-list 1,2,3] [--seeds 6] [--train-minutes 2] [--pace 60] [--rounds 4] [--k 2] [--labels N]
//       [--out benchmarks/results/continuous_learning.json] [--runs DIR] [--from-runs]
//
// --from-runs aggregates the reports an earlier invocation left under --runs instead of simulating.
//
// Both modes label the same number of images: rounds (rounds - 1) x k corrections, continuous
// --labels pulls (default the same). The doctors work one image at a time at --pace seconds each.
// Writes the JSON (per mode and strategy `doctor_minutes_to_f1_080`, `first_useful_after_images`,
// with intervals, and every run's figures) and a chart of test F1 against doctor-minutes beside it.
import { spawn } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { mulberry32 } from "../activities/random.js";
import type { LearningFigures } from "../services/simulate/learning.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] as string) : fallback;
}
const list = (s: string) => s.split(",").map((x) => x.trim()).filter(Boolean);

const modes = list(arg("modes", "rounds,continuous"));
const strategies = list(arg("strategies", "diverse,random"));
const seedsList = list(arg("seeds-list", "1,2,3")).map(Number);
const settings = {
  seed_images: Number(arg("seeds", "6")),
  train_minutes: Number(arg("train-minutes", "2")),
  pace_seconds: Number(arg("pace", "60")),
  rounds: Number(arg("rounds", "4")),
  k: Number(arg("k", "2")),
};
const labels = Number(arg("labels", String((settings.rounds - 1) * settings.k)));
const out = path.resolve(arg("out", "benchmarks/results/continuous_learning.json"));
const runsDir = path.resolve(arg("runs", "runs/continuous-learning"));
const fromRuns = process.argv.includes("--from-runs");

interface RunReport {
  mode: string;
  strategy: string;
  seed: number;
  learning: LearningFigures;
  totals: { images_corrected: number };
  orchestration?: { overhead_percent_mean: number | null; overhead_percent_max: number | null; updates: unknown[] };
}

const runDir = (mode: string, strategy: string, seed: number) => path.join(runsDir, `${mode}-${strategy}-seed${seed}`);

async function readRun(mode: string, strategy: string, seed: number): Promise<RunReport> {
  return { ...JSON.parse(await readFile(path.join(runDir(mode, strategy, seed), "campaign-report.json"), "utf8")), seed };
}

function simulateOnce(mode: string, strategy: string, seed: number): Promise<RunReport> {
  const dir = runDir(mode, strategy, seed);
  const args = [
    "bin/medloop.mjs", "simulate", "chase", "--mode", mode, "--strategy", strategy, "--seed", String(seed),
    "--seeds", String(settings.seed_images), "--train-minutes", String(settings.train_minutes), "--pace", String(settings.pace_seconds),
    "--rounds", String(settings.rounds), "--k", String(settings.k), "--labels", String(labels), "--out", dir,
    // A data folder of its own: never the stack a developer has running.
    "--data", path.join(os.tmpdir(), `medloop-bench-none-${process.pid}`),
  ];
  console.log(`==> ${mode} ${strategy} seed ${seed}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "inherit", "inherit"] });
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`medloop simulate exited with ${code} (${mode} ${strategy} seed ${seed})`));
      readRun(mode, strategy, seed).then(resolve, reject);
    });
  });
}

/** Mean and percentile bootstrap 95% interval of the mean (2000 resamples, seeded). */
function bootstrap(values: number[], seed = 13): { mean: number | null; ci95: [number, number] | null; n: number } {
  if (values.length === 0) return { mean: null, ci95: null, n: 0 };
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  const random = mulberry32(seed);
  const means: number[] = [];
  for (let b = 0; b < 2000; b++) {
    let s = 0;
    for (let i = 0; i < values.length; i++) s += values[Math.floor(random() * values.length)]!;
    means.push(s / values.length);
  }
  means.sort((a, b) => a - b);
  const r = (v: number) => Math.round(v * 100) / 100;
  return { mean: r(mean), ci95: [r(means[Math.floor(0.025 * means.length)]!), r(means[Math.ceil(0.975 * means.length) - 1]!)], n: values.length };
}

function summarise(runs: RunReport[]) {
  const of = (f: (l: LearningFigures) => number | null) => runs.map((r) => f(r.learning)).filter((v): v is number => v !== null);
  return {
    runs: runs.length,
    reached_f1_080: of((l) => l.doctor_minutes_to_f1_080).length,
    doctor_minutes_to_f1_080: bootstrap(of((l) => l.doctor_minutes_to_f1_080)),
    /** Every run: a run that never reached F1 0.80 counts all its doctor-minutes (a lower bound of what it would need). */
    doctor_minutes_to_f1_080_lower_bound: bootstrap(of((l) => l.doctor_minutes_to_f1_080 ?? l.doctor_minutes_total)),
    wall_seconds_to_f1_080: bootstrap(of((l) => l.wall_seconds_to_f1_080)),
    first_useful_after_images: bootstrap(of((l) => l.first_useful_after_images)),
    best_test_f1: bootstrap(of((l) => l.best_test_f1)),
    doctor_minutes_total: bootstrap(of((l) => l.doctor_minutes_total)),
    wall_seconds_total: bootstrap(of((l) => l.wall_seconds_total)),
    /** Continuous mode: per run the mean share of a model update's wall time in which no activity ran. */
    orchestration_overhead_percent: bootstrap(runs.map((r) => r.orchestration?.overhead_percent_mean).filter((v): v is number => typeof v === "number")),
  };
}

const COLOURS: Record<string, string> = { rounds: "#1f77b4", continuous: "#d62728" };

/** Test F1 against cumulative doctor-minutes, one line per run (solid: first strategy, dashed: the others). */
function chartSvg(runs: RunReport[]): string {
  const W = 760, H = 420, L = 60, R = 150, T = 40, B = 50;
  const points = runs.flatMap((r) => r.learning.curve.filter((c) => c.test_f1 !== null));
  const maxX = Math.max(1, ...points.map((p) => p.doctor_minutes));
  const f1s = points.map((p) => p.test_f1 as number);
  const [y0, y1] = [Math.min(0.6, ...f1s), Math.max(0.85, ...f1s)];
  const x = (v: number) => L + ((W - L - R) * v) / maxX;
  const y = (v: number) => T + (H - T - B) * (1 - (v - y0) / (y1 - y0));
  const lines = runs.map((r) => {
    const pts = r.learning.curve.filter((c) => c.test_f1 !== null).map((c) => `${x(c.doctor_minutes).toFixed(1)},${y(c.test_f1 as number).toFixed(1)}`);
    const dash = r.strategy === strategies[0] ? "" : ' stroke-dasharray="6 4"';
    return `<polyline fill="none" stroke="${COLOURS[r.mode] ?? "#555"}" stroke-width="1.5"${dash} points="${pts.join(" ")}"/>`;
  });
  const target = `<line x1="${L}" x2="${W - R}" y1="${y(0.8)}" y2="${y(0.8)}" stroke="#999" stroke-dasharray="2 3"/><text x="${W - R + 4}" y="${y(0.8) + 4}" font-size="11">F1 0.80</text>`;
  const legend = modes.flatMap((m, i) => strategies.map((s, j) => {
    const yy = T + 16 * (i * strategies.length + j);
    return `<line x1="${W - R + 10}" x2="${W - R + 34}" y1="${yy}" y2="${yy}" stroke="${COLOURS[m] ?? "#555"}"${j ? ' stroke-dasharray="6 4"' : ""}/><text x="${W - R + 38}" y="${yy + 4}" font-size="11">${m}, ${s}</text>`;
  }));
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((t) => `<text x="${x(t * maxX)}" y="${H - B + 16}" font-size="11" text-anchor="middle">${Math.round(t * maxX)}</text>`);
  const yticks = [y0, (y0 + y1) / 2, y1].map((v) => `<text x="${L - 6}" y="${y(v) + 4}" font-size="11" text-anchor="end">${v.toFixed(2)}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}"><rect width="100%" height="100%" fill="white"/>
<text x="${L}" y="22" font-size="14">CHASE_DB1, simulated doctors: test F1 of each published model against doctor-minutes spent</text>
<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#ccc"/>${target}${lines.join("")}${legend.join("")}${ticks.join("")}${yticks.join("")}
<text x="${(L + W - R) / 2}" y="${H - 12}" font-size="12" text-anchor="middle">doctor-minutes (action-level effort model, seeds included)</text></svg>`;
}

/** Writes the JSON and the chart from the runs so far (after every run: an interrupted benchmark keeps what it measured). */
async function writeResults(runs: RunReport[], startedMs: number, loadBefore: number, complete: boolean): Promise<unknown> {
  const groups = modes.flatMap((mode) => strategies.map((strategy) => ({ mode, strategy, ...summarise(runs.filter((r) => r.mode === mode && r.strategy === strategy)) })));
  const result = {
    benchmark: "continuous_learning",
    date: new Date().toISOString(),
    complete,
    machine: `${os.cpus().length} cores, ${os.cpus()[0]?.model ?? "unknown CPU"}, load before ${loadBefore.toFixed(2)}`,
    wall_seconds: Math.round((Date.now() - startedMs) / 1000),
    settings: { ...settings, labels, modes, strategies, seeds: seedsList, doctors: 2 },
    definitions: {
      doctor_minutes_to_f1_080: "doctor-minutes (action-level effort model, seed annotations included) submitted before the first model with test F1 >= 0.80 was published; runs that never reached it are left out (reached_f1_080 counts those that did)",
      first_useful_after_images: "labelled images behind the first model version whose corrected predictions reached live F1 >= 0.70 against the doctors' final masks",
      ci95: "percentile bootstrap of the mean over the seeds (2000 resamples)",
    },
    groups,
    runs: runs.map((r) => ({ mode: r.mode, strategy: r.strategy, seed: r.seed, images_corrected: r.totals.images_corrected, ...r.learning, orchestration: r.orchestration ?? null })),
  };
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
  if (runs.length) await writeFile(out.replace(/\.json$/, ".png"), await sharp(Buffer.from(chartSvg(runs))).png().toBuffer());
  return groups;
}

async function main(): Promise<void> {
  await mkdir(runsDir, { recursive: true });
  const started = Date.now();
  const loadBefore = os.loadavg()[0] ?? 0;
  const runs: RunReport[] = [];
  // Seeds outermost: an interrupted benchmark has every mode and strategy for the seeds it finished.
  for (const seed of seedsList) {
    for (const strategy of strategies) {
      for (const mode of modes) {
        runs.push(fromRuns ? await readRun(mode, strategy, seed) : await simulateOnce(mode, strategy, seed));
        await writeResults(runs, started, loadBefore, false);
      }
    }
  }
  console.log(JSON.stringify(await writeResults(runs, started, loadBefore, true), null, 2));
  console.log(`wrote ${out}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
