// What the rounds (workflows/campaign.ts) and the continuous mode (workflows/continuous.ts) of a
// campaign share inside one workflow run: its state, the ordered state writes, the phase
// boundaries, the seed round and the child task workflows.
import { ApplicationFailure, CancellationScope, condition, executeChild, isCancellation, patched, sleep } from "@temporalio/workflow";
import type { CampaignState } from "../activities/store.js";
import { store } from "./storeProxy.js";
import { annotationTask } from "./annotationTask.js";
import { labelsWithConsensus } from "./consensus.js";
import {
  taskWorkflowId,
  type AnnotationTaskInput,
  type AnnotationTaskResult,
  type CampaignCarry,
  type CampaignConfig,
  type CampaignMode,
  type CampaignPhase,
  type CampaignStatus,
  type ContinuousStatus,
  type ImageRef,
  type LabelledImage,
  type OpenTask,
} from "./types.js";


/** Everything the handlers and the round share inside one run. */
export interface RunState {
  campaignId: string;
  carry: CampaignCarry;
  phase: CampaignPhase;
  stopRequested: boolean;
  finishedReason: string | null;
  progress: { done: number; total: number };
  openTasks: OpenTask[];
  scope: CancellationScope;
  /**
   * patched("campaign-final-state"): runs started with it refuse pause, resume and K once a stop
   * was requested or the run is finishing, finish instead of continuing as new when a stop came
   * at the end of a round, record the campaign's state one write at a time in the order the
   * workflow decided them, and write the final state only after every Update handler has ended.
   * Runs started before keep the old behaviour, so their histories replay.
   */
  guarded: boolean;
  /** The run has begun to finish (report, final state): nothing can be steered any more. */
  finishing: boolean;
  /** The last state write in flight (guarded runs write one at a time). */
  stateWrite: Promise<void>;
  mode: CampaignMode;
  /** Continuous mode, once seeded: the newest model and the pulls (workflows/continuous.ts); null in rounds. */
  continuous: { status(): ContinuousStatus } | null;
}

export function initialCarry(config: CampaignConfig): CampaignCarry {
  return {
    round: 0,
    k: config.k,
    strategy: config.strategy,
    paused: false,
    labelled: [],
    pool: [],
    test: [],
    rounds: [],
    previousModelUri: null,
    seedActiveMs: 0,
  };
}

export function statusOf(st: RunState): CampaignStatus {
  const c = st.carry;
  return {
    campaignId: st.campaignId,
    round: c.round,
    phase: st.phase,
    paused: c.paused,
    stopRequested: st.stopRequested,
    k: c.k,
    strategy: c.strategy,
    progress: { ...st.progress },
    rounds: c.rounds,
    openTasks: st.openTasks,
    labelled: c.labelled.length,
    pool: c.pool.length,
    test: c.test.length,
    finishedReason: st.finishedReason,
    mode: st.mode,
    ...(st.continuous ? { continuous: st.continuous.status() } : {}),
  };
}

export function isFinished(st: RunState): boolean {
  return st.phase === "completed" || st.phase === "stopped";
}

/**
 * Records the campaign's state through the store. Guarded runs chain the writes, so they reach
 * the database in the order the workflow decided them (a pause and a resume sent in quick
 * succession used to race as two concurrent activities, leaving the row `paused` while running).
 * The chained write keeps the cancellation scope of its caller (a write inside the round is
 * cancelled with it). The database ignores any write that comes after a final state
 * (services/campaigns.ts setCampaignState), whatever the order.
 */
export function writeState(st: RunState, status: CampaignState, reason?: string): Promise<void> {
  const write = () => store.setCampaignStatus({ campaignId: st.campaignId, status, ...(reason !== undefined ? { reason } : {}) });
  if (!st.guarded) return write();
  const next = st.stateWrite.then(write);
  st.stateWrite = next.catch(() => undefined);
  return next;
}

export async function enterPhase(st: RunState, phase: CampaignPhase, total = 0): Promise<void> {
  // Pausing holds the campaign at the next phase boundary; running work finishes.
  await condition(() => !st.carry.paused);
  st.phase = phase;
  st.progress = { done: 0, total };
  await recordPhase(st, phase);
}

export async function recordPhase(st: RunState, phase: CampaignPhase): Promise<void> {
  // Runs started before the phase was written to the database replay without this activity.
  if (patched("record-campaign-phase")) {
    await store.recordCampaignPhase({ campaignId: st.campaignId, phase, round: st.carry.round });
  }
}

