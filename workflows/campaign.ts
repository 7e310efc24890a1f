// The active-learning campaign. One workflow run is one round:
//   (round 0: seed annotation tasks) → augment → train → evaluate on the test
//   images → [approval] → predict the pool with uncertainty → select K →
//   correction tasks → continue-as-new with the round's state carried over.
// It ends at the target F1, at the round limit, when the pool is empty, or on `stop` (a
// cancellation of the workflow itself counts as one).
// Images, masks and models travel by URI only.
import {
  ApplicationFailure,
  CancellationScope,
  TemporalFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  executeChild,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
} from "@temporalio/workflow";
import type { CampaignState, StoreActivities } from "../activities/store.js";
import type { AugmentActivities } from "../activities/augment.js";
import type { SelectActivities } from "../activities/select.js";
import type { ReportActivities } from "../activities/report.js";
import { annotationTask } from "./annotationTask.js";
import {
  DEFAULT_CAMPAIGN_CONFIG,
  GPU_TASK_QUEUE,
  approveModelUpdate,
  pauseUpdate,
  resumeUpdate,
  setKUpdate,
  statusQuery,
  stopUpdate,
  taskWorkflowId,
  type AnnotationTaskInput,
  type AnnotationTaskResult,
  type CampaignCarry,
  type CampaignConfig,
  type CampaignEnd,
  type CampaignInput,
  type CampaignPhase,
  type CampaignResult,
  type CampaignStatus,
  type GpuActivities,
  type LabelledImage,
  type ImageRef,
  type OpenTask,
  type PredictedItem,
  type RoundSummary,
} from "./types.js";

const store = proxyActivities<StoreActivities>({
  startToCloseTimeout: "1 minute",
  retry: { initialInterval: "2 seconds", maximumInterval: "5 minutes" },
});
const augmenter = proxyActivities<AugmentActivities>({
  startToCloseTimeout: "1 hour",
  heartbeatTimeout: "5 minutes",
  retry: { initialInterval: "10 seconds", maximumAttempts: 5 },
});
const selector = proxyActivities<SelectActivities>({ startToCloseTimeout: "1 minute" });
const reporter = proxyActivities<ReportActivities>({ startToCloseTimeout: "2 minutes" });

/** The gpu activities: long start-to-close, a heartbeat timeout that notices a dead worker, few retries. */
function gpuActivities(config: CampaignConfig, startToCloseMs: number): GpuActivities {
  return proxyActivities<GpuActivities>({
    taskQueue: GPU_TASK_QUEUE,
    startToCloseTimeout: startToCloseMs,
    heartbeatTimeout: config.heartbeatTimeoutMs,
    retry: { initialInterval: "30 seconds", backoffCoefficient: 2, maximumAttempts: 3 },
  });
}

/** Everything the handlers and the round share inside one run. */
interface RunState {
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
}

function initialCarry(config: CampaignConfig): CampaignCarry {
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

function statusOf(st: RunState): CampaignStatus {
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
  };
}

