// The annotation task on the time-skipping test server: days of reminder and escalation
// timers pass in seconds; submissions go through services/temporal.ts like the API's.
// Activities: the real notify (outbox .eml files), MemoryStore for the database (see helpers.ts).
import { randomUUID } from "node:crypto";
import { readdirSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { ApplicationFailure, CancelledFailure, WorkflowFailedError, type WorkflowHandle } from "@temporalio/client";
import type { TestWorkflowEnvironment } from "@temporalio/testing";
import { Worker } from "@temporalio/worker";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AppError } from "../../services/errors.js";
import { verifyTaskLink } from "../../services/mail.js";
import { queryTaskStatus, reviewNotifier, submitTaskUpdate } from "../../services/temporal.js";
import { TASK_QUEUE, type AnnotationTaskInput, type AnnotationTaskResult } from "../../workflows/types.js";
import {
  createSandbox,
  createTimeSkippingEnv,
  historyFromFile,
  historyToFile,
  MemoryStore,
  tsActivities,
  workflowBundle,
  type Sandbox,
} from "./helpers.js";

const DAY = 24 * 3600_000;
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

function taskInput(overrides: Partial<AnnotationTaskInput> = {}): AnnotationTaskInput {
  return {
    campaignId: "7",
    projectId: "3",
    round: 1,
    kind: "correct",
    image: { imageId: "42", imageUri: "blob://images/42.png", width: 48, height: 48 },
    parentVersionId: "900",
    predictionUri: "blob://runs/7/round-1/pool/42_mask.png",
    timing: { remindAfterMs: 1 * DAY, escalateAfterMs: 3 * DAY, maxReassignments: 1 },
    ...overrides,
  };
}

async function withWorker<T>(store: MemoryStore, fn: () => Promise<T>, overrides: Record<string, unknown> = {}): Promise<T> {
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowBundle: await workflowBundle(),
    activities: { ...tsActivities(sandbox, store), ...overrides },
  });
  return worker.runUntil(fn);
}

async function waitFor<T>(fn: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const value = await fn();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("condition not reached");
}

/** The task workflow's end, which must be a cancellation. */
async function cancelledEnd(handle: WorkflowHandle): Promise<unknown> {
  const err = await handle.result().then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause;
}

/** The second version stored for a task (the resubmission). */
function v2Of(store: MemoryStore, taskId: string): string {
  return [...store.versions.entries()].filter(([, v]) => v.taskId === taskId).map(([id]) => id)[1] as string;
}