export async function seedRound(st: RunState, config: CampaignConfig, projectId: string): Promise<void> {
  await enterPhase(st, "seeding");
  const images = await store.loadCampaignImages({ campaignId: st.campaignId, projectId });
  if (images.seed.length === 0) throw ApplicationFailure.nonRetryable("the campaign has no seed images");
  st.carry.pool = images.pool;
  st.carry.test = images.test;
  await writeState(st, "running");
  // Several annotators per seed image (issue 14): each a different doctor (the store's
  // assignment passes over doctors who hold a task on the image), their masks merged below.
  const annotators = config.annotatorsPerSeed ?? 1;
  const specs: TaskSpec[] = images.seed.flatMap((image) =>
    Array.from({ length: annotators }, (_, annotator) => ({ kind: "annotate" as const, image, ...(annotator > 0 ? { annotator } : {}) })),
  );
  const results = await runTasks(st, config, projectId, specs);
  // One annotator per image: each doctor's mask, and no activity runs (as before).
  st.carry.labelled = await labelsWithConsensus({
    campaignId: st.campaignId,
    config,
    round: st.carry.round,
    answers: results.map((result, i) => ({ image: specs[i]!.image, result })),
  });
  st.carry.seedActiveMs = results.reduce((sum, r) => sum + r.activeMs, 0);
}

export function labelledOf(image: ImageRef, r: AnnotationTaskResult): LabelledImage {
  return { imageId: image.imageId, imageUri: image.imageUri, maskUri: r.maskUri, versionId: r.versionId, ...(image.fovUri ? { fovUri: image.fovUri } : {}) };
}

export type TaskSpec = Pick<AnnotationTaskInput, "kind" | "image" | "parentVersionId" | "predictionUri" | "honeypot"> & {
  /** The image's second, third, … annotator (0 or absent: the first). */
  annotator?: number;
};

function specWorkflowId(campaignId: string, round: number, spec: TaskSpec): string {
  return taskWorkflowId(campaignId, round, spec.image.imageId, spec.annotator ?? 0);
}

/** Runs one child workflow per task and waits for all of them; results keep the order of `specs`. */
export async function runTasks(
  st: RunState,
  config: CampaignConfig,
  projectId: string,
  specs: TaskSpec[],
): Promise<AnnotationTaskResult[]> {
  const round = st.carry.round;
  st.progress = { done: 0, total: specs.length };
  st.openTasks = specs.map((s) => ({
    workflowId: specWorkflowId(st.campaignId, round, s),
    imageId: s.image.imageId,
    kind: s.kind,
  }));
  // Asked before the tasks start, where a replay of an older history finds no marker.
  const settleOnStop = patched("tasks-settle-on-stop");
  const running = specs.map(async (spec) => {
    const workflowId = specWorkflowId(st.campaignId, round, spec);
    const { annotator: _annotator, ...task } = spec; // the annotator's number lives in the workflow id only
    const result = await executeChild(annotationTask, {
      workflowId,
      args: [
        {
          campaignId: st.campaignId,
          projectId,
          round,
          ...task,
          timing: config.taskTiming,
          ...(config.review ? { review: true } : {}),
        },
      ],
    });
    st.openTasks = st.openTasks.filter((t) => t.workflowId !== workflowId);
    st.progress.done += 1;
    return result;
  });
  return await (settleOnStop ? allTasks(running) : Promise.all(running));
}

/**
 * How long a stop waits, after the first task's cancellation, for the others to record theirs. A
 * task reaches its cancellation at its next durable wait, normally within seconds (a createTask or
 * e-mail failing again and again ends at the stop, workflows/annotationTask.ts untilStopped); one held in
 * an activity that runs to its end and keeps retrying (a history from before that) would hold the
 * stop forever, so after this the run finishes as before and closing it terminates that task.
 */
const TASK_CANCEL_GRACE = "1 minute";

/**
 * Promise.all, except that a stop (a cancellation) waits, up to TASK_CANCEL_GRACE, for every task
 * to settle. Each cancelled task records its cancellation in its row; a run that went on to
 * finish as soon as the first task was cancelled could close while another still cancelled, and
 * closing the parent terminates that child, leaving its row open. A failure ends the wait at once.
 */
async function allTasks<T>(running: Promise<T>[]): Promise<T[]> {
  try {
    return await Promise.all(running);
  } catch (err) {
    if (isCancellation(err)) await settledWithin(running, TASK_CANCEL_GRACE);
    throw err;
  }
}

/** Waits, in a scope the stop does not reach, until every promise settles or the time passes. */
async function settledWithin(promises: Promise<unknown>[], grace: string): Promise<void> {
  await CancellationScope.nonCancellable(async () => {
    const timer = new CancellationScope();
    const expired = timer.run(() => sleep(grace)).catch(() => undefined);
    await Promise.race([Promise.allSettled(promises), expired]);
    timer.cancel(); // the timer is not left running once the tasks have settled
  });
}
