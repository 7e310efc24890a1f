// The active-learning campaign. One workflow run is one round:
//   (round 0: seed annotation tasks) → augment → train → evaluate on the test
//   images → [approval] → predict the pool with uncertainty → select K →
//   correction tasks → continue-as-new with the round's state carried over.
// It ends at the target F1, at the round limit, when the pool is empty, or on `stop` (a
// cancellation of the workflow itself counts as one).
// Images, masks and models travel by URI only.
import {
  CancellationScope,
  TemporalFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
} from "@temporalio/workflow";
import type { SelectActivities } from "../activities/select.js";
import type { ReportActivities } from "../activities/report.js";
import {
  enterPhase,
  initialCarry,
  isFinished,
  recordPhase,
  runTasks,
  seedRound,
  statusOf,
  writeState,
  type RunState,
  type TaskSpec,
} from "./campaignRun.js";
import { registerContinuousHandlers, runContinuous } from "./continuous.js";
import { labelsWithConsensus } from "./consensus.js";
import { seededShuffle } from "../activities/random.js";
import { evaluate, newRoundSummary, predictPool, trainModel } from "./modelSteps.js";
import { store } from "./storeProxy.js";
import {
  DEFAULT_CAMPAIGN_CONFIG,
  approveModelUpdate,
  pauseUpdate,
  resumeUpdate,
  setKUpdate,
  statusQuery,
  stopUpdate,
  type CampaignConfig,
  type CampaignEnd,
  type CampaignInput,
  type CampaignResult,
  type ImageRef,
  type PredictedItem,
  type RoundSummary,
} from "./types.js";

const selector = proxyActivities<SelectActivities>({ startToCloseTimeout: "1 minute" });
const reporter = proxyActivities<ReportActivities>({ startToCloseTimeout: "2 minutes" });

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
        if (st.mode === "continuous") throw new Error("k has no meaning in continuous mode: doctors pull one image at a time");
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
    mode: config.mode ?? "rounds",
    continuous: null,
  };
  registerHandlers(st);
  registerContinuousHandlers(st, config, input.projectId);

  let outcome: CampaignEnd | "next";
  try {
    outcome = await st.scope.run(() =>
      config.mode === "continuous" ? runContinuous(st, config, input.projectId) : runRound(st, config, input.projectId),
    );
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
  const { trained, modelId } = await trainModel({
    campaignId: st.campaignId,
    config,
    round,
    labelled: c.labelled,
    previousModelUri: c.previousModelUri,
    onTraining: () => enterPhase(st, "training"),
  });
  c.previousModelUri = trained.model_uri;

  await enterPhase(st, "evaluating", c.test.length);
  // The test metrics, and how many labelled images this model learnt from (the learning curve's x).
  const metrics = { ...(await evaluate(config, c.test, trained.model_uri, `${prefix}test/`)), labelled_images: c.labelled.length };
  const summary = newRoundSummary(round, { trained, modelId }, metrics);
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

async function correctionRound(
  st: RunState,
  config: CampaignConfig,
  projectId: string,
  summary: RoundSummary,
  outPrefix: string,
): Promise<void> {
  const c = st.carry;
  // Honeypots (issue 14) are predicted in the same call as the pool, in a seeded order, so that
  // neither their prediction versions nor their tasks stand out by id or time.
  const honeypots = nextHoneypots(st, config);
  const mixSeed = config.seed * 1009 + summary.round;
  const toPredict = honeypots.length > 0 ? seededShuffle([...c.pool, ...honeypots], mixSeed) : c.pool;
  await enterPhase(st, "predicting", toPredict.length);
  const predicted = await predictPool({
    campaignId: st.campaignId,
    config,
    round: summary.round,
    modelId: summary.modelId,
    modelUri: summary.modelUri,
    pool: toPredict,
    outPrefix,
  });
  const { versions } = predicted;
  const isHoneypot = (imageId: string) => honeypots.some((h) => h.imageId === imageId);

  await enterPhase(st, "selecting");
  const { imageIds } = await selector.selectImages({
    strategy: c.strategy,
    k: c.k,
    seed: config.seed,
    round: summary.round,
    candidates: predicted.items
      .filter((p) => !isHoneypot(p.image_id))
      .map((p) => ({ imageId: p.image_id, uncertainty: p.uncertainty, embedding: p.embedding ?? null })),
  });
  summary.selected = imageIds;
  await store.recordRound({ campaignId: st.campaignId, summary });

  const byId = new Map<string, PredictedItem>(predicted.items.map((p) => [p.image_id, p]));
  const chosen = imageIds.map((id) => c.pool.find((p) => p.imageId === id) as ImageRef);
  const correction = (image: ImageRef, item: PredictedItem | undefined, versionId: string | undefined): TaskSpec => ({
    kind: "correct" as const,
    image,
    parentVersionId: versionId,
    predictionUri: item?.mask_uri,
  });
  let specs = chosen.map((image) => correction(image, byId.get(image.imageId), versions[image.imageId]));
  // Quality control (issue 14), only where the campaign asks for it, so other campaigns' histories
  // replay unchanged: a second doctor corrects the first ceil(fraction × K) images too, and
  // honeypots (test images, with their reference masks) are mixed in as ordinary corrections.
  // ceil with a tolerance: 0.07 × 100 is 7.000000000000001 in floating point, not 8 images.
  const doubled = Math.ceil((config.doubleCorrectionFraction ?? 0) * chosen.length - 1e-9);
  specs.push(...specs.slice(0, doubled).map((spec) => ({ ...spec, annotator: 1 })));
  if (honeypots.length > 0) {
    const traps = honeypots.map((image) => ({ ...correction(image, byId.get(image.imageId), versions[image.imageId]), honeypot: true }));
    specs = seededShuffle([...specs, ...traps], mixSeed + 1);
  }
  await enterPhase(st, "correcting");
  const results = await runTasks(st, config, projectId, specs);
  const answers = results.flatMap((result, i) => (specs[i]!.honeypot ? [] : [{ image: specs[i]!.image, result }]));
  c.labelled.push(...(await labelsWithConsensus({ campaignId: st.campaignId, config, round: summary.round, answers })));
  c.pool = c.pool.filter((p) => !imageIds.includes(p.imageId));
  summary.corrected = chosen.length;
  summary.correctionActiveMs = answers.reduce((sum, a) => sum + a.result.activeMs, 0);
  await store.recordRound({ campaignId: st.campaignId, summary });
}

/**
 * The round's honeypots: the next `honeypotsPerRound` test images (they carry reference masks) not
 * yet used as one. They are corrected like any other image (nothing in the task a doctor sees
 * marks them), their masks scored against the reference (store.scoreHoneypot) and never trained on.
 */
function nextHoneypots(st: RunState, config: CampaignConfig): ImageRef[] {
  const wanted = config.honeypotsPerRound ?? 0;
  if (wanted === 0) return [];
  const used = st.carry.honeypotsUsed ?? [];
  const images = st.carry.test.filter((t) => t.maskUri && !used.includes(t.imageId)).slice(0, wanted);
  st.carry.honeypotsUsed = [...used, ...images.map((i) => i.imageId)];
  return images;
}

