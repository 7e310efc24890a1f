// `medloop simulate chase [--mode rounds|continuous] [--rounds N] [--k K] [--strategy S] [--out DIR]`:
// a whole campaign on CHASE_DB1 without people. Through the public HTTP API of a running stack
// (or one started here): create a project, upload the images, start the campaign, and
// play the doctors, who answer every task with the 1stHO truth mask and report the time the
// action-level effort model gives the simulated doctor's actions with the editor's tools
// (services/simulate/doctors.ts; the pixel-count model's minutes beside them, labelled).
// The doctors work one task at a time at a stated pace; in continuous mode each one pulls the
// next image when free. The run's timeline (answers, published models) gives the learning
// figures (services/simulate/learning.ts: doctor-minutes to test F1 0.80, first useful
// pre-annotation). Writes campaign-report.json and campaign-report.png.
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { appendFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadConfig } from "../../services/config.js";
import { chaseRole, type ImageRole } from "../../services/images.js";
import { DEMO_PASSWORD } from "../../services/users.js";
import { chartPng } from "../../services/simulate/chart.js";
import { ApiError, MedloopClient } from "../../services/simulate/client.js";
import type { QualityReport } from "../../services/qualityReport.js";
import { calibrate, decodeGrey, PacedDoctors, type GreyMask } from "../../services/simulate/doctors.js";
import { learningFigures, type AnswerEvent, type LearningFigures, type ModelEvent } from "../../services/simulate/learning.js";
import { buildReport, roundMetric, type CampaignReport, type SimulatedAnswer } from "../../services/simulate/report.js";
import { DEFAULT_TIME_MODEL } from "../../services/simulate/timeModel.js";
import { connectTemporal } from "../../services/temporal.js";
import { trainerUpdateOverheads, type UpdateOverhead } from "../../services/workflowTiming.js";
import { runningStack, startStack, type Stack } from "../../stack/stack.js";
import { trainerWorkflowId } from "../../workflows/types.js";
import { guard, intOption, parse, UsageError } from "../args.js";

export const summary = "run a whole campaign on CHASE_DB1 with simulated doctors; writes a report and a chart";

const usage = `usage: medloop simulate chase [--mode rounds|continuous] [--rounds N] [--k K] [--strategy uncertainty|diverse|random]
                              [--labels N] [--pace S] [--seeds N] [--seed N] [--out DIR]
                              [--train-minutes M] [--crop-size N] [--data DIR]
                              [--annotators 1|2] [--consensus staple|majority] [--honeypots N] [--review]
  --mode M            rounds (default): K corrections per round; continuous: the model retrains after
                      every correction while each doctor pulls the next image
  --rounds N          rounds: models to train, the seed model included (default 3)
  --k K               rounds: images corrected per round (default 2)
  --labels N          continuous: images the doctors pull at most (default (rounds - 1) x k, as many as rounds)
  --pace S            seconds a simulated doctor takes per image, one at a time (default 0)
  --seeds N           seed images to annotate, the first N of CHASE_DB1's six (the others join the pool; default 6)
  --seed N            the campaign's random seed (augmentation, random strategy; default 1)
  --strategy S        uncertainty (default), diverse (uncertainty with a diversity term) or random (the control)
  --out DIR           where campaign-report.json and campaign-report.png go (default runs/simulate-<time>)
  --train-minutes M   training budget per round (default 2)
  --crop-size N       size of the augmentation's random crops (default 448: 6 seeds x 4 flips x 11 crops)
  --data DIR          the running stack's data folder (default .data); with no stack running there,
                      one is started in a temporary folder for the run and stopped afterwards
  --annotators N      doctors per seed image (default 1); with 2, doctor 1 answers every task with the
                      1stHO masks and doctor 2 with the 2ndHO masks, so their agreement is the observers'
  --consensus M       how several masks of an image become one: staple (default) or majority
  --honeypots N       rounds: test images per round mixed into the corrections and scored (default 0)
  --review            a simulated reviewer accepts every submitted mask (the review step runs)`;