describe("annotationTask", () => {
  it("reminds after a day, escalates and reassigns after three, then accepts the new doctor's submission", async () => {
    sandbox = await createSandbox();
    const store = new MemoryStore({ seed: [], pool: [], test: [] });
    const workflowId = `task-${randomUUID()}`;
    const result = await withWorker(store, async () => {
      const handle = await env.client.workflow.start("annotationTask", { taskQueue: TASK_QUEUE, workflowId, args: [taskInput()] });
      const task = await waitFor(async () => store.taskByWorkflow(workflowId));
      expect(task.assigneeId).toBe("11");
      expect(task.startVersionId).toBe("900");

      await env.sleep(DAY + 3600_000); // past the reminder
      const afterReminder = await queryTaskStatus(env.client, workflowId);
      expect(afterReminder).toMatchObject({ phase: "assigned", doctorId: "11", reminders: 1, reassignments: 0 });

      await env.sleep(2 * DAY); // past the escalation
      const afterEscalation = await queryTaskStatus(env.client, workflowId);
      expect(afterEscalation).toMatchObject({ doctorId: "12", reminders: 1, reassignments: 1 });
      expect(store.reassignments).toEqual([{ taskId: task.taskId, from: "11", to: "12" }]);

      const versionId = store.storeVersion(task.taskId, "blob://masks/42-v2.png");
      const reply = await submitTaskUpdate(env.client, workflowId, {
        submissionId: "sub-1",
        versionId,
        parentVersionId: "900",
        activeMs: 95_000,
        pixelsChanged: 321,
        width: 48,
        height: 48,
      });
      expect(reply).toMatchObject({ versionId, activeMs: 95_000, pixelsChanged: 321, doctorId: "12" });
      expect(reply.waitedMs).toBeGreaterThanOrEqual(3 * DAY); // workflow time, not wall-clock
      return (await handle.result()) as AnnotationTaskResult;
    });
    expect(result).toMatchObject({ imageId: "42", kind: "correct", maskUri: "blob://masks/42-v2.png", reminders: 1, reassignments: 1 });
    expect(store.tasks.get(result.taskId)?.state).toBe("done");

    const mails = (await sandbox.outbox()).sort((a, b) => (a.sentAt < b.sentAt ? -1 : 1));
    expect(mails.map((m) => [m.to, m.meta.template])).toEqual([
      ["ada@example.org", "assigned"],
      ["ada@example.org", "reminder"],
      ["ada@example.org", "reassigned_away"],
      ["ben@example.org", "assigned"],
    ]);
    const link = String(mails[3]?.meta.link);
    expect(mails[3]?.text).toContain(link);
    expect(verifyTaskLink(link, "test-secret")).toMatchObject({ taskId: result.taskId, doctorId: "12" });
    expect(verifyTaskLink(link.replace("doctor=12", "doctor=11"), "test-secret")).toBeNull();
  });

  it("refuses bad submissions in the validator and answers a repeated submission id with the first result", async () => {
    sandbox = await createSandbox();
    const store = new MemoryStore({ seed: [], pool: [], test: [] });
    const workflowId = `task-${randomUUID()}`;
    await withWorker(store, async () => {
      const handle = await env.client.workflow.start("annotationTask", { taskQueue: TASK_QUEUE, workflowId, args: [taskInput()] });
      const task = await waitFor(async () => store.taskByWorkflow(workflowId));
      await waitFor(async () => ((await queryTaskStatus(env.client, workflowId)).phase === "assigned" ? true : undefined));
      const versionId = store.storeVersion(task.taskId, "blob://masks/42-v1.png");
      const good = { submissionId: "sub-a", versionId, parentVersionId: "900", activeMs: 1000, pixelsChanged: 5, width: 48, height: 48 };

      const refusals: Array<[object, RegExp]> = [
        [{ ...good, versionId: "" }, /versionId is missing/],
        [{ ...good, parentVersionId: "899" }, /stale version: expected parent 900, got 899/],
        [{ ...good, width: 47 }, /mask is 47x48, image is 48x48/],
        [{ ...good, activeMs: -1 }, /activeMs/],
      ];
      for (const [bad, message] of refusals) {
        const err = await submitTaskUpdate(env.client, workflowId, bad as typeof good).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(AppError);
        expect((err as AppError).code).toBe("conflict");
        expect((err as AppError).message).toMatch(message);
      }
      expect((await queryTaskStatus(env.client, workflowId)).submission).toBeNull(); // nothing accepted

      const first = await submitTaskUpdate(env.client, workflowId, good);
      // A retried request: same submission id, even with other numbers, gets the first answer.
      const again = await submitTaskUpdate(env.client, workflowId, { ...good, activeMs: 5000 });
      expect(again).toEqual(first);
      await handle.result();
      // After completion too: the same id is answered from the workflow's result, another id is refused.
      expect(await submitTaskUpdate(env.client, workflowId, good)).toEqual(first);
      const other = await submitTaskUpdate(env.client, workflowId, { ...good, submissionId: "sub-b" }).catch((e: unknown) => e);
      expect((other as AppError).message).toMatch(/already completed/);
    });
    expect([...store.tasks.values()].map((t) => t.state)).toEqual(["done"]);
  });

  it("with review: a returned mask reopens the task from the submitted version; the resubmission is accepted; reviewers are reminded", async () => {
    sandbox = await createSandbox();
    const store = new MemoryStore({ seed: [], pool: [], test: [] });
    const workflowId = `task-${randomUUID()}`;
    const review = reviewNotifier(env.client);
    const result = await withWorker(store, async () => {
      const handle = await env.client.workflow.start("annotationTask", { taskQueue: TASK_QUEUE, workflowId, args: [taskInput({ review: true })] });
      const task = await waitFor(async () => store.taskByWorkflow(workflowId));
      await waitFor(async () => ((await queryTaskStatus(env.client, workflowId)).phase === "assigned" ? true : undefined));
      const v1 = store.storeVersion(task.taskId, "blob://masks/42-v1.png");
      const first = { submissionId: "sub-1", versionId: v1, parentVersionId: "900", activeMs: 1000, width: 48, height: 48 };
      await submitTaskUpdate(env.client, workflowId, first);
      const inReview = await waitFor(async () => {
        const s = await queryTaskStatus(env.client, workflowId);
        return s.phase === "in_review" && s.reviewId ? s : undefined;
      });
      expect(inReview.reviewId).toBe(`review-${v1}`);
      // Another submission while the mask is in review is refused; a review that is not the awaited one too.
      const meanwhile = await submitTaskUpdate(env.client, workflowId, { ...first, submissionId: "sub-x" }).catch((e: unknown) => e);
      expect((meanwhile as AppError).message).toMatch(/in review/);
      const wrong = await review(workflowId, { reviewId: "review-nope", decision: "accept" }).catch((e: unknown) => e);
      expect((wrong as AppError).code).toBe("conflict");

      await env.sleep(DAY + 3600_000); // the reviewers are reminded, the task is not reassigned
      expect(store.reviewReminders).toEqual([`review-${v1}`]);

      await review(workflowId, { reviewId: `review-${v1}`, decision: "return" });
      const reopened = await waitFor(async () => {
        const s = await queryTaskStatus(env.client, workflowId);
        return s.phase === "assigned" && s.returned === 1 ? s : undefined;
      });
      expect(reopened.submission).toBeNull();
      // The returned submission retried gets its first answer back, not a second acceptance.
      expect((await submitTaskUpdate(env.client, workflowId, first)).versionId).toBe(v1);
      expect((await queryTaskStatus(env.client, workflowId)).phase).toBe("assigned");
      // The resubmission builds on the returned version.
      const v2 = store.storeVersion(task.taskId, "blob://masks/42-v2.png");
      await submitTaskUpdate(env.client, workflowId, { ...first, submissionId: "sub-2", versionId: v2, parentVersionId: v1 });
      await waitFor(async () => ((await queryTaskStatus(env.client, workflowId)).reviewId === `review-${v2}` ? true : undefined));
      await review(workflowId, { reviewId: `review-${v2}`, decision: "accept" });
      // A retried decision is answered again.
      expect(await review(workflowId, { reviewId: `review-${v2}`, decision: "accept" }).catch(() => "done")).toBeDefined();
      return (await handle.result()) as AnnotationTaskResult;
    });
    expect(result).toMatchObject({ versionId: v2Of(store, result.taskId), maskUri: "blob://masks/42-v2.png" });
    expect(store.reviews.map((r) => r.versionId)).toHaveLength(2);
    // The returned task's row was reopened by the workflow, from the returned version.
    expect(store.reopened).toEqual([{ taskId: result.taskId, versionId: store.reviews[0]!.versionId }]);
    expect(store.tasks.get(result.taskId)?.state).toBe("done");
    const mails = (await sandbox.outbox()).map((m) => m.meta.template).sort();
    expect(mails).toEqual(["assigned", "returned"]);
  });

  it("with review: a decision stored in the review's row whose Update never came is read at the next reminder", async () => {
    sandbox = await createSandbox();
    const store = new MemoryStore({ seed: [], pool: [], test: [] });
    const workflowId = `task-${randomUUID()}`;
    const result = await withWorker(store, async () => {
      const handle = await env.client.workflow.start("annotationTask", { taskQueue: TASK_QUEUE, workflowId, args: [taskInput({ review: true })] });
      const task = await waitFor(async () => store.taskByWorkflow(workflowId));
      await waitFor(async () => ((await queryTaskStatus(env.client, workflowId)).phase === "assigned" ? true : undefined));
      const v1 = store.storeVersion(task.taskId, "blob://masks/42-v1.png");
      await submitTaskUpdate(env.client, workflowId, { submissionId: "sub-1", versionId: v1, parentVersionId: "900", activeMs: 1000 });
      await waitFor(async () => ((await queryTaskStatus(env.client, workflowId)).reviewId ? true : undefined));
      // The reviewer's accept was stored, but Temporal was never told (the reviewer closed the page on a 503).
      store.storedDecisions.set(`review-${v1}`, "accept");
      await env.sleep(DAY + 3600_000);
      return (await handle.result()) as AnnotationTaskResult;
    });
    expect(result.versionId).toBe([...store.versions.keys()][0]);
    expect(store.reviewReminders).toHaveLength(1);
    expect((await sandbox.outbox()).map((m) => m.meta.template)).toEqual(["assigned"]); // nobody reminded of a decided review
  });

  it("holds a submission that arrives before the assignment is recorded until it is, instead of refusing it", async () => {
    sandbox = await createSandbox();
    const store = new MemoryStore({ seed: [], pool: [], test: [] });
    let release = () => {};
    store.createTaskGate = new Promise<void>((resolve) => (release = resolve));
    const workflowId = `task-${randomUUID()}`;
    const result = await withWorker(store, async () => {
      const handle = await env.client.workflow.start("annotationTask", { taskQueue: TASK_QUEUE, workflowId, args: [taskInput()] });
      await waitFor(async () => ((await queryTaskStatus(env.client, workflowId)).phase === "creating" ? true : undefined));
      const versionId = store.storeVersion("pending", "blob://masks/42-early.png");
      let settled = false;
      const submitted = submitTaskUpdate(env.client, workflowId, { submissionId: "sub-early", versionId, activeMs: 500 }).finally(() => {
        settled = true;
      });
      await new Promise((r) => setTimeout(r, 400)); // refused at least twice meanwhile
      expect(settled).toBe(false);
      release();
      const accepted = await submitted;
      await handle.result();
      return accepted;
    });
    expect(result).toMatchObject({ submissionId: "sub-early", activeMs: 500 });
    expect(result.taskId).not.toBe("");
    expect(store.tasks.get(result.taskId)?.state).toBe("done");
  });

  it("waits for a doctor to join the project, then assigns the task to them", async () => {
    sandbox = await createSandbox();
    const store = new MemoryStore({ seed: [], pool: [], test: [] }, []);
    const workflowId = `task-${randomUUID()}`;
    const status = await withWorker(store, async () => {
      const handle = await env.client.workflow.start("annotationTask", { taskQueue: TASK_QUEUE, workflowId, args: [taskInput()] });
      await waitFor(async () => (store.createTaskCalls >= 1 ? true : undefined));
      await env.sleep(3 * 3600_000); // rounds of attempts, then waits of up to 30 minutes
      expect(store.createTaskCalls).toBeGreaterThan(6);
      store.addDoctor({ userId: "11", email: "ada@example.org", name: "Ada" });
      await env.sleep(3600_000);
      const assigned = await queryTaskStatus(env.client, workflowId);
      await handle.cancel();
      await cancelledEnd(handle);
      return assigned;
    });
    expect(status).toMatchObject({ phase: "assigned", doctorId: "11" });
    expect(store.taskByWorkflow(workflowId)).toMatchObject({ assigneeId: "11", state: "cancelled" });
  });

  it("ends, cancelled and without a task row, when stopped while the project has no doctor yet", async () => {
    sandbox = await createSandbox();
    const store = new MemoryStore({ seed: [], pool: [], test: [] }, []);
    const workflowId = `task-${randomUUID()}`;
    const cause = await withWorker(store, async () => {
      const handle = await env.client.workflow.start("annotationTask", { taskQueue: TASK_QUEUE, workflowId, args: [taskInput()] });
      await waitFor(async () => (store.createTaskCalls >= 1 ? true : undefined));
      await env.sleep(3600_000);
      await handle.cancel();
      // Before, Temporal retried createTask until a doctor came, and the stop waited as long.
      return cancelledEnd(handle);
    });
    expect(cause).toBeInstanceOf(CancelledFailure);
    expect(store.tasks.size).toBe(0);
  });

  it("ends cancelled, and says so in its row, when stopped while its e-mail keeps failing", async () => {
    sandbox = await createSandbox();
    const store = new MemoryStore({ seed: [], pool: [], test: [] });
    const workflowId = `task-${randomUUID()}`;
    let mailAttempts = 0;
    const mailDown = {
      sendTaskEmail: async () => {
        mailAttempts += 1;
        throw ApplicationFailure.retryable("mail server down");
      },
    };
    const cause = await withWorker(
      store,
      async () => {
        const handle = await env.client.workflow.start("annotationTask", { taskQueue: TASK_QUEUE, workflowId, args: [taskInput()] });
        await waitFor(async () => (mailAttempts >= 1 ? true : undefined));
        await env.sleep(3600_000);
        await handle.cancel();
        return cancelledEnd(handle);
      },
      mailDown,
    );
    expect(mailAttempts).toBeGreaterThan(3);
    expect(cause).toBeInstanceOf(CancelledFailure);
    expect(store.taskByWorkflow(workflowId)).toMatchObject({ state: "cancelled", cancelReason: "campaign stopped" });
  });

  it("lets a createTask attempt that is running when the stop comes finish, and then cancels the task it made", async () => {
    sandbox = await createSandbox();
    const store = new MemoryStore({ seed: [], pool: [], test: [] });
    let release = () => {};
    store.createTaskGate = new Promise<void>((resolve) => (release = resolve));
    const workflowId = `task-${randomUUID()}`;
    const cause = await withWorker(store, async () => {
      const handle = await env.client.workflow.start("annotationTask", { taskQueue: TASK_QUEUE, workflowId, args: [taskInput()] });
      await waitFor(async () => (store.createTaskCalls >= 1 ? true : undefined)); // the attempt is held
      await handle.cancel();
      await new Promise((r) => setTimeout(r, 300)); // the stop is recorded while the attempt runs
      release();
      return cancelledEnd(handle);
    });
    expect(cause).toBeInstanceOf(CancelledFailure);
    expect(store.taskByWorkflow(workflowId)).toMatchObject({ state: "cancelled", cancelReason: "campaign stopped" });
  });

  it("keeps reminding the only doctor when nobody else can take the task", async () => {
    sandbox = await createSandbox();
    const store = new MemoryStore({ seed: [], pool: [], test: [] }, [{ userId: "11", email: "ada@example.org", name: "Ada" }]);
    const workflowId = `task-${randomUUID()}`;
    await withWorker(store, async () => {
      await env.client.workflow.start("annotationTask", {
        taskQueue: TASK_QUEUE,
        workflowId,
        args: [taskInput({ kind: "annotate", parentVersionId: undefined })],
      });
      await waitFor(async () => store.taskByWorkflow(workflowId));
      await env.sleep(7 * DAY);
      const status = await queryTaskStatus(env.client, workflowId);
      expect(status.doctorId).toBe("11");
      expect(status.reassignments).toBe(0);
      expect(status.reminders).toBeGreaterThanOrEqual(2); // one per 3-day cycle
      await env.client.workflow.getHandle(workflowId).cancel();
      await waitFor(async () => (store.taskByWorkflow(workflowId)?.state === "cancelled" ? true : undefined));
    });
    expect(store.taskByWorkflow(workflowId)?.cancelReason).toBe("campaign stopped");
  });

  it("lets the createTask activity pick the doctor, so six tasks started together go 3:3", async () => {
    sandbox = await createSandbox();
    const store = new MemoryStore({ seed: [], pool: [], test: [] });
    const ids = Array.from({ length: 6 }, (_, i) => `task-${randomUUID()}-${i}`);
    await withWorker(store, async () => {
      await Promise.all(
        ids.map((workflowId, i) =>
          env.client.workflow.start("annotationTask", {
            taskQueue: TASK_QUEUE,
            workflowId,
            args: [taskInput({ kind: "annotate", parentVersionId: undefined, image: { imageId: String(50 + i), imageUri: `blob://images/${50 + i}.png`, width: 48, height: 48 } })],
          }),
        ),
      );
      await waitFor(async () => (ids.every((id) => store.taskByWorkflow(id)) ? true : undefined));
      // The status query names the doctor the activity chose. The store holds the task as soon as the
      // activity wrote it; the workflow learns the doctor only when it processes the activity's result,
      // so the query is awaited until it names someone (on a busy machine that comes later).
      for (const id of ids) {
        const doctorId = await waitFor(async () => (await queryTaskStatus(env.client, id)).doctorId ?? undefined);
        expect(doctorId).toBe(store.taskByWorkflow(id)!.assigneeId);
      }
      await Promise.all(ids.map((id) => env.client.workflow.getHandle(id).cancel()));
      // Keep the worker until every task is cancelled: the "assigned" mails are sent before that,
      // so none is cut off when the worker stops.
      await waitFor(async () => (ids.every((id) => store.taskByWorkflow(id)?.state === "cancelled") ? true : undefined));
    });
    expect(store.createdWith).toEqual(Array(6).fill("assign-in-create"));
    const perDoctor = (userId: string) => ids.filter((id) => store.taskByWorkflow(id)!.assigneeId === userId).length;
    expect([perDoctor("11"), perDoctor("12")]).toEqual([3, 3]);
    const mails = (await sandbox.outbox()).filter((m) => m.meta.template === "assigned");
    expect(mails.filter((m) => m.to === "ada@example.org")).toHaveLength(3);
  });

  it("a completed task's history replays, and so does every recorded task history", async () => {
    sandbox = await createSandbox();
    const store = new MemoryStore({ seed: [], pool: [], test: [] });
    const workflowId = `task-${randomUUID()}`;
    const history = await withWorker(store, async () => {
      const handle = await env.client.workflow.start("annotationTask", { taskQueue: TASK_QUEUE, workflowId, args: [taskInput()] });
      const task = await waitFor(async () => store.taskByWorkflow(workflowId));
      await waitFor(async () => ((await queryTaskStatus(env.client, workflowId)).phase === "assigned" ? true : undefined));
      const versionId = store.storeVersion(task.taskId, "blob://masks/42-v1.png");
      await submitTaskUpdate(env.client, workflowId, { submissionId: "sub-r", versionId, parentVersionId: "900", activeMs: 800, pixelsChanged: 3, width: 48, height: 48 });
      await handle.result();
      return handle.fetchHistory();
    });
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, workflowId);
    // MEDLOOP_RECORD_HISTORIES=<label> keeps this run's history as annotationTask-<label>.json;
    // the files recorded by older code are what a patch must keep replaying.
    const label = process.env.MEDLOOP_RECORD_HISTORIES;
    if (label && /^[a-z0-9-]+$/.test(label)) await writeFile(path.join(HISTORIES, `annotationTask-${label}.json`), historyToFile(history));

    const files = readdirSync(HISTORIES).filter((f) => f.startsWith("annotationTask-") && f.endsWith(".json"));
    expect(files.length).toBeGreaterThan(0);
    const recorded = await Promise.all(
      files.map(async (f) => ({ workflowId: f, history: historyFromFile(await readFile(path.join(HISTORIES, f), "utf8")) })),
    );
    let replayed = 0;
    for await (const r of Worker.runReplayHistories({ workflowBundle: await workflowBundle() }, recorded)) {
      expect(r.error, `${r.workflowId}: ${String(r.error)}`).toBeUndefined();
      replayed += 1;
    }
    expect(replayed).toBe(files.length);
  });
});
