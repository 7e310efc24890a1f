// A gpu worker killed (SIGKILL, no goodbye) in the middle of training — a campaign in rounds, and
// a continuous campaign's trainer: the server notices through the missed heartbeats, retries the
// activity on a new worker, and the campaign goes on. The training's heartbeats are read through
// services/temporal.ts (describe), as the API shows them. Test-specific activities: see helpers.ts.
import { spawn } from "node:child_process";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { Context } from "@temporalio/activity";
import type { TestWorkflowEnvironment } from "@temporalio/testing";
import { Worker } from "@temporalio/worker";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { repoRoot } from "../../services/config.js";
import { queryCampaignStatus, startCampaignWorkflow, stopCampaign, submitTaskUpdate, type CampaignStatusView } from "../../services/temporal.js";
import { GPU_TASK_QUEUE, TASK_QUEUE, type CampaignConfig, type CampaignResult, type TrainInput } from "../../workflows/types.js";
import { createSandbox, createTimeSkippingEnv, fakeGpu, makeCampaignImages, MemoryStore, resultWithClockLocked, tsActivities, workflowBundle, type Sandbox } from "./helpers.js";

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

async function until(workflowId: string, test: (s: CampaignStatusView) => boolean): Promise<CampaignStatusView> {
  for (let i = 0; i < 400; i++) {
    const status = await queryCampaignStatus(env.client, workflowId);
    if (test(status)) return status;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("campaign did not get there");
}

interface KillScenario {
  config: Partial<CampaignConfig>;
  /** When the doomed worker's training counts as under way (its epoch heartbeats show in the status). */
  training: (s: CampaignStatusView) => boolean;
  /** With the new gpu worker running: drives the campaign to its end. */
  finish: (workflowId: string) => Promise<CampaignResult>;
}

/**
 * Starts a campaign on one seed image with a gpu worker process that trains forever, answers the
 * seed, SIGKILLs that worker once training is under way, and lets a new (fake) gpu worker take
 * over. Returns the campaign's result and each training call the new worker received.
 */
async function killDuringTraining(scenario: KillScenario): Promise<{ result: CampaignResult; attempts: Array<{ attempt: number; details: unknown[] }>; trainCalls: TrainInput[] }> {
  sandbox = await createSandbox();
  const images = await makeCampaignImages(sandbox.blobs, { seed: 1, pool: 1, test: 1 });
  const store = new MemoryStore(images);
  const attempts: Array<{ attempt: number; details: unknown[] }> = [];
  const trainCalls: TrainInput[] = [];
  const ts = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowBundle: await workflowBundle(),
    activities: tsActivities(sandbox, store),
  });
  const result = await ts.runUntil(async () => {
    const child = spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, "test/workflow/fixtures/stuckGpuWorker.ts"), env.address], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "inherit"],
    });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    try {
      const { workflowId } = await startCampaignWorkflow(env.client, {
        campaignId: `k${randomUUID().slice(0, 8)}`,
        projectId: "1",
        config: { heartbeatTimeoutMs: 2000, augmentation: { seed: 1, steps: [{ op: "flip", modes: ["none"] }] }, ...scenario.config },
      });
      const seeding = await until(workflowId, (s) => s.openTasks.length === 1);
      const open = seeding.openTasks[0]!;
      await until(workflowId, () => store.taskByWorkflow(open.workflowId) !== undefined);
      const task = store.taskByWorkflow(open.workflowId)!;
      await submitTaskUpdate(env.client, open.workflowId, {
        submissionId: "seed-1",
        versionId: store.storeVersion(task.taskId, images.seed[0]!.imageUri.replace(".png", "_mask.png")),
        activeMs: 1000,
      });
      const training = await until(workflowId, (s) => {
        const hb = s.activities.find((a) => a.activityType === "train_segmentation")?.heartbeat as { epoch?: number } | null;
        return scenario.training(s) && (hb?.epoch ?? 0) >= 2;
      });
      expect(training.activities.find((a) => a.activityType === "train_segmentation")).toMatchObject({ attempt: 1 });
      child.kill("SIGKILL");
      await exited;

      const gpu = await Worker.create({
        connection: env.nativeConnection,
        taskQueue: GPU_TASK_QUEUE,
        activities: fakeGpu({
          blobs: sandbox.blobs,
          trainCalls,
          onTrain: async () => {
            const info = Context.current().info;
            attempts.push({ attempt: info.attempt, details: info.heartbeatDetails });
          },
        }),
      });
      return await gpu.runUntil(scenario.finish(workflowId));
    } finally {
      child.kill("SIGKILL");
      await exited;
    }
  });
  return { result, attempts, trainCalls };
}

it("completes the campaign after the gpu worker is killed during training", async () => {
  const { result, attempts, trainCalls } = await killDuringTraining({
    config: { maxRounds: 1 },
    training: (s) => s.phase === "training",
    // result() lets the server skip through the heartbeat timeout and the retry back-off.
    finish: (workflowId) => env.client.workflow.getHandle(workflowId).result() as Promise<CampaignResult>,
  });
  expect(result.reason).toBe("round_limit");
  expect(result.rounds).toHaveLength(1);
  // The retry ran as attempt 2. (The time-skipping server does not carry the killed
  // attempt's heartbeat details over to the retry, which the dev server does and the Python
  // engine uses to resume from its checkpoint: ml/tests/test_worker.py tests that resume.)
  expect(attempts.map((a) => a.attempt)).toEqual([2]);
  expect(trainCalls).toHaveLength(1);
});

it("continuous mode: the trainer's update resumes on a new gpu worker after the one training it is killed", async () => {
  const { result, attempts } = await killDuringTraining({
    config: { mode: "continuous" },
    training: (s) => s.trainer?.training === true,
    finish: async (workflowId) => {
      // The heartbeat timeout and the retry's back-off pass on the server's skipped clock.
      for (let i = 0; i < 100 && (await queryCampaignStatus(env.client, workflowId)).continuous?.modelVersion !== 0; i++) await env.sleep(5_000);
      await stopCampaign(env.client, workflowId, "done");
      // The stopped campaign needs no timer to end, only its own activities (the report, the
      // final state); beside a CPU-heavy process a skipping clock once timed the run out here.
      return await resultWithClockLocked<CampaignResult>(env, workflowId);
    },
  });
  expect(attempts.map((a) => a.attempt)).toEqual([2]); // the update's retry, on the new worker
  expect(result.rounds.map((r) => r.round)).toEqual([0]);
  expect(result.reason).toBe("stopped");
});