const DOCTORS = ["doctor1@medloop.local", "doctor2@medloop.local"];

const TIME_MODEL_TEXT =
  "action-level effort model (services/correction/effort.ts, docs/effort-model.md): the simulated doctor draws seeds " +
  "from scratch and corrects predictions with the editor's assisted tools (services/simulate/correctionDoctor.ts); " +
  "pixel_model: the superseded pixel-count model, scratch = " +
  `${DEFAULT_TIME_MODEL.scratchMinutesAverage} min x vessel pixels / mean vessel pixels, correction = ` +
  `${DEFAULT_TIME_MODEL.correctionFixedMinutes} min + pixels changed x ` +
  `${DEFAULT_TIME_MODEL.correctionGoodMinutes - DEFAULT_TIME_MODEL.correctionFixedMinutes} min / ` +
  `(${DEFAULT_TIME_MODEL.goodChangedFraction} x mean vessel pixels) (services/simulate/timeModel.ts)`;

interface Options {
  mode: "rounds" | "continuous";
  labels: number;
  paceSeconds: number;
  seeds: number;
  seed: number;
  rounds: number;
  k: number;
  strategy: "uncertainty" | "diverse" | "random";
  outDir: string;
  trainMinutes: number;
  cropSize: number;
  data: string | undefined;
  annotators: number;
  consensus: "staple" | "majority";
  honeypots: number;
  review: boolean;
}

