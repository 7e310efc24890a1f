// A campaign in continuous mode (CampaignConfig.mode = "continuous"): after the seed round a
// trainer child workflow (workflows/trainer.ts) fine-tunes whenever new labels exist, while each
// doctor pulls the next most useful image through the `pull` Update. The pull never waits for
// training: it chooses among the newest published model's predictions of the pool (the
// campaign's strategy, with the images other doctors hold open as the batch a `diverse` pick
// keeps away from), claims the image before anything else can run, and starts a correction task
// assigned to the doctor. Each accepted correction is signalled to the trainer.
//
// It ends when a published model reaches the target F1, when the label budget (or the pool) is
// used up and a model trained on every label is published, or on stop; the trainer and the open
// tasks are then cancelled and awaited, so their rows record it.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  proxyActivities,
  setHandler,
  startChild,
  type ChildWorkflowHandle,
} from "@temporalio/workflow";
import type { SelectActivities } from "../activities/select.js";
import { annotationTask } from "./annotationTask.js";
import { campaignWorkflowId } from "./types.js";
import { enterPhase, isFinished, labelledOf, seedRound, type RunState } from "./campaignRun.js";
import { store } from "./storeProxy.js";
import { campaignTrainer } from "./trainer.js";
import {
  labelsAddedSignal,
  modelPublishedSignal,
  pullUpdate,
  taskWorkflowId,
  trainerWorkflowId,
  type AnnotationTaskResult,
  type CampaignConfig,
  type CampaignEnd,
  type ContinuousStatus,
  type ImageRef,
  type ModelPublished,
  type PullInput,
  type PullResult,
  type RoundSummary,
} from "./types.js";

const selector = proxyActivities<SelectActivities>({ startToCloseTimeout: "1 minute" });

interface Claim {
  imageId: string;
  doctorId: string;
  version: number;
  workflowId: string;
}

/** The continuous part of one campaign run: the newest model, the claims, the end. */
class ContinuousRun {
  latest: ModelPublished | null = null;
  /** Open pulled tasks by image id. */
  readonly claims = new Map<string, Claim>();
  /** Images pulled and not given back (a cancelled task gives its image back). */
  pulled = 0;
  /** Every pull so far: part of the task's workflow id, so a pull of an image given back gets a new task. */
  pulls = 0;
  end: CampaignEnd | null = null;
  failure: unknown = null;
  /** Holds the trainer and the pulled tasks: cancelled at the end (and by a stop, through the run's scope). */
  readonly work = new CancellationScope();
  trainer: ChildWorkflowHandle<typeof campaignTrainer> | null = null;
  readonly children: Promise<unknown>[] = [];
  /** Pulls run one after another, so two doctors never claim the same image. */
  pullChain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly st: RunState,
    readonly labelBudget: number,
  ) {}

  private labelledIds(): Set<string> {
    return new Set(this.st.carry.labelled.map((l) => l.imageId));
  }

  /** Pool images nobody labelled or holds, within the budget. */
  pullable(): number {
    const labelled = this.labelledIds();
    const free = this.st.carry.pool.filter((p) => !labelled.has(p.imageId) && !this.claims.has(p.imageId)).length;
    return Math.max(0, Math.min(free, this.labelBudget - this.pulled));
  }

  status(): ContinuousStatus {
    return {
      modelVersion: this.latest?.summary.round ?? null,
      pulled: this.pulled,
      labelBudget: this.labelBudget,
      pullable: this.pullable(),
    };
  }

  summaryOf(version: number): RoundSummary | undefined {
    return this.st.carry.rounds.find((r) => r.round === version);
  }
}

