// The campaign on the time-skipping test server: the whole loop over three rounds with
// continue-as-new, pause/resume, approval, change of K, stop with open tasks, and replay
// of the recorded history. Real activities: select, augment (sharp on small PNGs),
// report, notify. Test-specific: MemoryStore (database) and fakeGpu (the Python worker);
// see helpers.ts for why.
import { existsSync, readdirSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { randomUUID } from "node:crypto";
import type { TestWorkflowEnvironment } from "@temporalio/testing";
import { WorkflowFailedError } from "@temporalio/client";
import { Worker } from "@temporalio/worker";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AppError } from "../../services/errors.js";
import {
  approveModel,
  pauseCampaign,
  queryCampaignStatus,
  resumeCampaign,
  setCampaignK,
  startCampaignWorkflow,
  stopCampaign,
  submitTaskUpdate,
} from "../../services/temporal.js";
import {
  GPU_TASK_QUEUE,
  TASK_QUEUE,
  type CampaignResult,
  type ConsensusInput,
  type CampaignStatus,
  type EvaluateInput,
  type PredictInput,
  type TrainInput,
} from "../../workflows/types.js";
import {
  createSandbox,
  createTimeSkippingEnv,
  gate,
  fakeGpu,
  historyFromFile,
  historyToFile,
  makeCampaignImages,
  MemoryStore,
  resultWithClockLocked,
  tsActivities,
  workflowBundle,
  type Sandbox,
  type FakeGpuOptions,
} from "./helpers.js";

const HISTORIES = path.join(path.dirname(new URL(import.meta.url).pathname), "histories");

let env: TestWorkflowEnvironment;
let sandbox: Sandbox;

beforeAll(async () => {
  env = await createTimeSkippingEnv();
});
afterAll(async () => {
  await env?.teardown();
});
afterEach(async () => {
  await sandbox?.cleanup();
});

const smallAugmentation = { seed: 3, steps: [{ op: "flip", modes: ["none", "h"] }, { op: "random_crop", size: [32, 32], count: 2 }] };

async function runWorkers<T>(
  store: MemoryStore,
  trainCalls: TrainInput[],
  f1ByRound: number[],
  fn: () => Promise<T>,
  calls: Pick<FakeGpuOptions, "predictCalls" | "evaluateCalls" | "consensusCalls"> = {},
): Promise<T> {
  const ts = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowBundle: await workflowBundle(),
    activities: tsActivities(sandbox, store),
  });
  const gpu = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: GPU_TASK_QUEUE,
    activities: fakeGpu({ blobs: sandbox.blobs, trainCalls, f1ByRound, ...calls }),
  });
  return gpu.runUntil(ts.runUntil(fn));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls the status query until `until` holds; meanwhile plays the doctors of open tasks. */
async function playUntil(
  store: MemoryStore,
  workflowId: string,
  until: (s: CampaignStatus) => boolean,
  opts: { answer?: boolean } = {},
): Promise<CampaignStatus> {
  const answered = new Set<string>();
  let status: CampaignStatus | null = null;
  for (let i = 0; i < 300; i++) {
    status = await queryCampaignStatus(env.client, workflowId);
    if (until(status)) return status;
    if (opts.answer ?? true) {
      for (const open of status.openTasks) {
        const task = store.taskByWorkflow(open.workflowId);
        if (!task || answered.has(open.workflowId)) continue;
        // The simulated doctor answers with the reference mask, stored before the update (as the API does).
        const versionId = store.storeVersion(task.taskId, `blob://images/${open.imageId}_mask.png`);
        const ok = await submitTaskUpdate(env.client, open.workflowId, {
          submissionId: `sub-${open.workflowId}`,
          versionId,
          parentVersionId: task.startVersionId,
          activeMs: open.kind === "annotate" ? 600_000 : 60_000,
        }).catch((err: unknown) => {
          if (err instanceof AppError && /not assigned yet/.test(err.message)) return null; // try again next poll
          throw err;
        });
        if (ok) answered.add(open.workflowId);
      }
    }
    await sleep(100);
  }
  throw new Error(`campaign ${workflowId} did not reach the expected state: ${JSON.stringify(status)}`);
}

