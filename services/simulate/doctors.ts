// Simulated doctors: log in through the public API, take the open tasks of a campaign
// from their inboxes and answer each with the truth mask. The time a real doctor would have
// spent comes from the action-level effort model (services/correction/effort.ts) applied to the
// actions of the simulated doctor who corrects with the editor's real tools
// (services/simulate/correctionDoctor.ts): it draws an annotation task from scratch, corrects a
// correction task's prediction with the assisted tools (using the task's probability map), and
// the actions are sent with the submission (flagged `simulated`). The pixel-count model's minutes
// (services/simulate/timeModel.ts) are kept beside them, labelled, for old figures.
//
// The stored mask is the truth, as before: the loop's training data stays the reference masks,
// and the action list priced is that of a correction reaching the stopping rule of
// correctionDoctor.ts (its F1 against the truth is reported with each answer).
import sharp from "sharp";
import type { ProbabilityMap } from "../correction/assist.js";
import { effortMinutes } from "../correction/effort.js";
import type { Mask } from "../correction/raster.js";
import { ApiError, type ApiTask, type MedloopClient } from "./client.js";
import { prepareTruth, simulateCorrection, type SimulatedCorrection } from "./correctionDoctor.js";
import type { SimulatedAnswer } from "./report.js";
import { changedPixels, correctionMinutes, foregroundPixels, scratchMinutes, type Calibration } from "./timeModel.js";

export interface GreyMask {
  data: Uint8Array;
  width: number;
  height: number;
}

/** Decodes a mask PNG to one 0/255 channel. */
export async function decodeGrey(png: Buffer): Promise<GreyMask> {
  const { data, info } = await sharp(png).greyscale().raw().toBuffer({ resolveWithObject: true });
  const out = new Uint8Array(info.width * info.height);
  for (let i = 0; i < out.length; i++) out[i] = data[i * info.channels]! > 127 ? 255 : 0;
  return { data: out, width: info.width, height: info.height };
}

export async function encodeGrey(mask: GreyMask): Promise<Buffer> {
  return sharp(Buffer.from(mask.data), { raw: { width: mask.width, height: mask.height, channels: 1 } }).png().toBuffer();
}

/** The truth masks by image name (CHASE_DB1: the 1stHO masks). */
export type TruthSource = (imageName: string) => Promise<GreyMask>;

export async function calibrate(truth: TruthSource, imageNames: string[]): Promise<Calibration> {
  let total = 0;
  for (const name of imageNames) total += foregroundPixels((await truth(name)).data);
  return { meanVesselPixels: total / Math.max(1, imageNames.length) };
}

export interface DoctorsOptions {
  doctors: MedloopClient[];
  campaignId: number;
  truth: TruthSource;
  /** A second expert's masks (CHASE_DB1: 2ndHO): only errors both experts see are corrected. */
  secondOpinion?: TruthSource;
  /**
   * Each doctor's own expert masks, where doctors differ (CHASE_DB1: doctor 1 answers with the
   * 1stHO masks, doctor 2 with the 2ndHO masks, for several annotators per image); absent: `truth`.
   */
  truthOf?: (doctor: MedloopClient) => TruthSource;
  calibration: Calibration;
  onAnswer?: (answer: SimulatedAnswer, task: ApiTask) => void;
}

/** One pass over every doctor's inbox; returns the answers submitted in this pass. */
export async function answerOpenTasks(options: DoctorsOptions): Promise<SimulatedAnswer[]> {
  const answers: SimulatedAnswer[] = [];
  for (const doctor of options.doctors) {
    const open = (await doctor.myTasks("open")).filter((t) => t.campaign_id === options.campaignId);
    for (const task of open) {
      const answer = await answerTask(doctor, task, options);
      if (answer) {
        answers.push(answer);
        options.onAnswer?.(answer, task);
      }
    }
  }
  return answers;
}

function binary(mask: GreyMask): Mask {
  return { width: mask.width, height: mask.height, data: Uint8Array.from(mask.data, (v) => (v > 127 ? 1 : 0)) };
}