export async function runContinuous(st: RunState, config: CampaignConfig, projectId: string): Promise<CampaignEnd> {
  const c = st.carry;
  if (c.labelled.length === 0) await seedRound(st, config, projectId);
  const run = new ContinuousRun(st, config.labelBudget ?? c.pool.length);
  st.continuous = run;

  run.trainer = await run.work.run(() =>
    startChild(campaignTrainer, {
      workflowId: trainerWorkflowId(st.campaignId),
      args: [
        {
          campaignId: st.campaignId,
          campaignWorkflowId: campaignWorkflowId(st.campaignId),
          config,
          labelled: c.labelled,
          test: c.test,
          pool: c.pool,
          nextVersion: c.rounds.length,
          previousModelUri: c.previousModelUri,
        },
      ],
    }),
  );
  run.children.push(run.trainer.result().catch((err) => noteFailure(run, err)));
  await enterPhase(st, "correcting");
  try {
    await condition(() => run.end !== null || run.failure !== null);
  } finally {
    run.work.cancel();
    // A pull in flight ends first (its task start, refused or cancelled with the work), then the
    // trainer and the open tasks record their cancellation before the campaign finishes.
    await run.pullChain;
    for (let seen = -1; seen !== run.children.length; ) {
      seen = run.children.length;
      await Promise.allSettled(run.children);
    }
  }
  if (run.failure) throw run.failure;
  return run.end as CampaignEnd;
}

function noteFailure(run: ContinuousRun, err: unknown): void {
  if (!isCancellation(err)) run.failure ??= err;
}

/**
 * The `pull` Update and the trainer's `modelPublished` signal, registered by every campaign run
 * so that a pull sent to a campaign in rounds, or before its seed round ends, is refused with the
 * reason instead of waiting for a handler.
 */
export function registerContinuousHandlers(st: RunState, config: CampaignConfig, projectId: string): void {
  setHandler(modelPublishedSignal, (published) => {
    const run = st.continuous as ContinuousRun | null;
    const c = st.carry;
    if (!run || c.rounds.some((r) => r.round === published.summary.round)) return; // a repeated signal
    c.rounds.push(published.summary);
    c.previousModelUri = published.summary.modelUri;
    c.round = published.summary.round;
    run.latest = published;
    checkEnd(st, run, config);
  });
  setHandler(
    pullUpdate,
    async (input) => {
      const run = st.continuous as ContinuousRun;
      const next = run.pullChain.then(() => pull(st, run, config, projectId, input));
      run.pullChain = next.catch(() => undefined);
      return await next;
    },
    { validator: (input) => void pullProblem(st, input, true) },
  );
}

/** Why a pull cannot be served now (thrown as the Update's refusal), or nothing. */
function pullProblem(st: RunState, input: PullInput, validating: boolean): void {
  const refuse = (message: string): never => {
    // A validator's Error rejects the Update; inside the handler only an ApplicationFailure fails it (and not the workflow).
    throw validating ? new Error(message) : ApplicationFailure.nonRetryable(message, "PullRefused");
  };
  if (st.mode !== "continuous") refuse("the campaign runs in rounds: its images come as tasks, none can be pulled");
  if (typeof input?.doctorId !== "string" || input.doctorId.length === 0) refuse("doctorId is missing");
  const run = st.continuous as ContinuousRun | null;
  if (isFinished(st) || st.finishing || run?.end) refuse(`campaign has finished (${st.finishedReason ?? run?.end ?? st.phase})`);
  if (st.stopRequested) refuse("campaign is stopping (a stop was requested)");
  if (st.carry.paused) refuse("campaign is paused");
  if (!run) return refuse("the seed images are still being annotated: the first model trains after them");
  if ([...run.claims.values()].some((c) => c.doctorId === input.doctorId)) return; // the open task is given back
  if (!run.latest) refuse("no model yet: the first one is training on the seed images");
  if (run.pullable() === 0) refuse(run.pulled >= run.labelBudget ? "the campaign's label budget is used up" : "no image left to pull");
}