describe("campaign", () => {
  it("runs seeds → augment → train → evaluate → select → corrections for three rounds, continuing as new", async () => {
    sandbox = await createSandbox();
    const images = await makeCampaignImages(sandbox.blobs, { seed: 2, pool: 5, test: 2 });
    const store = new MemoryStore(images);
    const trainCalls: TrainInput[] = [];
    const gpuCalls = { predictCalls: [] as PredictInput[], evaluateCalls: [] as EvaluateInput[] };
    const campaignId = `c${randomUUID().slice(0, 8)}`;
    const { result, firstRunId, describedRunId } = await runWorkers(store, trainCalls, [0.5, 0.6, 0.7], async () => {
      const started = await startCampaignWorkflow(env.client, {
        campaignId,
        projectId: "1",
        config: { k: 2, maxRounds: 3, targetF1: 0.95, augmentation: smallAugmentation },
      });
      const done = await playUntil(store, started.workflowId, (s) => s.phase === "completed");
      expect(done.openTasks).toEqual([]);
      const handle = env.client.workflow.getHandle(started.workflowId);
      const result = (await handle.result()) as CampaignResult;
      return { result, firstRunId: started.runId, describedRunId: (await handle.describe()).runId };
    }, gpuCalls);

    expect(result.reason).toBe("round_limit");
    // Images imported with a FOV mask (t1, p1) are predicted and evaluated inside it; the others
    // leave the FOV to the engine.
    const fovOfItems = (items: Array<{ image_id?: string; fov_uri?: string }>) => items.map((i) => [i.image_id, i.fov_uri ?? null]);
    expect(fovOfItems(gpuCalls.predictCalls[0]!.items)).toEqual([["t1", images.test[0]!.fovUri], ["t2", null]]);
    expect(fovOfItems(gpuCalls.evaluateCalls[0]!.items)).toEqual([["t1", images.test[0]!.fovUri], ["t2", null]]);
    expect(fovOfItems(gpuCalls.predictCalls[1]!.items)).toContainEqual(["p1", images.pool[0]!.fovUri]);
    const valFov = trainCalls[0]!.val.map((v) => v.fov_uri ?? null);
    expect(valFov).toEqual([images.seed[0]!.fovUri, null]);
    expect(result.rounds.map((r) => r.metrics.f1)).toEqual([0.5, 0.6, 0.7]);
    // Uncertainty selection: the fake scores rise with the image number.
    expect(result.rounds.map((r) => r.selected)).toEqual([["p5", "p4"], ["p3", "p2"], []]);
    expect(result.rounds.map((r) => r.corrected)).toEqual([2, 2, 0]);
    expect(result.rounds[0]?.correctionActiveMs).toBe(120_000);
    expect(describedRunId).not.toBe(firstRunId); // each round after the first is a new run

    // Each retraining starts from the previous model, on the augmented labelled set (×4 per image).
    expect(trainCalls.map((t) => t.init_model_uri ?? null)).toEqual([null, result.rounds[0]?.modelUri, result.rounds[1]?.modelUri]);
    expect(trainCalls.map((t) => t.train.length)).toEqual([8, 16, 24]);
    expect(trainCalls.map((t) => t.val.length)).toEqual([2, 4, 6]);
    for (const ex of trainCalls[2]!.train) expect(await sandbox.blobs.exists(ex.image_uri)).toBe(true);

    // Tasks: 2 seed annotations, then 2 corrections per round starting from the prediction.
    const tasks = [...store.tasks.values()];
    expect(tasks.map((t) => `${t.kind}:${t.round}:${t.imageId}`).sort()).toEqual(
      ["annotate:0:s1", "annotate:0:s2", "correct:0:p4", "correct:0:p5", "correct:1:p2", "correct:1:p3"].sort(),
    );
    expect(tasks.filter((t) => t.kind === "correct").every((t) => t.startVersionId?.startsWith(`pred-${t.imageId}-`))).toBe(true);
    expect(tasks.every((t) => t.state === "done")).toBe(true);
    expect(store.campaignStates.at(-1)).toBe("completed");
    // Every phase is mirrored into the database as it starts, with its round.
    expect(store.campaignPhases.slice(0, 4)).toEqual(["0:seeding", "0:augmenting", "0:training", "0:evaluating"]);
    expect(store.campaignPhases).toContain("1:correcting");
    expect(store.campaignPhases.at(-1)).toBe("2:completed");
    expect(store.rounds.get("0")).toMatchObject({ selected: ["p5", "p4"], corrected: 2 });

    const report = JSON.parse((await sandbox.blobs.get(result.reportUri as string)).toString("utf8"));
    expect(report.rounds.map((r: { f1: number; images_corrected: number }) => [r.f1, r.images_corrected])).toEqual([
      [0.5, 2],
      [0.6, 2],
      [0.7, 0],
    ]);
    expect(report.seed_active_minutes).toBe(20);
    expect((await sandbox.outbox()).filter((m) => m.meta.template === "assigned")).toHaveLength(6);

    // The first run's history (seeds, round 0, continue-as-new) replays deterministically.
    const history = await env.client.workflow.getHandle(`campaign-${campaignId}`, firstRunId).fetchHistory();
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, `campaign-${campaignId}`);
    if (process.env.MEDLOOP_RECORD_HISTORIES) {
      await mkdir(HISTORIES, { recursive: true });
      await writeFile(path.join(HISTORIES, "campaign-round0.json"), historyToFile(history));
    }
  });

  it("quality control: two doctors per seed and per doubled correction become consensus labels; honeypots are scored, never trained on", async () => {
    sandbox = await createSandbox();
    const images = await makeCampaignImages(sandbox.blobs, { seed: 2, pool: 4, test: 2 });
    const store = new MemoryStore(images);
    const trainCalls: TrainInput[] = [];
    const gpuCalls = { predictCalls: [] as PredictInput[], consensusCalls: [] as ConsensusInput[] };
    const campaignId = `c${randomUUID().slice(0, 8)}`;
    const result = await runWorkers(store, trainCalls, [0.5, 0.6], async () => {
      const started = await startCampaignWorkflow(env.client, {
        campaignId,
        projectId: "1",
        config: {
          k: 2,
          maxRounds: 2,
          targetF1: 0.95,
          augmentation: smallAugmentation,
          annotatorsPerSeed: 2,
          doubleCorrectionFraction: 0.5,
          consensus: "majority",
          honeypotsPerRound: 1,
        },
      });
      await playUntil(store, started.workflowId, (s) => s.phase === "completed");
      return (await env.client.workflow.getHandle(started.workflowId).result()) as CampaignResult;
    }, gpuCalls);
    expect(result.reason).toBe("round_limit");
    const tasks = [...store.tasks.values()];
    // Each seed image twice, by two different doctors; the second annotator's workflow id ends in -a1.
    for (const seed of ["s1", "s2"]) {
      const mine = tasks.filter((t) => t.imageId === seed);
      expect(mine.map((t) => t.workflowId).sort()).toEqual([`task-${campaignId}-r0-${seed}`, `task-${campaignId}-r0-${seed}-a1`]);
      expect(new Set(mine.map((t) => t.assigneeId)).size).toBe(2);
    }
    // Consensus of the seeds, then of the one doubled correction (ceil(0.5 × 2)), by majority vote.
    expect(gpuCalls.consensusCalls.map((c) => [c.method, c.items.map((i) => [i.image_id, i.mask_uris.length])])).toEqual([
      ["majority", [["s1", 2], ["s2", 2]]],
      ["majority", [["p4", 2]]],
    ]);
    expect(store.consensus.map((c) => [c.round, c.imageId, c.sources.map((s) => s.sensitivity)])).toEqual([
      [0, "s1", [0.9, 0.8]],
      [0, "s2", [0.9, 0.8]],
      [0, "p4", [0.9, 0.8]],
    ]);
    // One honeypot (a test image, predicted and sent as an ordinary correction), scored, not trained on.
    const honeypots = tasks.filter((t) => t.honeypot);
    expect(honeypots.map((t) => [t.imageId, t.kind])).toEqual([["t1", "correct"]]);
    expect(store.honeypotScores.map((h) => h.taskId)).toEqual([honeypots[0]!.taskId]);
    // Predicted in the same call as the pool (its version ids do not stand out), never selected.
    const poolCall = gpuCalls.predictCalls.find((p) => p.out_prefix.endsWith("/pool/"))!;
    expect(poolCall.items.map((i) => i.image_id).sort()).toEqual(["p1", "p2", "p3", "p4", "t1"]);
    // Training: 2 seed labels, then 2 seeds + 2 corrections (×4 augmented each): one label per image.
    expect(trainCalls.map((t) => t.train.length)).toEqual([8, 16]);
    expect(result.rounds[0]).toMatchObject({ selected: ["p4", "p3"], corrected: 2 });
  });

  it("pauses, waits for approval, changes K, refuses bad updates and stops with its open tasks cancelled", async () => {
    sandbox = await createSandbox();
    const images = await makeCampaignImages(sandbox.blobs, { seed: 1, pool: 4, test: 1 });
    const store = new MemoryStore(images);
    const trainCalls: TrainInput[] = [];
    const campaignId = `c${randomUUID().slice(0, 8)}`;
    const result = await runWorkers(store, trainCalls, [0.5], async () => {
      const { workflowId } = await startCampaignWorkflow(env.client, {
        campaignId,
        projectId: "1",
        config: { k: 1, maxRounds: 3, requireApproval: true, augmentation: smallAugmentation },
      });
      await playUntil(store, workflowId, (s) => s.openTasks.length === 1, { answer: false });
      const paused = await pauseCampaign(env.client, workflowId);
      expect(paused.paused).toBe(true);
      // The seed is answered, but the paused campaign holds before augmenting.
      await playUntil(store, workflowId, (s) => s.openTasks.length === 0 && s.labelled === 1);
      await sleep(1500);
      const held = await queryCampaignStatus(env.client, workflowId);
      expect(held).toMatchObject({ phase: "seeding", paused: true });
      expect(trainCalls).toHaveLength(0);

      await resumeCampaign(env.client, workflowId);
      await playUntil(store, workflowId, (s) => s.phase === "awaiting_approval", { answer: false });
      expect(trainCalls).toHaveLength(1);

      const refusals: Array<[() => Promise<unknown>, RegExp]> = [
        [() => approveModel(env.client, workflowId, 1), /round 1 has no model yet/],
        [() => setCampaignK(env.client, workflowId, 0), /k must be an integer from 1 to 1000/],
      ];
      for (const [call, message] of refusals) {
        const err = await call().catch((e: unknown) => e);
        expect((err as AppError).code).toBe("conflict");
        expect((err as AppError).message).toMatch(message);
      }
      expect(await setCampaignK(env.client, workflowId, 2)).toEqual({ previous: 1, k: 2 });
      const approved = await approveModel(env.client, workflowId, 0, "5");
      expect(approved).toMatchObject({ round: 0, approved: true });
      expect(store.approvals).toEqual([0]);
      const again = await approveModel(env.client, workflowId, 0).catch((e: unknown) => e);
      expect((again as AppError).message).toMatch(/already approved/);

      // With K = 2 the round sends two correction tasks; stop while they are open.
      const correcting = await playUntil(store, workflowId, (s) => s.phase === "correcting" && s.openTasks.length === 2, {
        answer: false,
      });
      expect(correcting.rounds[0]?.selected).toHaveLength(2);
      const stopping = await stopCampaign(env.client, workflowId, "enough");
      expect(stopping.stopRequested).toBe(true);
      const result = (await env.client.workflow.getHandle(workflowId).result()) as CampaignResult;
      const late = await pauseCampaign(env.client, workflowId).catch((e: unknown) => e);
      expect(late).toBeInstanceOf(Error);
      return result;
    });
    expect(result.reason).toBe("stopped");
    const corrections = [...store.tasks.values()].filter((t) => t.kind === "correct");
    expect(corrections.map((t) => [t.state, t.cancelReason])).toEqual([
      ["cancelled", "campaign stopped"],
      ["cancelled", "campaign stopped"],
    ]);
    expect(store.campaignStates).toEqual(["running", "paused", "running", "stopped"]);
    expect(store.campaignPhases.at(-1)).toMatch(/^\d+:stopped$/);
    const report = JSON.parse((await sandbox.blobs.get(result.reportUri as string)).toString("utf8"));
    expect(report.reason).toBe("stopped");
  });

  it("ends early when the test F1 reaches the target", async () => {
    sandbox = await createSandbox();
    const images = await makeCampaignImages(sandbox.blobs, { seed: 1, pool: 3, test: 1 });
    const store = new MemoryStore(images);
    const campaignId = `c${randomUUID().slice(0, 8)}`;
    const result = await runWorkers(store, [], [0.5, 0.92], async () => {
      const { workflowId } = await startCampaignWorkflow(env.client, {
        campaignId,
        projectId: "1",
        config: { k: 1, maxRounds: 10, targetF1: 0.9, augmentation: smallAugmentation },
      });
      await playUntil(store, workflowId, (s) => s.phase === "completed");
      return (await env.client.workflow.getHandle(workflowId).result()) as CampaignResult;
    });
    expect(result.reason).toBe("target_reached");
    expect(result.rounds).toHaveLength(2);
  });
});


