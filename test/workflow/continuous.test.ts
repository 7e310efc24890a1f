// A campaign in continuous mode on the time-skipping test server: after the seed round a trainer
// child workflow publishes models while doctors pull images one at a time (the `pull` Update).
// Checked: concurrent pulls never get the same image, a pull never waits for a training in
// progress, submissions during an update are coalesced into the next one, a training attempt
// lost mid-update is retried from the newest model, the label budget ends the campaign with a
// model trained on every label, and a stop cancels the trainer and the open pulled tasks.
// Same stand-ins as campaign.test.ts (helpers.ts): MemoryStore and fakeGpu.
import { randomUUID } from "node:crypto";
import type { TestWorkflowEnvironment } from "@temporalio/testing";
import { Context } from "@temporalio/activity";
import { ApplicationFailure } from "@temporalio/common";
import { Worker } from "@temporalio/worker";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AppError } from "../../services/errors.js";
import {
  pullNextImage,
  type CampaignStatusView,
  queryCampaignStatus,
  restartTaskFrom,
  setCampaignK,
  startCampaignWorkflow,
  stopCampaign,
  submitTaskUpdate,
} from "../../services/temporal.js";
import {
  GPU_TASK_QUEUE,
  TASK_QUEUE,
  trainerWorkflowId,
  type CampaignResult,

  type TrainInput,
} from "../../workflows/types.js";
import { createSandbox, createTimeSkippingEnv, fakeGpu, gate, makeCampaignImages, MemoryStore, tsActivities, workflowBundle, type Sandbox } from "./helpers.js";

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

const smallAugmentation = { seed: 3, steps: [{ op: "flip", modes: ["none"] }, { op: "random_crop", size: [32, 32], count: 1 }] };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


async function waitFor<T>(what: string, fn: () => T | Promise<T>, ms = 20_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function runWorkers<T>(store: MemoryStore, onTrain: (input: TrainInput) => Promise<void>, trainCalls: TrainInput[], fn: () => Promise<T>): Promise<T> {
  const ts = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowBundle: await workflowBundle(),
    activities: tsActivities(sandbox, store),
  });
  const gpu = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: GPU_TASK_QUEUE,
    activities: fakeGpu({ blobs: sandbox.blobs, trainCalls, onTrain, f1ByRound: [0.5, 0.6, 0.7, 0.75] }),
  });
  return gpu.runUntil(ts.runUntil(fn));
}

/** The doctor's answer: the reference mask stored as a version (as the API does), then the submit Update. */
async function submit(store: MemoryStore, taskWorkflowId: string): Promise<void> {
  const task = await waitFor(`task ${taskWorkflowId}`, () => store.taskByWorkflow(taskWorkflowId));
  const versionId = store.storeVersion(task.taskId, `blob://images/${task.imageId}_mask.png`);
  await submitTaskUpdate(env.client, taskWorkflowId, {
    submissionId: `sub-${taskWorkflowId}`,
    versionId,
    parentVersionId: task.startVersionId,
    activeMs: 60_000,
  });
}

async function status(workflowId: string): Promise<CampaignStatusView> {
  return queryCampaignStatus(env.client, workflowId);
}

/** Answers the seed tasks and waits until the first model is published. */
async function seedAndFirstModel(store: MemoryStore, workflowId: string): Promise<void> {
  const answered = new Set<string>();
  await waitFor("the first model", async () => {
    const s = await status(workflowId);
    for (const open of s.openTasks.filter((t) => t.kind === "annotate" && !answered.has(t.workflowId))) {
      if (!store.taskByWorkflow(open.workflowId)) continue;
      await submit(store, open.workflowId).then(
        () => answered.add(open.workflowId),
        (err: unknown) => {
          if (!(err instanceof AppError && /not assigned yet/.test(err.message))) throw err;
        },
      );
    }
    return s.continuous?.modelVersion === 0;
  });
}

async function refusal(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AppError);
  expect((err as AppError).code).toBe("conflict");
  return (err as AppError).message;
}

/** A campaign on one seed and two pool images with the stand-in workers running; `fn` drives it from its start. */
async function smallCampaign(config: Record<string, unknown>, fn: (store: MemoryStore, workflowId: string) => Promise<void>): Promise<void> {
  sandbox = await createSandbox();
  const store = new MemoryStore(await makeCampaignImages(sandbox.blobs, { seed: 1, pool: 2, test: 1 }));
  await runWorkers(store, async () => undefined, [], async () => {
    const { workflowId } = await startCampaignWorkflow(env.client, {
      campaignId: `c${randomUUID().slice(0, 8)}`,
      projectId: "1",
      config: { augmentation: smallAugmentation, ...config },
    });
    await fn(store, workflowId);
  });
}