async function pull(st: RunState, run: ContinuousRun, config: CampaignConfig, projectId: string, input: PullInput): Promise<PullResult> {
  pullProblem(st, input, false); // again: the state may have changed while this pull waited its turn
  const open = [...run.claims.values()].find((c) => c.doctorId === input.doctorId);
  if (open) return { taskWorkflowId: open.workflowId, imageId: open.imageId, modelVersion: open.version, existing: true };
  const published = run.latest as ModelPublished;
  const labelled = new Set(st.carry.labelled.map((l) => l.imageId));
  const inPool = new Set(st.carry.pool.map((p) => p.imageId));
  const asCandidate = (p: ModelPublished["predictions"][number]) => ({ imageId: p.imageId, uncertainty: p.uncertainty, embedding: p.embedding });
  const free = published.predictions.filter((p) => inPool.has(p.imageId) && !labelled.has(p.imageId) && !run.claims.has(p.imageId));
  if (free.length === 0) throw ApplicationFailure.nonRetryable("no image left to pull", "PullRefused");
  const { imageIds } = await selector.selectImages({
    strategy: run.pulls < (config.coldStartPulls ?? 0) ? "coverage" : st.carry.strategy,
    k: 1,
    seed: config.seed,
    round: run.pulled,
    candidates: free.map(asCandidate),
    chosen: published.predictions.filter((p) => run.claims.has(p.imageId)).map(asCandidate),
  });
  // The campaign may have ended, been stopped or paused while the selection ran.
  pullProblem(st, input, false);
  const prediction = free.find((p) => p.imageId === imageIds[0]) as ModelPublished["predictions"][number];
  const image = st.carry.pool.find((p) => p.imageId === prediction.imageId) as ImageRef;
  const version = published.summary.round;
  run.pulls += 1;
  const workflowId = `${taskWorkflowId(st.campaignId, version, image.imageId)}-p${run.pulls}`;
  const claim: Claim = { imageId: image.imageId, doctorId: input.doctorId, version, workflowId };
  run.claims.set(image.imageId, claim);
  run.pulled += 1;
  st.openTasks.push({ workflowId, imageId: image.imageId, kind: "correct" });
  (run.summaryOf(version) as RoundSummary).selected.push(image.imageId);
  const task = await run.work.run(() =>
    startChild(annotationTask, {
      workflowId,
      args: [
        {
          campaignId: st.campaignId,
          projectId,
          round: version,
          kind: "correct",
          image,
          parentVersionId: prediction.versionId,
          predictionUri: prediction.maskUri,
          // The doctor pulled this image: reminded, never handed to another doctor (whose pull
          // would then find it claimed in someone else's name).
          timing: { ...config.taskTiming, maxReassignments: 0 },
          assigneeId: input.doctorId,
        },
      ],
    }),
  );
  run.children.push(
    task.result().then(
      (result) => corrected(st, run, config, image, claim, result),
      (err) => {
        // A task cancelled on its own (not by the campaign's end) gives its image back to the pool.
        release(st, run, claim);
        run.pulled -= 1;
        noteFailure(run, err);
        checkEnd(st, run, config);
      },
    ),
  );
  return { taskWorkflowId: workflowId, imageId: image.imageId, modelVersion: version, existing: false };
}

function release(st: RunState, run: ContinuousRun, claim: Claim): void {
  run.claims.delete(claim.imageId);
  st.openTasks = st.openTasks.filter((t) => t.workflowId !== claim.workflowId);
}

/** An accepted correction: labelled, counted against the model it started from, and sent to the trainer. */
async function corrected(
  st: RunState,
  run: ContinuousRun,
  config: CampaignConfig,
  image: ImageRef,
  claim: Claim,
  result: AnnotationTaskResult,
): Promise<void> {
  const labelled = labelledOf(image, result);
  st.carry.labelled.push(labelled);
  release(st, run, claim);
  const summary = run.summaryOf(claim.version);
  if (summary) {
    summary.corrected += 1;
    summary.correctionActiveMs += result.activeMs;
  }
  checkEnd(st, run, config);
  await Promise.all([
    summary ? store.recordRound({ campaignId: st.campaignId, summary }) : Promise.resolve(),
    run.trainer?.signal(labelsAddedSignal, { labelled: [labelled] }).catch((err: unknown) => {
      // The trainer is gone only when the campaign is ending: the label is stored either way.
      if (!run.end) noteFailure(run, err);
    }),
  ]);
}

/** The end of a continuous campaign, decided on each published model and each correction. */
function checkEnd(st: RunState, run: ContinuousRun, config: CampaignConfig): void {
  const published = run.latest;
  if (run.end || !published) return;
  const f1 = published.summary.metrics.f1 ?? published.summary.metrics.dice;
  if (f1 !== undefined && f1 >= config.targetF1) {
    run.end = "target_reached";
    return;
  }
  // Nothing left to pull or open, and the newest model has seen every label: it is the final one.
  if (run.claims.size === 0 && run.pullable() === 0 && published.trainedOn >= st.carry.labelled.length) {
    run.end = run.pulled >= run.labelBudget ? "label_budget" : "pool_exhausted";
  }
}