/** Polls `fn` every 50 ms until it returns something truthy or `ms` passed; returns the last value. */
async function waitFor<T>(fn: () => T | Promise<T>, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value || Date.now() > deadline) return value;
    await sleep(50);
  }
}

describe("stopping", () => {
  it("refuses pause, resume and K once a stop is requested, and writes the final state after every handler's write", async () => {
    sandbox = await createSandbox();
    const images = await makeCampaignImages(sandbox.blobs, { seed: 1, pool: 2, test: 1 });
    const store = new MemoryStore(images);
    const slowPause = gate();
    const campaignId = `c${randomUUID().slice(0, 8)}`;
    const { result, refusals, history } = await runWorkers(store, [], [0.5], async () => {
      const { workflowId, runId } = await startCampaignWorkflow(env.client, {
        campaignId,
        projectId: "1",
        config: { k: 1, maxRounds: 3, augmentation: smallAugmentation },
      });
      await playUntil(store, workflowId, (s) => s.openTasks.length === 1, { answer: false });
      // A pause accepted just before the stop, whose state write the database is slow to take.
      store.statusGate = { status: "paused", until: slowPause.until };
      const pausing = pauseCampaign(env.client, workflowId);
      await waitFor(() => store.statusCalls.includes("paused"));
      const stopping = await stopCampaign(env.client, workflowId, "enough");
      expect(stopping.stopRequested).toBe(true);
      // Right after the stop: every steering Update is refused, naming why.
      const refusals: string[] = [];
      for (const call of [
        () => resumeCampaign(env.client, workflowId),
        () => pauseCampaign(env.client, workflowId),
        () => setCampaignK(env.client, workflowId, 3),
      ]) {
        const err = await call().catch((e: unknown) => e);
        refusals.push(`${(err as AppError).code}: ${(err as AppError).message}`);
      }
      // Before the fix the stopped run wrote `stopped` (and its phase) while the pause's write was
      // held, and the pause's `paused` landed after it. Give it the time to do so, then let the
      // slow write through.
      await waitFor(() => store.campaignPhases.some((p) => p.endsWith(":stopped")), 2000);
      slowPause.open();
      expect((await pausing).paused).toBe(true);
      const result = (await env.client.workflow.getHandle(workflowId).result()) as CampaignResult;
      const history = await env.client.workflow.getHandle(workflowId, runId).fetchHistory();
      return { result, refusals, history };
    });
    expect(result.reason).toBe("stopped");
    // The final state is the last one written, after the pause's.
    expect(store.campaignStates.at(-1)).toBe("stopped");
    expect(store.campaignPhases.at(-1)).toMatch(/^0:stopped$/);
    expect(refusals).toEqual([
      "conflict: campaign is stopping (a stop was requested)",
      "conflict: campaign is stopping (a stop was requested)",
      "conflict: campaign is stopping (a stop was requested)",
    ]);
    expect(store.campaignStates).toEqual(["running", "paused", "stopped"]);
    // This run's history (patch marker, held handler, final writes) replays; it is kept in
    // histories/ too, so later changes must keep replaying the patched path.
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, `campaign-${campaignId}`);
    if (process.env.MEDLOOP_RECORD_HISTORIES) {
      await mkdir(HISTORIES, { recursive: true });
      await writeFile(path.join(HISTORIES, "campaign-stop-after-pause.json"), historyToFile(history));
    }
  });

  it("takes a cancellation of the workflow itself as a stop, and records the final state", async () => {
    sandbox = await createSandbox();
    const images = await makeCampaignImages(sandbox.blobs, { seed: 2, pool: 2, test: 1 });
    const store = new MemoryStore(images);
    const outcome = await runWorkers(store, [], [0.5], async () => {
      const { workflowId } = await startCampaignWorkflow(env.client, {
        campaignId: `c${randomUUID().slice(0, 8)}`,
        projectId: "1",
        config: { k: 1, maxRounds: 3, augmentation: smallAugmentation },
      });
      await playUntil(store, workflowId, (s) => s.openTasks.length === 2, { answer: false });
      for (let i = 0; i < 200 && store.tasks.size < 2; i++) await sleep(50);
      // One task records its cancellation slowly: the campaign must still finish after it.
      const slow = [...store.tasks.keys()].at(-1) as string;
      store.cancelTaskGate = { taskId: slow, until: new Promise((resolve) => setTimeout(resolve, 1000)) };
      // As `temporal workflow cancel` or Temporal's UI do it, past the API.
      const handle = env.client.workflow.getHandle(workflowId);
      await handle.cancel();
      // The held cancellation takes real time: a skipping clock would pass the stop's grace period.
      return resultWithClockLocked<CampaignResult>(env, workflowId).catch((e: unknown) => e);
    });
    // Before the fix the run closed as cancelled and its `failed` write, issued in the cancelled
    // scope, never ran: the row stayed `running`.
    expect(store.campaignStates.at(-1)).toBe("stopped");
    expect((outcome as CampaignResult).reason).toBe("stopped");
    expect(store.campaignPhases.at(-1)).toBe("0:stopped");
    expect([...store.tasks.values()].map((t) => t.state)).toEqual(["cancelled", "cancelled"]);
    // Before, the run went on to finish at the first task's cancellation, and closing it could
    // terminate the other task before that one recorded its own: its row stayed open.
    expect(store.writes.slice(-3).map((w) => w.split(":")[0])).toEqual(["cancel", "cancel", "state"]);
  });

  it("finishes stopped when stopped while the project has no doctor to take its seed tasks", async () => {
    sandbox = await createSandbox();
    const images = await makeCampaignImages(sandbox.blobs, { seed: 2, pool: 2, test: 1 });
    const store = new MemoryStore(images, []);
    const result = await runWorkers(store, [], [0.5], async () => {
      const { workflowId } = await startCampaignWorkflow(env.client, {
        campaignId: `c${randomUUID().slice(0, 8)}`,
        projectId: "1",
        config: { k: 1, maxRounds: 3, augmentation: smallAugmentation },
      });
      await playUntil(store, workflowId, (s) => s.openTasks.length === 2, { answer: false });
      const stopping = await stopCampaign(env.client, workflowId, "no doctors yet");
      expect(stopping.stopRequested).toBe(true);
      // Before, every task kept retrying createTask until a doctor came, and the stop waited with them.
      return (await env.client.workflow.getHandle(workflowId).result()) as CampaignResult;
    });
    expect(result.reason).toBe("stopped");
    expect(store.campaignStates.at(-1)).toBe("stopped");
    expect(store.tasks.size).toBe(0);
  });

  it("finishes stopped, instead of continuing as new, when the stop comes as the round ends", async () => {
    sandbox = await createSandbox();
    const images = await makeCampaignImages(sandbox.blobs, { seed: 1, pool: 3, test: 1 });
    const store = new MemoryStore(images);
    const slowPause = gate();
    const campaignId = `c${randomUUID().slice(0, 8)}`;
    const outcome = await runWorkers(store, [], [0.5, 0.6, 0.7], async () => {
      const { workflowId, runId } = await startCampaignWorkflow(env.client, {
        campaignId,
        projectId: "1",
        config: { k: 1, maxRounds: 3, augmentation: smallAugmentation },
      });
      const correcting = await playUntil(store, workflowId, (s) => s.phase === "correcting" && s.openTasks.length === 1);
      // A pause whose state write is held keeps a handler running past the round's end: the run
      // waits for it before continuing as new, and the stop arrives in that wait.
      store.statusGate = { status: "paused", until: slowPause.until };
      const pausing = pauseCampaign(env.client, workflowId);
      await waitFor(() => store.statusCalls.includes("paused"));
      const open = correcting.openTasks[0]!;
      const task = store.taskByWorkflow(open.workflowId)!;
      await submitTaskUpdate(env.client, open.workflowId, {
        submissionId: `sub-${open.workflowId}`,
        versionId: store.storeVersion(task.taskId, `blob://images/${open.imageId}_mask.png`),
        parentVersionId: task.startVersionId,
        activeMs: 60_000,
      });
      await waitFor(() => store.rounds.get("0")?.corrected === 1);
      await sleep(500); // the round's last write is recorded; the run is now waiting for the pause handler
      await stopCampaign(env.client, workflowId, "enough");
      slowPause.open();
      await pausing;
      const handle = env.client.workflow.getHandle(workflowId);
      // Before the fix the stop was lost: the run continued as new (paused) and never ended.
      const described = await waitFor(async () => {
        const d = await handle.describe();
        return d.runId !== runId || d.status.name !== "RUNNING" ? d : null;
      });
      if (described?.runId !== runId) return { runId, describedRunId: described?.runId ?? null, result: null };
      return { runId, describedRunId: runId, result: (await handle.result()) as CampaignResult };
    });
    expect(outcome.describedRunId).toBe(outcome.runId);
    expect(outcome.result?.reason).toBe("stopped");
    expect(outcome.result?.rounds.map((r) => [r.round, r.corrected])).toEqual([[0, 1]]);
    expect(store.campaignStates.at(-1)).toBe("stopped");
  });
});