describe("continuous campaign", () => {
  it("serves concurrent pulls distinct images without waiting for training, coalesces submissions, retries a lost update and ends at the label budget", async () => {
    sandbox = await createSandbox();
    const images = await makeCampaignImages(sandbox.blobs, { seed: 2, pool: 5, test: 1 });
    const store = new MemoryStore(images);
    const trainCalls: TrainInput[] = [];
    const holdUpdate1 = gate();
    const onTrain = async (input: TrainInput) => {
      if (!input.run_id.endsWith("-r1")) return;
      await holdUpdate1.until;
      // The first attempt of update 1 is lost (a gpu worker killed mid-update); Temporal retries it.
      if (Context.current().info.attempt === 1) throw ApplicationFailure.retryable("gpu worker lost", "WorkerLost");
    };
    const campaignId = `c${randomUUID().slice(0, 8)}`;
    const result = await runWorkers(store, onTrain, trainCalls, async () => {
      const { workflowId } = await startCampaignWorkflow(env.client, {
        campaignId,
        projectId: "1",
        config: { mode: "continuous", labelBudget: 3, strategy: "uncertainty", targetF1: 0.99, augmentation: smallAugmentation },
      });
      // Before the first model: refused with the reason.
      expect(await refusal(pullNextImage(env.client, workflowId, "11"))).toMatch(/seed images|no model yet/);
      await seedAndFirstModel(store, workflowId);
      expect(await refusal(setCampaignK(env.client, workflowId, 3))).toMatch(/continuous mode/);

      // Two doctors pull at once: two different images, each assigned to the doctor who pulled it.
      const [a, b] = await Promise.all([pullNextImage(env.client, workflowId, "11"), pullNextImage(env.client, workflowId, "12")]);
      expect(a.imageId).not.toBe(b.imageId);
      expect([a.imageId, b.imageId].sort()).toEqual(["p4", "p5"]); // the two most uncertain under model 0
      expect([a.modelVersion, b.modelVersion]).toEqual([0, 0]);
      expect((await waitFor("task a", () => store.taskByWorkflow(a.taskWorkflowId))).assigneeId).toBe("11");
      expect((await waitFor("task b", () => store.taskByWorkflow(b.taskWorkflowId))).assigneeId).toBe("12");
      // Pulling again with a pulled task open gives that task back.
      expect(await pullNextImage(env.client, workflowId, "11")).toMatchObject({ imageId: a.imageId, existing: true });

      // Doctor 11 submits: update 1 starts (and is held). A pull meanwhile does not wait for it.
      await submit(store, a.taskWorkflowId);
      await waitFor("update 1 training", () => trainCalls.some((t) => t.run_id.endsWith("-r1")));
      const c = await pullNextImage(env.client, workflowId, "11");
      expect(c).toMatchObject({ modelVersion: 0, existing: false });
      expect([a.imageId, b.imageId]).not.toContain(c.imageId);
      // The budget of 3 pulls is used up.
      expect(await refusal(pullNextImage(env.client, workflowId, "13"))).toMatch(/label budget/);
      // Two submissions during update 1: both go into update 2 together.
      await submit(store, b.taskWorkflowId);
      await submit(store, c.taskWorkflowId);
      await waitFor("both labels pending", async () => (await status(workflowId)).trainer?.pendingLabels === 2);
      holdUpdate1.open();
      await env.sleep(60_000); // past the training activity's retry interval
      return (await env.client.workflow.getHandle(workflowId).result()) as CampaignResult;
    });

    expect(result.reason).toBe("label_budget");
    // Update 0 on the seeds; update 1 (two attempts) on seeds + 1; update 2 on seeds + 3.
    const byRun = (suffix: string) => trainCalls.filter((t) => t.run_id.endsWith(suffix));
    expect(byRun("-r0").map((t) => t.val.length)).toEqual([2]);
    expect(byRun("-r1").map((t) => t.val.length)).toEqual([3, 3]);
    expect(byRun("-r2").map((t) => t.val.length)).toEqual([5]);
    expect(byRun("-r3")).toEqual([]);
    expect(result.rounds.map((r) => r.round)).toEqual([0, 1, 2]);
    expect(result.rounds.map((r) => r.metrics.labelled_images)).toEqual([2, 3, 5]); // what each version learnt from
    // Each update fine-tunes the newest model.
    expect(byRun("-r2")[0]?.init_model_uri).toBe(result.rounds[1]?.modelUri);
    expect(result.rounds[0]).toMatchObject({ corrected: 3, correctionActiveMs: 180_000 });
    expect(result.rounds[0]?.selected).toHaveLength(3);
    const corrections = [...store.tasks.values()].filter((t) => t.kind === "correct");
    expect(corrections.map((t) => t.state)).toEqual(["done", "done", "done"]);
    expect(corrections.every((t) => t.startVersionId?.startsWith(`pred-${t.imageId}-`))).toBe(true);
    const trainer = await env.client.workflow.getHandle(trainerWorkflowId(campaignId)).describe();
    expect(trainer.status.name).toBe("CANCELLED");
    expect(store.campaignStates.at(-1)).toBe("completed");
  });

  it("stops: the trainer is cancelled mid-update and the open pulled task is cancelled", async () => {
    sandbox = await createSandbox();
    const images = await makeCampaignImages(sandbox.blobs, { seed: 1, pool: 3, test: 1 });
    const store = new MemoryStore(images);
    const trainCalls: TrainInput[] = [];
    const never = gate();
    const campaignId = `c${randomUUID().slice(0, 8)}`;
    const result = await runWorkers(
      store,
      async (input) => {
        if (input.run_id.endsWith("-r1")) await Promise.race([never.until, cancelled()]);
      },
      trainCalls,
      async () => {
        const { workflowId } = await startCampaignWorkflow(env.client, {
          campaignId,
          projectId: "1",
          config: { mode: "continuous", strategy: "diverse", targetF1: 0.99, augmentation: smallAugmentation },
        });
        await seedAndFirstModel(store, workflowId);
        const first = await pullNextImage(env.client, workflowId, "11");
        await submit(store, first.taskWorkflowId);
        const open = await pullNextImage(env.client, workflowId, "12");
        await waitFor("update 1 training", async () => (await status(workflowId)).trainer?.training === true);
        await waitFor("the task row", () => store.taskByWorkflow(open.taskWorkflowId));
        await stopCampaign(env.client, workflowId, "enough");
        const result = (await env.client.workflow.getHandle(workflowId).result()) as CampaignResult;
        expect(store.taskByWorkflow(open.taskWorkflowId)?.state).toBe("cancelled");
        return result;
      },
    );
    never.open();
    expect(result.reason).toBe("stopped");
    const trainer = await env.client.workflow.getHandle(trainerWorkflowId(campaignId)).describe();
    expect(trainer.status.name).toBe("CANCELLED");
    expect(store.campaignStates.at(-1)).toBe("stopped");
  });

  it("gives the image of a pulled task cancelled on its own back to the pool, under a new task", async () => {
    await smallCampaign({ mode: "continuous", labelBudget: 1, strategy: "uncertainty", targetF1: 0.99 }, async (store, workflowId) => {
      await seedAndFirstModel(store, workflowId);
      const first = await pullNextImage(env.client, workflowId, "11");
      await waitFor("the task row", () => store.taskByWorkflow(first.taskWorkflowId));
      // Cancelled through Temporal (not by the campaign): the image and the budget come back.
      await env.client.workflow.getHandle(first.taskWorkflowId).cancel();
      await waitFor("the claim released", async () => (await status(workflowId)).continuous?.pullable === 1);
      expect(store.taskByWorkflow(first.taskWorkflowId)?.state).toBe("cancelled");
      const again = await pullNextImage(env.client, workflowId, "12");
      expect(again.imageId).toBe(first.imageId); // still the most uncertain image
      expect(again.taskWorkflowId).not.toBe(first.taskWorkflowId); // a new task, not the cancelled one
      expect((await waitFor("the new task row", () => store.taskByWorkflow(again.taskWorkflowId))).assigneeId).toBe("12");
      await submit(store, again.taskWorkflowId);
      const result = (await env.client.workflow.getHandle(workflowId).result()) as CampaignResult;
      expect(result.reason).toBe("label_budget");
    });
  });

  it("a pulled task restarts from a newer prediction: submissions build on it (or the first start), not on others", async () => {
    await smallCampaign({ mode: "continuous", labelBudget: 1, targetF1: 0.99 }, async (store, workflowId) => {
      await seedAndFirstModel(store, workflowId);
      const pulled = await pullNextImage(env.client, workflowId, "11");
      const task = await waitFor("the task row", () => store.taskByWorkflow(pulled.taskWorkflowId));
      const answer = await restartTaskFrom(env.client, pulled.taskWorkflowId, "newer-7");
      expect(answer.startVersionIds).toEqual([task.startVersionId, "newer-7"]);
      const versionId = store.storeVersion(task.taskId, `blob://images/${task.imageId}_mask.png`);
      const base = { submissionId: "sub-restart", versionId, activeMs: 1000 };
      expect(await refusal(submitTaskUpdate(env.client, pulled.taskWorkflowId, { ...base, parentVersionId: "other-3" }))).toMatch(/stale version: expected parent .* or newer-7/);
      await submitTaskUpdate(env.client, pulled.taskWorkflowId, { ...base, parentVersionId: "newer-7" });
      // Once submitted, no restart.
      expect(await refusal(restartTaskFrom(env.client, pulled.taskWorkflowId, "newer-8"))).toMatch(/submitted|completed/);
      const result = (await env.client.workflow.getHandle(workflowId).result()) as CampaignResult;
      expect(result.reason).toBe("label_budget");
    });
  });

  it("refuses a pull on a campaign that runs in rounds", async () => {
    await smallCampaign({}, async (_store, workflowId) => {
      expect(await refusal(pullNextImage(env.client, workflowId, "11"))).toMatch(/runs in rounds/);
      await waitFor("the seed task", async () => (await status(workflowId)).openTasks.length > 0);
      await stopCampaign(env.client, workflowId, "done");
      await env.client.workflow.getHandle(workflowId).result();
    });
  });
});

/** Resolves when the running activity is cancelled (its heartbeat delivers the cancellation). */
function cancelled(): Promise<void> {
  const ctx = Context.current();
  return new Promise((resolve) => {
    const beat = setInterval(() => ctx.heartbeat(), 100);
    ctx.cancelled.catch(() => {
      clearInterval(beat);
      resolve();
    });
  });
}