function parseOptions(argv: string[]): Options | null {
  const { values, positionals } = parse(
    argv,
    {
      rounds: { type: "string" },
      k: { type: "string" },
      strategy: { type: "string" },
      mode: { type: "string" },
      labels: { type: "string" },
      pace: { type: "string" },
      seeds: { type: "string" },
      seed: { type: "string" },
      out: { type: "string" },
      "train-minutes": { type: "string" },
      "crop-size": { type: "string" },
      data: { type: "string" },
      annotators: { type: "string" },
      consensus: { type: "string" },
      honeypots: { type: "string" },
      review: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    true,
  );
  if (values.help) return null;
  if (positionals.length !== 1 || positionals[0] !== "chase") throw new UsageError("the data set to simulate must be given: chase");
  const strategy = values.strategy ?? "uncertainty";
  if (strategy !== "uncertainty" && strategy !== "diverse" && strategy !== "random") {
    throw new UsageError(`--strategy must be uncertainty, diverse or random, got "${strategy}"`);
  }
  const minutes = Number(values["train-minutes"] ?? 2);
  if (!(minutes > 0)) throw new UsageError(`--train-minutes must be a positive number, got "${values["train-minutes"]}"`);
  const mode = values.mode ?? "rounds";
  if (mode !== "rounds" && mode !== "continuous") throw new UsageError(`--mode must be rounds or continuous, got "${mode}"`);
  const pace = Number(values.pace ?? 0);
  if (!(pace >= 0)) throw new UsageError(`--pace must be a number of seconds >= 0, got "${values.pace}"`);
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
  const rounds = intOption("--rounds", values.rounds, 3);
  const k = intOption("--k", values.k, 2);
  const seeds = intOption("--seeds", values.seeds, 6);
  if (seeds > 6) throw new UsageError(`--seeds must be at most 6 (CHASE_DB1's seed images), got ${seeds}`);
  const annotators = intOption("--annotators", values.annotators, 1);
  if (annotators > 2) throw new UsageError(`--annotators must be 1 or 2 (CHASE_DB1 has two observers), got ${annotators}`);
  const consensus = values.consensus ?? "staple";
  if (consensus !== "staple" && consensus !== "majority") throw new UsageError(`--consensus must be staple or majority, got "${consensus}"`);
  return {
    mode,
    labels: intOption("--labels", values.labels, Math.max(1, (rounds - 1) * k)),
    paceSeconds: pace,
    seeds,
    seed: intOption("--seed", values.seed, 1, 0),
    rounds,
    k,
    strategy,
    outDir: path.resolve(values.out ?? path.join("runs", `simulate-${stamp}`)),
    trainMinutes: minutes,
    cropSize: intOption("--crop-size", values["crop-size"], 448, 16),
    data: values.data,
    annotators,
    consensus,
    honeypots: intOption("--honeypots", values.honeypots, 0, 0),
    review: values.review ?? false,
  };
}

export async function run(argv: string[]): Promise<number> {
  return guard("simulate", usage, async () => {
    const options = parseOptions(argv);
    if (!options) {
      console.log(usage);
      return 0;
    }
    const chaseDir = loadConfig().chaseDir;
    const chase = await chaseFiles(chaseDir);
    await mkdir(options.outDir, { recursive: true });
    const interrupted = new AbortController();
    const onSignal = () => interrupted.abort();
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    let ownStack: Stack | null = null;
    let finished = false;
    try {
      const { apiUrl, temporalAddress, stack } = await findOrStartStack(options, interrupted.signal);
      ownStack = stack;
      const report = await simulate(apiUrl, chaseDir, chase, options, interrupted.signal);
      if (report.mode === "continuous") report.orchestration = await trainerOverhead(temporalAddress, report.campaign_id);
      await writeOutputs(report, options.outDir);
      printReport(report, options.outDir);
      finished = true;
      return 0;
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      if (ownStack) {
        console.log("stopping the stack started for this run…");
        await ownStack.stop();
        // A finished run's temporary stack is of no further use; an unfinished one can be
        // resumed with medloop start --data <folder>.
        if (finished) await rm(ownStack.dataDir, { recursive: true, force: true });
        else console.log(`its state stays in ${ownStack.dataDir} (medloop start --data ${ownStack.dataDir} resumes it)`);
      }
    }
  });
}

/** CHASE_DB1's image files and their 1stHO masks, checked before anything is created. */
async function chaseFiles(chaseDir: string): Promise<string[]> {
  const images = await readdir(path.join(chaseDir, "images")).catch(() => {
    throw new Error(`CHASE_DB1 not found at ${chaseDir} (set MEDLOOP_CHASE_DIR)`);
  });
  const files = images.filter((f) => /^Image_\d+[LR]\.(jpg|png)$/i.test(f)).sort();
  if (files.length === 0) throw new Error(`no CHASE_DB1 images in ${path.join(chaseDir, "images")}`);
  return files;
}

async function findOrStartStack(options: Options, signal: AbortSignal): Promise<{ apiUrl: string; temporalAddress: string; stack: Stack | null }> {
  const dataDir = options.data ? path.resolve(options.data) : loadConfig().dataDir;
  const running = await runningStack(dataDir);
  if (running) {
    console.log(`using the stack running on ${dataDir}: ${running.apiUrl}`);
    return { apiUrl: running.apiUrl, temporalAddress: running.temporalAddress, stack: null };
  }
  const tempData = await mkdtemp(path.join(os.tmpdir(), "medloop-simulate-"));
  // The embedded PostgreSQL may run as another OS user (when we are root); it must enter the folder.
  await chmod(tempData, 0o711);
  const logFile = path.join(options.outDir, "stack.log");
  console.log(`no stack runs on ${dataDir}; starting one in ${tempData} (its log: ${logFile})`);
  const stack = await startStack({ dataDir: tempData, port: 0, temporalPort: 0, demoProject: false, signal, log: (line) => appendFileSync(logFile, `${line}\n`) });
  return { apiUrl: stack.apiUrl, temporalAddress: stack.temporalAddress, stack };
}

/** Seeds beyond the first `seeds` of CHASE_DB1's six join the pool (fewer seeds: a colder start). */
function roleOf(name: string, seedNames: string[], seeds: number): ImageRole {
  const role = chaseRole(name);
  return role === "seed" && seedNames.indexOf(name) >= seeds ? "pool" : role;
}

async function simulate(apiUrl: string, chaseDir: string, files: string[], options: Options, signal: AbortSignal): Promise<SimulationReport> {
  const lead = await new MedloopClient(apiUrl).login("lead@medloop.local", DEMO_PASSWORD);
  const doctors = await Promise.all(DOCTORS.map((email) => new MedloopClient(apiUrl).login(email, DEMO_PASSWORD)));
  const reviewer = options.review ? await new MedloopClient(apiUrl).login("reviewer@medloop.local", DEMO_PASSWORD) : null;
  const truth = new Map<string, GreyMask>();
  const second = new Map<string, GreyMask>();
  const project = await lead.createProject(`chase-simulation-${Date.now()}`, "CHASE_DB1, simulated doctors (medloop simulate)");
  const seedNames = files.map((f) => path.parse(f).name).filter((n) => chaseRole(n) === "seed");
  console.log(`project ${project.id}: uploading ${files.length} CHASE_DB1 images…`);
  for (const file of files) {
    const name = path.parse(file).name;
    const mask = await readFile(path.join(chaseDir, "masks_1stHO", `${name}_1stHO.png`));
    truth.set(name, await decodeGrey(mask));
    second.set(name, await decodeGrey(await readFile(path.join(chaseDir, "masks_2ndHO", `${name}_2ndHO.png`))));
    const role = roleOf(name, seedNames, options.seeds);
    // Only the test images carry their reference mask: seeds and pool are the doctors' work.
    await lead.uploadImage(project.id, { name, role, image: await readFile(path.join(chaseDir, "images", file)), filename: file, ...(role === "test" ? { mask } : {}) });
  }
  const calibration = await calibrate(async (name) => truth.get(name)!, [...truth.keys()]);
  const continuous = options.mode === "continuous";
  const campaign = await lead.startCampaign(project.id, `simulated ${options.mode} ${options.strategy}${continuous ? ` labels=${options.labels}` : ` k=${options.k}`}`, {
    mode: options.mode,
    ...(continuous ? { labelBudget: options.labels } : { k: options.k, maxRounds: options.rounds }),
    strategy: options.strategy,
    seed: options.seed,
    targetF1: 1,
    // The published recipe: every seed flipped 4 ways and cropped 11 times (6 -> 264 examples).
    augmentation: {
      seed: 7 + options.seed,
      steps: [
        { op: "flip", modes: ["none", "h", "v", "hv"] },
        { op: "random_crop", size: [options.cropSize, options.cropSize], count: 11 },
      ],
    },
    // The threshold is chosen on the labelled images themselves (val), not on every
    // augmented crop: the latter predicts hundreds of crops after each training run.
    train: { minutes: options.trainMinutes, threshold_on: "val", seed: options.seed },
    // Quality control: several doctors per seed image, honeypots, review (issue 14).
    ...(options.annotators > 1 ? { annotatorsPerSeed: options.annotators, consensus: options.consensus } : {}),
    ...(options.honeypots > 0 ? { honeypotsPerRound: options.honeypots } : {}),
    ...(options.review ? { review: true } : {}),
  });
  console.log(`campaign ${campaign.id} started (${continuous ? `continuous, ${options.labels} images to pull` : `${options.rounds} rounds, k=${options.k}`}, ${options.strategy}, doctors' pace ${options.paceSeconds} s)`);
  const started = Date.now();
  const seconds = () => (Date.now() - started) / 1000;
  const answers: SimulatedAnswer[] = [];
  const answerEvents: AnswerEvent[] = [];
  const modelEvents = new Map<number, ModelEvent>();
  // Models are noted before every answer (and every pass): an answer counts as given before a
  // model only when it went in before the model was seen published.
  const noteModels = async () => {
    for (const r of await lead.rounds(campaign.id)) {
      const f1 = roundMetric(r.metrics, "f1");
      if (r.model_id === null || f1 === null || modelEvents.has(r.round)) continue;
      const labelled = r.metrics.labelled_images;
      modelEvents.set(r.round, { version: r.round, atS: seconds(), testF1: f1, labelledImages: typeof labelled === "number" ? labelled : null });
    }
  };
  const paced = new PacedDoctors({
    doctors,
    campaignId: campaign.id,
    truth: async (name) => truth.get(name)!,
    secondOpinion: async (name) => second.get(name)!,
    // Two annotators: each doctor is one of CHASE_DB1's observers.
    ...(options.annotators > 1
      ? { truthOf: (doctor: MedloopClient) => async (name: string) => (doctor === doctors[1] ? second : truth).get(name)! }
      : {}),
    calibration,
    paceMs: options.paceSeconds * 1000,
    pull: continuous,
    beforeAnswer: noteModels,
    onAnswer: (answer) => answerEvents.push({ atS: seconds(), kind: answer.kind, minutes: answer.minutesSpent }),
  });
  let lastLine = "";
  for (;;) {
    if (signal.aborted) throw new Error(`interrupted; campaign ${campaign.id} keeps its state (medloop status ${campaign.id})`);
    answers.push(...(await paced.pass()));
    if (options.review) await reviewAll(reviewer!, campaign.id);
    await noteModels();
    const row = await lead.getCampaign(campaign.id);
    const status = row.state === "running" ? await lead.campaignStatus(campaign.id).catch(() => null) : null;
    const line = `model ${row.round}: ${row.state}${status ? `, ${String(status.phase)}` : ""}, ${answers.length} task(s) answered`;
    if (line !== lastLine) console.log(line);
    lastLine = line;
    if (row.state === "failed") throw new Error(`campaign ${campaign.id} failed; see the worker logs`);
    if (row.state === "completed" || row.state === "stopped") break;
    await new Promise((r) => setTimeout(r, 2000));
  }
  const rounds = await lead.rounds(campaign.id);
  const metrics = rounds.map((r) => ({ round: r.round, f1: roundMetric(r.metrics, "f1"), auc: roundMetric(r.metrics, "auc") }));
  const live = (await lead.live(campaign.id)).filter((p) => p.round !== null).map((p) => ({ version: p.round as number, corrections: p.corrections, f1: p.f1_mean }));
  return {
    ...buildReport(String(campaign.id), options.strategy, options.k, TIME_MODEL_TEXT, metrics, answers),
    mode: options.mode,
    pace_seconds: options.paceSeconds,
    seeds: options.seeds,
    seed: options.seed,
    train_minutes: options.trainMinutes,
    ...(continuous ? { label_budget: options.labels } : {}),
    learning: learningFigures(answerEvents, [...modelEvents.values()], live, seconds()),
    ...(options.annotators > 1 || options.honeypots > 0 || options.review
      ? { quality_control: { annotators: options.annotators, consensus: options.consensus, honeypots: options.honeypots, review: options.review, report: await lead.quality(campaign.id) } }
      : {}),
  };
}

/** The simulated reviewer: accepts every mask waiting for review in the campaign (30 s each, simulated). */
async function reviewAll(reviewer: MedloopClient, campaignId: number): Promise<void> {
  for (const r of await reviewer.pendingReviews(campaignId)) {
    await reviewer.decideReview(r.id, { decision: "accept", active_ms: 30_000, decision_id: `simulated-review-${r.id}` }).catch((err: unknown) => {
      // 409: decided meanwhile; 503: stored, the next pass tells the workflow again (same decision id).
      if (!(err instanceof ApiError && (err.status === 409 || err.status === 503))) throw err;
    });
  }
}

/**
 * The continuous campaign's model updates as its trainer's history records them: each update's
 * wall time, the time its activities ran, and the rest (Temporal's and the workflows' own cost).
 */
async function trainerOverhead(temporalAddress: string, campaignId: string): Promise<SimulationReport["orchestration"]> {
  const client = await connectTemporal(temporalAddress);
  try {
    const history = await client.workflow.getHandle(trainerWorkflowId(campaignId)).fetchHistory();
    const updates = trainerUpdateOverheads(history.events ?? []);
    const percents = updates.map((u) => u.overhead_percent);
    return {
      updates,
      overhead_percent_mean: percents.length ? Math.round((100 * percents.reduce((a, b) => a + b, 0)) / percents.length) / 100 : null,
      overhead_percent_max: percents.length ? Math.max(...percents) : null,
    };
  } finally {
    await client.connection.close();
  }
}

/** The campaign report with the run's settings and its learning figures. */
interface SimulationReport extends CampaignReport {
  mode: "rounds" | "continuous";
  pace_seconds: number;
  seeds: number;
  seed: number;
  train_minutes: number;
  label_budget?: number;
  learning: LearningFigures;
  /** Quality control settings and the campaign's quality report (consensus, agreement, reviews, honeypots). */
  quality_control?: { annotators: number; consensus: string; honeypots: number; review: boolean; report: QualityReport };
  /** Continuous mode: the trainer's updates and their orchestration overhead (services/workflowTiming.ts). */
  orchestration?: { updates: UpdateOverhead[]; overhead_percent_mean: number | null; overhead_percent_max: number | null };
}

async function writeOutputs(report: SimulationReport, outDir: string): Promise<void> {
  await writeFile(path.join(outDir, "campaign-report.json"), `${JSON.stringify(report, null, 2)}\n`);
  const title = `CHASE_DB1, simulated doctors: ${report.strategy}, k=${report.k}`;
  await writeFile(path.join(outDir, "campaign-report.png"), await chartPng(report.rounds, title));
}

function printReport(report: CampaignReport, outDir: string): void {
  const fmt = (v: number | null, digits = 3) => (v === null ? "-" : v.toFixed(digits));
  console.log("\nround  F1     AUC    corrected  scratch min  correcting min  savings   (times simulated)");
  for (const r of report.rounds) {
    console.log(
      `${String(r.round).padEnd(6)} ${fmt(r.f1).padEnd(6)} ${fmt(r.auc).padEnd(6)} ${String(r.images_corrected).padEnd(10)} ` +
        `${fmt(r.simulated_minutes_scratch, 1).padEnd(12)} ${fmt(r.simulated_minutes_correction, 1).padEnd(15)} ` +
        `${r.savings_percent === null ? "-" : `${r.savings_percent.toFixed(0)}%`}`,
    );
  }
  const t = report.totals;
  console.log(
    `total: ${t.images_corrected} images corrected in ${t.simulated_minutes_correction.toFixed(1)} simulated minutes ` +
      `instead of ${t.simulated_minutes_scratch.toFixed(1)} from scratch (saved ${t.savings_minutes.toFixed(1)} min` +
      `${t.savings_percent === null ? "" : `, ${t.savings_percent.toFixed(0)}%`}); seeds drawn from scratch: ${t.seed_minutes_scratch.toFixed(1)} min`,
  );
  const q = (report as SimulationReport).quality_control?.report;
  if (q) {
    console.log(`agreement between annotators: Dice ${fmt(q.agreement.dice_mean)}, clDice ${fmt(q.agreement.cldice_mean)} over ${q.agreement.pairs} pair(s)`);
    for (const c of q.consensus) {
      const who = c.annotators.map((a) => `${a.annotator_name} sens ${fmt(a.sensitivity)} spec ${fmt(a.specificity)}`).join("; ");
      console.log(`  ${c.image_name} (${c.method}): ${who}`);
    }
    for (const d of q.honeypots.by_doctor) console.log(`honeypots ${d.doctor_name}: ${d.honeypots}, mean Dice ${fmt(d.dice_mean)}`);
    for (const r of q.reviews) console.log(`reviews ${r.doctor_name}: ${r.accepted} accepted, ${r.returned} returned`);
  }
  console.log(`wrote ${path.join(outDir, "campaign-report.json")} and campaign-report.png`);
}