describe("a failing campaign", () => {
  it("fails with a clear reason and records the failure when the project has no seed images", async () => {
    sandbox = await createSandbox();
    const images = await makeCampaignImages(sandbox.blobs, { seed: 0, pool: 2, test: 1 });
    const store = new MemoryStore(images);
    const error = await runWorkers(store, [], [0.5], async () => {
      const { workflowId } = await startCampaignWorkflow(env.client, { campaignId: `c${randomUUID().slice(0, 8)}`, projectId: "1" });
      return env.client.workflow.getHandle(workflowId).result().catch((e: unknown) => e);
    });
    expect(error).toBeInstanceOf(WorkflowFailedError);
    expect(String((error as WorkflowFailedError).cause?.message)).toMatch(/the campaign has no seed images/);
    expect(store.campaignStates).toEqual(["failed"]);
  });
});

describe("recorded histories", () => {
  it("replay against the current workflow code", async () => {
    const files = existsSync(HISTORIES) ? readdirSync(HISTORIES).filter((f) => f.endsWith(".json")) : [];
    expect(files.length).toBeGreaterThan(0);
    const histories = await Promise.all(
      files.map(async (f) => ({ workflowId: f, history: historyFromFile(await readFile(path.join(HISTORIES, f), "utf8")) })),
    );
    const results = Worker.runReplayHistories({ workflowBundle: await workflowBundle() }, histories);
    let replayed = 0;
    for await (const r of results) {
      expect(r.error, `${r.workflowId}: ${String(r.error)}`).toBeUndefined();
      replayed += 1;
    }
    expect(replayed).toBe(files.length);
  });
});
