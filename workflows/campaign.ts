// The active-learning campaign. One workflow run is one round:
//   (round 0: seed annotation tasks) → augment → train → evaluate on the test
//   images → [approval] → predict the pool with uncertainty → select K →
//   correction tasks → continue-as-new with the round's state carried over.
// It ends at the target F1, at the round limit, when the pool is empty, or on `stop`.
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
import type { StoreActivities } from "../activities/store.js";
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

function registerHandlers(st: RunState): void {
  const notFinished = () => {
    if (isFinished(st)) throw new Error(`campaign has finished (${st.finishedReason ?? st.phase})`);
  };
  setHandler(statusQuery, () => statusOf(st));
  setHandler(
    pauseUpdate,
    async () => {
      st.carry.paused = true;
      await store.setCampaignStatus({ campaignId: st.campaignId, status: "paused" });
      return statusOf(st);
    },
    { validator: notFinished },
  );
  setHandler(
    resumeUpdate,
    async () => {
      st.carry.paused = false;
      await store.setCampaignStatus({ campaignId: st.campaignId, status: "running" });
      return statusOf(st);
    },
    { validator: notFinished },
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
    { validator: (_arg) => notFinished() },
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
        notFinished();
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
  };
  registerHandlers(st);

  let outcome: CampaignEnd | "next";
  try {
    outcome = await st.scope.run(() => runRound(st, config, input.projectId));
  } catch (err) {
    if (!(st.stopRequested && isCancellation(err))) {
      // A failure of an activity or a task ends the campaign: say so in the database. (Other
      // errors are bugs in this code: they fail the workflow task and wait for a fix.)
      if (err instanceof TemporalFailure) {
        await store.setCampaignStatus({ campaignId: st.campaignId, status: "failed", reason: err.message });
      }
      throw err;
    }
    outcome = "stopped";
  }
  if (outcome === "next") {
    await condition(allHandlersFinished);
    return await continueAsNew<typeof campaign>({ ...input, config, carry: st.carry });
  }
  return await finish(st, outcome);
}

async function finish(st: RunState, reason: CampaignEnd): Promise<CampaignResult> {
  st.openTasks = [];
  const { reportUri } = await reporter.writeCampaignReport({
    campaignId: st.campaignId,
    reason,
    rounds: st.carry.rounds,
    seedActiveMs: st.carry.seedActiveMs,
  });
  const phase = reason === "stopped" ? "stopped" : "completed";
  await recordPhase(st, phase); // before the state, so a row that reads completed has its final phase
  await store.setCampaignStatus({ campaignId: st.campaignId, status: phase, reason });
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
  await store.setCampaignStatus({ campaignId: st.campaignId, status: "running" });
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
    candidates: predicted.items.map((p) => ({ imageId: p.image_id, uncertainty: p.uncertainty })),
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