function isFinished(st: RunState): boolean {
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
function writeState(st: RunState, status: CampaignState, reason?: string): Promise<void> {
  const write = () => store.setCampaignStatus({ campaignId: st.campaignId, status, ...(reason !== undefined ? { reason } : {}) });
  if (!st.guarded) return write();
  const next = st.stateWrite.then(write);
  st.stateWrite = next.catch(() => undefined);
  return next;
}

function registerHandlers(st: RunState): void {
  const notFinished = () => {
    if (isFinished(st)) throw new Error(`campaign has finished (${st.finishedReason ?? st.phase})`);
  };
  // Pause, resume and K mean nothing to a run that is stopping or finishing, and their state
  // writes would race the final one: refused, naming why (the caller gets a 409).
  const steerable = () => {
    notFinished();
    if (!st.guarded) return;
    if (st.stopRequested) throw new Error("campaign is stopping (a stop was requested)");
    if (st.finishing) throw new Error(`campaign is finishing (${st.finishedReason ?? "ending"})`);
  };
  setHandler(statusQuery, () => statusOf(st));
  setHandler(
    pauseUpdate,
    async () => {
      st.carry.paused = true;
      await writeState(st, "paused");
      return statusOf(st);
    },
    { validator: steerable },
  );
  setHandler(
    resumeUpdate,
    async () => {
      st.carry.paused = false;
      await writeState(st, "running");
      return statusOf(st);
    },
    { validator: steerable },
  );
  setHandler(
    stopUpdate,
    (_arg) => {
      st.stopRequested = true;
      st.finishedReason = "stopped";
      // Cancels whatever the round awaits: a training activity, open tasks, a pause.
      st.scope.cancel();
      return statusOf(st);
    },
    {
      validator: (_arg) => {
        notFinished();
        // A run finishing on its own (target reached, round limit) ends with that reason; a stop
        // accepted then would answer "stopping" for a campaign that completes. A repeated stop
        // while stopping is accepted: it changes nothing.
        if (st.guarded && st.finishing && !st.stopRequested) throw new Error(`campaign is finishing (${st.finishedReason ?? "ending"})`);
      },
    },
  );
  setHandler(
    setKUpdate,
    ({ k }) => {
      const previous = st.carry.k;
      st.carry.k = k;
      return { previous, k };
    },
    {
      validator: (arg) => {
        steerable();
        if (!Number.isInteger(arg?.k) || arg.k < 1 || arg.k > 1000) throw new Error("k must be an integer from 1 to 1000");
      },
    },
  );
  setHandler(
    approveModelUpdate,
    async ({ round, by }) => {
      const summary = st.carry.rounds.find((r) => r.round === round) as RoundSummary;
      await store.approveModel({ campaignId: st.campaignId, round, modelId: summary.modelId, by: by ?? null });
      summary.approved = true;
      return summary;
    },
    {
      validator: (arg) => {
        const summary = st.carry.rounds.find((r) => r.round === arg?.round);
        if (!summary) throw new Error(`round ${String(arg?.round)} has no model yet`);
        if (summary.approved) throw new Error(`the model of round ${arg.round} is already approved`);
      },
    },
  );
}

async function enterPhase(st: RunState, phase: CampaignPhase, total = 0): Promise<void> {
  // Pausing holds the campaign at the next phase boundary; running work finishes.
  await condition(() => !st.carry.paused);
  st.phase = phase;
  st.progress = { done: 0, total };
  await recordPhase(st, phase);
}

async function recordPhase(st: RunState, phase: CampaignPhase): Promise<void> {
  // Runs started before the phase was written to the database replay without this activity.
  if (patched("record-campaign-phase")) {
    await store.recordCampaignPhase({ campaignId: st.campaignId, phase, round: st.carry.round });
  }
}

export async function campaign(input: CampaignInput): Promise<CampaignResult> {
  const config: CampaignConfig = { ...DEFAULT_CAMPAIGN_CONFIG, ...input.config };
  const st: RunState = {
    campaignId: input.campaignId,
    carry: input.carry ?? initialCarry(config),
    phase: "starting",
    stopRequested: false,
    finishedReason: null,
    progress: { done: 0, total: 0 },
    openTasks: [],
    scope: new CancellationScope(),
    // Asked once per run, before the handlers exist: validators read it, and they may not call
    // patched() themselves (a validator must not add anything to the history).
    guarded: patched("campaign-final-state"),
    finishing: false,
    stateWrite: Promise.resolve(),
  };
  registerHandlers(st);

  let outcome: CampaignEnd | "next";
  try {
    outcome = await st.scope.run(() => runRound(st, config, input.projectId));
  } catch (err) {
    if (cancelledFromOutside(st, err)) takeAsStop(st);
    if (!(st.stopRequested && isCancellation(err))) {
      // A failure of an activity or a task ends the campaign: say so in the database. (Other
      // errors are bugs in this code: they fail the workflow task and wait for a fix.)
      if (err instanceof TemporalFailure) {
        st.finishing = true;
        if (st.guarded) st.finishedReason = "failed";
        await (st.guarded ? CancellationScope.nonCancellable(() => writeState(st, "failed", err.message)) : writeState(st, "failed", err.message));
      }
      throw err;
    }
    outcome = "stopped";
  }
  if (outcome === "next") {
    try {
      await condition(allHandlersFinished);
    } catch (err) {
      if (!cancelledFromOutside(st, err)) throw err;
      takeAsStop(st);
    }
    // A stop that came after the round's last cancellable step (or while the handlers above
    // ended) cancelled nothing: continuing as new would drop it, and the campaign would go on
    // while its row says `stopping`. Guarded runs honour it here.
    if (!(st.guarded && st.stopRequested)) return await continueAsNew<typeof campaign>({ ...input, config, carry: st.carry });
    outcome = "stopped";
  }
  const end = outcome;
  // Guarded runs finish where no cancellation reaches: the report and the final state are written
  // even when the workflow itself was cancelled.
  return st.guarded ? await CancellationScope.nonCancellable(() => finish(st, end)) : await finish(st, end);
}

/**
 * The workflow itself was cancelled (`temporal workflow cancel`, Temporal's UI), not only the
 * round by `stop`: the root scope is cancelled. Before, the run then issued its `failed` write in
 * that cancelled scope, where an activity is refused before it is scheduled: the write never ran,
 * the workflow closed as cancelled and its row stayed `running`. Guarded runs take it as a stop.
 */
function cancelledFromOutside(st: RunState, err: unknown): boolean {
  return st.guarded && isCancellation(err) && CancellationScope.current().consideredCancelled;
}

function takeAsStop(st: RunState): void {
  st.stopRequested = true;
  st.finishedReason = "stopped";
}

async function finish(st: RunState, reason: CampaignEnd): Promise<CampaignResult> {
  st.openTasks = [];
  st.finishing = true;
  if (st.guarded) st.finishedReason ??= reason;
  const { reportUri } = await reporter.writeCampaignReport({
    campaignId: st.campaignId,
    reason,
    rounds: st.carry.rounds,
    seedActiveMs: st.carry.seedActiveMs,
  });
  const phase = reason === "stopped" ? "stopped" : "completed";
  // A pause or resume accepted before the stop may still be writing its state: the final state
  // goes last. (No new pause, resume or K is accepted now; a repeated stop changes nothing, and
  // an approval writes no state.)
  if (st.guarded) await condition(allHandlersFinished);
  await recordPhase(st, phase); // before the state, so a row that reads completed has its final phase
  await writeState(st, phase, reason);
  st.finishedReason = reason;
  st.phase = phase;
  await condition(allHandlersFinished);
  return { campaignId: st.campaignId, reason, rounds: st.carry.rounds, reportUri };
}

async function runRound(st: RunState, config: CampaignConfig, projectId: string): Promise<CampaignEnd | "next"> {
  const c = st.carry;
  if (c.round === 0 && c.labelled.length === 0) await seedRound(st, config, projectId);
  const round = c.round;
  const prefix = `blob://runs/${st.campaignId}/round-${round}/`;

  await enterPhase(st, "augmenting");
  const dataset = await augmenter.augmentDataset({
    datasetKey: `datasets/${st.campaignId}/round-${round}`,
    items: c.labelled.map(({ imageId, imageUri, maskUri }) => ({ imageId, imageUri, maskUri })),
    pipeline: config.augmentation,
  });

  await enterPhase(st, "training");
  const valFov = fovOf(c.labelled);
  const trained = await gpuActivities(config, config.trainTimeoutMs).train_segmentation({
    run_id: `${st.campaignId}-r${round}`,
    train: dataset.examples,
    val: c.labelled.map((l) => ({ image_uri: l.imageUri, mask_uri: l.maskUri, ...valFov(l.imageId) })),
    config: config.train,
    ...(c.previousModelUri ? { init_model_uri: c.previousModelUri } : {}),
    out_prefix: `${prefix}model/`,
  });
  const { modelId } = await store.recordModel({
    campaignId: st.campaignId,
    round,
    modelUri: trained.model_uri,
    onnxUri: trained.onnx_uri,
    metrics: trained.metrics,
    datasetUri: dataset.manifestUri,
  });
  c.previousModelUri = trained.model_uri;

  await enterPhase(st, "evaluating", c.test.length);
  const metrics = await evaluate(config, c.test, trained.model_uri, `${prefix}test/`);
  const summary: RoundSummary = {
    round,
    modelUri: trained.model_uri,
    modelId,
    metrics,
    trainSeconds: trained.seconds ?? null,
    selected: [],
    corrected: 0,
    correctionActiveMs: 0,
    approved: false,
  };
  c.rounds.push(summary);
  await store.recordRound({ campaignId: st.campaignId, summary });

  const end = endReason(config, st, metrics);
  if (end) return end;
  if (config.requireApproval) {
    await enterPhase(st, "awaiting_approval");
    await condition(() => summary.approved);
  }
  await correctionRound(st, config, projectId, summary, `${prefix}pool/`);
  c.round += 1;
  return "next";
}

function endReason(config: CampaignConfig, st: RunState, metrics: Record<string, number>): CampaignEnd | null {
  const f1 = metrics.f1 ?? metrics.dice;
  if (f1 !== undefined && f1 >= config.targetF1) return "target_reached";
  if (st.carry.round + 1 >= config.maxRounds) return "round_limit";
  if (st.carry.pool.length === 0) return "pool_exhausted";
  return null;
}

async function seedRound(st: RunState, config: CampaignConfig, projectId: string): Promise<void> {
  await enterPhase(st, "seeding");
  const images = await store.loadCampaignImages({ campaignId: st.campaignId, projectId });
  if (images.seed.length === 0) throw ApplicationFailure.nonRetryable("the campaign has no seed images");
  st.carry.pool = images.pool;
  st.carry.test = images.test;
  await writeState(st, "running");
  const results = await runTasks(
    st,
    config,
    projectId,
    images.seed.map((image) => ({ kind: "annotate" as const, image })),
  );
  st.carry.labelled = results.map((r, i) => labelledOf(images.seed[i] as ImageRef, r));
  st.carry.seedActiveMs = results.reduce((sum, r) => sum + r.activeMs, 0);
}

async function evaluate(
  config: CampaignConfig,
  test: ImageRef[],
  modelUri: string,
  outPrefix: string,
): Promise<Record<string, number>> {
  const withTruth = test.filter((t) => t.maskUri);
  if (withTruth.length === 0) return {};
  const gpu = gpuActivities(config, config.predictTimeoutMs);
  const fov = fovOf(withTruth);
  const predicted = await gpu.predict_masks({
    model_uri: modelUri,
    items: withTruth.map((t) => ({ image_id: t.imageId, image_uri: t.imageUri, ...fov(t.imageId) })),
    out_prefix: outPrefix,
    ...(config.threshold !== undefined ? { threshold: config.threshold } : {}),
    uncertainty: false,
  });
  const truth = new Map(withTruth.map((t) => [t.imageId, t.maskUri as string]));
  const evaluation = await gpu.evaluate_masks({
    items: predicted.items.map((p) => ({
      image_id: p.image_id,
      pred_uri: p.mask_uri,
      prob_uri: p.prob_uri,
      truth_uri: truth.get(p.image_id) as string,
      ...fov(p.image_id),
    })),
  });
  return evaluation.mean;
}

async function correctionRound(
  st: RunState,
  config: CampaignConfig,
  projectId: string,
  summary: RoundSummary,
  outPrefix: string,
): Promise<void> {
  const c = st.carry;
  await enterPhase(st, "predicting", c.pool.length);
  const fov = fovOf(c.pool);
  const predicted = await gpuActivities(config, config.predictTimeoutMs).predict_masks({
    model_uri: summary.modelUri,
    items: c.pool.map((p) => ({ image_id: p.imageId, image_uri: p.imageUri, ...fov(p.imageId) })),
    out_prefix: outPrefix,
    ...(config.threshold !== undefined ? { threshold: config.threshold } : {}),
    uncertainty: true,
  });
  const { versions } = await store.recordPredictions({
    campaignId: st.campaignId,
    round: summary.round,
    modelId: summary.modelId,
    items: predicted.items.map((p) => ({
      imageId: p.image_id,
      maskUri: p.mask_uri,
      probUri: p.prob_uri,
      uncertainty: p.uncertainty,
    })),
  });

  await enterPhase(st, "selecting");
  const { imageIds } = await selector.selectImages({
    strategy: c.strategy,
    k: c.k,
    seed: config.seed,
    round: summary.round,
    candidates: predicted.items.map((p) => ({ imageId: p.image_id, uncertainty: p.uncertainty, embedding: p.embedding ?? null })),
  });
  summary.selected = imageIds;
  await store.recordRound({ campaignId: st.campaignId, summary });

  const byId = new Map<string, PredictedItem>(predicted.items.map((p) => [p.image_id, p]));
  const chosen = imageIds.map((id) => c.pool.find((p) => p.imageId === id) as ImageRef);
  await enterPhase(st, "correcting");
  const results = await runTasks(
    st,
    config,
    projectId,
    chosen.map((image) => ({
      kind: "correct" as const,
      image,
      parentVersionId: versions[image.imageId],
      predictionUri: byId.get(image.imageId)?.mask_uri,
    })),
  );
  c.labelled.push(...results.map((r, i) => labelledOf(chosen[i] as ImageRef, r)));
  c.pool = c.pool.filter((p) => !imageIds.includes(p.imageId));
  summary.corrected = results.length;
  summary.correctionActiveMs = results.reduce((sum, r) => sum + r.activeMs, 0);
  await store.recordRound({ campaignId: st.campaignId, summary });
}

/**
 * `{fov_uri}` for the images imported with a FOV mask, so the engine predicts, scores uncertainty
 * and evaluates inside it instead of a FOV derived from the image. Histories recorded before this
 * change replay without it (`patched`).
 */
function fovOf(images: Array<{ imageId: string; fovUri?: string }>): (imageId: string) => { fov_uri?: string } {
  const use = patched("fov-in-gpu-items");
  const byId = new Map(images.filter((i) => i.fovUri).map((i) => [i.imageId, i.fovUri as string]));
  return (imageId) => {
    const uri = byId.get(imageId);
    return use && uri ? { fov_uri: uri } : {};
  };
}

function labelledOf(image: ImageRef, r: AnnotationTaskResult): LabelledImage {
  return { imageId: image.imageId, imageUri: image.imageUri, maskUri: r.maskUri, versionId: r.versionId, ...(image.fovUri ? { fovUri: image.fovUri } : {}) };
}

type TaskSpec = Pick<AnnotationTaskInput, "kind" | "image" | "parentVersionId" | "predictionUri">;

/** Runs one child workflow per task and waits for all of them; results keep the order of `specs`. */
async function runTasks(
  st: RunState,
  config: CampaignConfig,
  projectId: string,
  specs: TaskSpec[],
): Promise<AnnotationTaskResult[]> {
  const round = st.carry.round;
  st.progress = { done: 0, total: specs.length };
  st.openTasks = specs.map((s) => ({
    workflowId: taskWorkflowId(st.campaignId, round, s.image.imageId),
    imageId: s.image.imageId,
    kind: s.kind,
  }));
  return await Promise.all(
    specs.map(async (spec) => {
      const workflowId = taskWorkflowId(st.campaignId, round, spec.image.imageId);
      const result = await executeChild(annotationTask, {
        workflowId,
        args: [
          {
            campaignId: st.campaignId,
            projectId,
            round,
            ...spec,
            timing: config.taskTiming,
          },
        ],
      });
      st.openTasks = st.openTasks.filter((t) => t.workflowId !== workflowId);
      st.progress.done += 1;
      return result;
    }),
  );
}