/** Answers one task as its doctor: the simulated correction, its effort-model minutes, the submission. Null when the task moved on (409). */
export async function answerTask(doctor: MedloopClient, task: ApiTask, options: DoctorsOptions): Promise<SimulatedAnswer | null> {
  const truthGrey = await (options.truthOf?.(doctor) ?? options.truth)(task.image_name);
  const truth = prepareTruth(binary(truthGrey), options.secondOpinion ? binary(await options.secondOpinion(task.image_name)) : undefined);
  const none: ProbabilityMap = { width: truthGrey.width, height: truthGrey.height, data: new Float32Array(truthGrey.data.length) };
  const empty: Mask = { width: truthGrey.width, height: truthGrey.height, data: new Uint8Array(truthGrey.data.length) };
  const scratchRun = simulateCorrection("scratch", empty, truth, none);
  const vessels = foregroundPixels(truthGrey.data);
  const pixelScratch = scratchMinutes(vessels, options.calibration);
  let changed = vessels;
  let pixelSpent = pixelScratch;
  let run: SimulatedCorrection = scratchRun;
  if (task.kind === "correct" && task.start_version_id !== null) {
    const prediction = await decodeGrey(await doctor.startMask(task.id));
    changed = changedPixels(prediction.data, truthGrey.data);
    pixelSpent = correctionMinutes(changed, vessels, options.calibration);
    run = simulateCorrection("assisted", binary(prediction), truth, (await doctor.probability(task.id)) ?? none);
  }
  const minutes = effortMinutes(run.actions);
  const ended = new Date();
  const started = new Date(ended.getTime() - minutes * 60_000);
  const submission = {
    // One id per task: a retried pass (e.g. after a 503) is recognised as the same submission.
    submission_id: `simulated-task-${task.id}`,
    parent_version_id: task.start_version_id,
    mask_png_base64: (await encodeGrey(truthGrey)).toString("base64"),
    active_ms: Math.round(minutes * 60_000),
    started_at: started.toISOString(),
    ended_at: ended.toISOString(),
    edits: Math.max(1, run.actions.length),
    simulated: true,
    actions: run.actions,
  };
  for (let attempt = 1; ; attempt++) {
    try {
      await doctor.submit(task.id, submission);
      break;
    } catch (err) {
      // 409: the task moved on meanwhile (reassigned, cancelled); the next pass sees its new state.
      if (err instanceof ApiError && err.status === 409) return null;
      // 503: stored, but the workflow was not told yet; the same submission id retries safely.
      if (!(err instanceof ApiError && err.status === 503) || attempt >= 10) throw err;
      await new Promise((r) => setTimeout(r, 1000 * attempt));
    }
  }
  return {
    round: task.round ?? 0,
    kind: task.kind,
    imageName: task.image_name,
    pixelsChanged: changed,
    minutesScratch: effortMinutes(scratchRun.actions),
    minutesSpent: minutes,
    actions: run.actions.length,
    clicks: run.actions.reduce((n, a) => n + a.clicks, 0),
    f1Reached: run.f1,
    pixelModel: { minutesScratch: pixelScratch, minutesSpent: pixelSpent },
  };
}

/**
 * Doctors who work one task at a time at a stated pace: a task is answered `paceMs` after the
 * doctor became free for it (it appeared, or the doctor's previous answer went in). In a
 * continuous campaign a doctor with nothing open pulls the next image ("Next image").
 */
export class PacedDoctors {
  private readonly firstSeen = new Map<number, number>();
  private readonly freeAt: number[];

  constructor(
    private readonly options: DoctorsOptions & {
      paceMs: number;
      pull: boolean;
      /** Runs just before each answer goes in (the simulation notes models published meanwhile, so answers are timed against them). */
      beforeAnswer?: () => Promise<void>;
    },
    private readonly now: () => number = Date.now,
  ) {
    this.freeAt = options.doctors.map(() => 0);
  }

  /** One pass over the doctors; returns the answers submitted in it. */
  async pass(): Promise<SimulatedAnswer[]> {
    const answers: SimulatedAnswer[] = [];
    for (const [i, doctor] of this.options.doctors.entries()) {
      const open = (await doctor.myTasks("open")).filter((t) => t.campaign_id === this.options.campaignId).sort((a, b) => a.id - b.id);
      for (const t of open) if (!this.firstSeen.has(t.id)) this.firstSeen.set(t.id, this.now());
      const task = open[0];
      if (task) {
        const due = Math.max(this.firstSeen.get(task.id)!, this.freeAt[i]!) + this.options.paceMs;
        if (this.now() < due) continue;
        await this.options.beforeAnswer?.();
        const answer = await answerTask(doctor, task, this.options);
        this.freeAt[i] = this.now();
        if (answer) {
          answers.push(answer);
          this.options.onAnswer?.(answer, task);
        }
      } else if (this.options.pull) {
        await this.pull(doctor);
      }
    }
    return answers;
  }

  private async pull(doctor: MedloopClient): Promise<void> {
    try {
      const pulled = await doctor.pull(this.options.campaignId);
      this.firstSeen.set(pulled.task.id, this.now());
    } catch (err) {
      // 409: nothing to pull now (no model yet, seeds still open elsewhere, budget used up).
      // 503: the task is not written yet; the next pass sees it open.
      if (!(err instanceof ApiError && (err.status === 409 || err.status === 503))) throw err;
    }
  }
}
