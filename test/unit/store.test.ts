// The store activities against PostgreSQL (a throw-away database) and the domain services:
// what the workflows write is what the API and the reports read; retries do not duplicate;
// bad ids and missing rows fail for good, a missing doctor is retried.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { ApplicationFailure } from "@temporalio/common";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createStoreActivities, type StoreActivities } from "../../activities/store.js";
import { createPool } from "../../db/pool.js";
import { BlobStore } from "../../services/blobs.js";
import { getCampaign, listRounds, startCampaign } from "../../services/campaigns.js";
import { importImage } from "../../services/images.js";
import { getModel } from "../../services/models.js";
import { createProject } from "../../services/projects.js";
import { getTask, submitTask } from "../../services/tasks.js";
import { createUser, type User } from "../../services/users.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { makeImagePng, makeMaskPng } from "../helpers/images.js";

let db: TestDatabase;
let dir: string;
let blobs: BlobStore;
let store: StoreActivities;
let lead: User;
let ada: User;
let ben: User;
let campaignId: string;
let projectId: string;
const ids: Record<string, string> = {};

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(path.join(tmpdir(), "medloop-store-"));
  blobs = new BlobStore(dir);
  store = createStoreActivities({ pool: db.pool, blobs });
  lead = await createUser(db.pool, { email: "lead@example.org", name: "Lead", role: "lab_lead", password: "store-test-password" });
  ada = await createUser(db.pool, { email: "ada@example.org", name: "Ada", role: "doctor", password: "store-test-password" });
  ben = await createUser(db.pool, { email: "ben@example.org", name: "Ben", role: "doctor", password: "store-test-password" });
  const project = await createProject(db.pool, { name: "retina" }, lead.id);
  projectId = String(project.id);
  // 40×32: above the ingest contract's smallest side (32).
  const mask = await makeMaskPng(40, 32, (x) => x < 4);
  for (const [name, role] of [["seed1", "seed"], ["pool1", "pool"], ["test1", "test"]] as const) {
    const image = await importImage(
      { pool: db.pool, blobs },
      { projectId: project.id, name, data: await makeImagePng(40, 32), role, mask: role === "pool" ? null : mask, actorId: lead.id },
    );
    ids[name] = String(image.id);
  }
  const gateway = {
    start: async () => ({ workflowId: "campaign-x" }),
    pause: async () => null,
    resume: async () => null,
    stop: async () => null,
    approve: async () => null,
    setK: async () => null,
    status: async () => null,
    pull: () => Promise.reject(new Error("not a continuous campaign")),
    restartTask: () => Promise.reject(new Error("not used here")),
  };
  const campaign = await startCampaign({ pool: db.pool, workflows: gateway }, { projectId: project.id, name: "c", config: {} }, lead.id);
  campaignId = String(campaign.id);
});

afterAll(async () => {
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

describe("store activities", () => {
  it("load the campaign's images by role, by URI", async () => {
    const images = await store.loadCampaignImages({ campaignId, projectId });
    expect(images.seed).toEqual([expect.objectContaining({ imageId: ids.seed1, width: 40, height: 32, maskUri: expect.stringMatching(/^blob:\/\//) })]);
    expect(images.pool).toEqual([expect.objectContaining({ imageId: ids.pool1, imageUri: expect.stringMatching(/^blob:\/\//) })]);
    expect(images.pool[0]?.maskUri).toBeUndefined();
    expect(images.test.map((t) => t.imageId)).toEqual([ids.test1]);
  });

  it("run a correction task's life: model, prediction, task, reassignment, reminder, submission, completion", async () => {
    const { modelId } = await store.recordModel({
      campaignId,
      round: 0,
      modelUri: "blob://runs/x/round-0/model/",
      onnxUri: null,
      metrics: { val_f1: 0.5 },
      datasetUri: "blob://datasets/x/manifest.json",
    });
    const predUri = await blobs.put("runs/x/round-0/pool/p.png", await makeMaskPng(40, 32, (x) => x < 6));
    const record = { campaignId, round: 0, modelId, items: [{ imageId: ids.pool1!, maskUri: predUri, probUri: predUri, uncertainty: 0.3 }] };
    const { versions } = await store.recordPredictions(record);
    expect(await store.recordPredictions(record)).toEqual({ versions }); // a retry records nothing new
    const predictionId = versions[ids.pool1!]!;

    // Nobody has an open task yet: either doctor (the service breaks ties at random).
    const first = await store.pickDoctor({ projectId, exclude: [] });
    expect([String(ada.id), String(ben.id)]).toContain(first?.userId);
    expect(first?.email).toMatch(/@example\.org$/);
    const input = {
      workflowId: "task-wf-1",
      campaignId,
      projectId,
      imageId: ids.pool1!,
      round: 0,
      kind: "correct" as const,
      startVersionId: predictionId,
      assigneeId: String(ada.id),
      dueAt: "2030-01-01T00:00:00Z",
    };
    const { taskId, assignee } = await store.createTask(input);
    expect(assignee).toMatchObject({ userId: String(ada.id), email: "ada@example.org" });
    expect(await store.createTask(input)).toEqual({ taskId, assignee }); // idempotent by workflow id
    // Ada has an open task now: the least-loaded doctor is Ben, every time; excluding both leaves nobody.
    for (let i = 0; i < 5; i++) expect((await store.pickDoctor({ projectId, exclude: [] }))?.userId).toBe(String(ben.id));
    expect(await store.pickDoctor({ projectId, exclude: [String(ada.id), String(ben.id)] })).toBeNull();

    await store.reassignTask({ taskId, fromDoctorId: String(ada.id), toDoctorId: String(ben.id), dueAt: "2030-01-03T00:00:00Z" });
    await store.recordReminder({ taskId });
    expect(await getTask(db.pool, Number(taskId))).toMatchObject({ assignee_id: ben.id, reassignments: 1, reminders_sent: 1, state: "open" });

    const submitted = await submitTask(
      { pool: db.pool, blobs, notify: async () => undefined },
      ben,
      {
        taskId: Number(taskId),
        submissionId: "s-1",
        parentVersionId: Number(predictionId),
        mask: await makeMaskPng(40, 32, (x) => x < 5),
        activeMs: 1000,
        startedAt: new Date(Date.now() - 5000),
        endedAt: new Date(),
        edits: 3,
      },
    );
    const done = await store.completeTask({ taskId, versionId: String(submitted.version.id), submissionId: "s-1", activeMs: 1000 });
    expect(done.maskUri).toBe(submitted.version.uri);
    expect(await getTask(db.pool, Number(taskId))).toMatchObject({ state: "done", result_version_id: submitted.version.id });
    expect(await store.completeTask({ taskId, versionId: String(submitted.version.id), submissionId: "s-1", activeMs: 1000 })).toEqual(done);
    await store.cancelTask({ taskId, reason: "late stop" }); // a finished task stays done
    expect((await getTask(db.pool, Number(taskId))).state).toBe("done");

    await store.recordRound({
      campaignId,
      summary: {
        round: 0,
        modelUri: "blob://runs/x/round-0/model/",
        modelId,
        metrics: { f1: 0.61, auc: 0.9 },
        trainSeconds: 12,
        selected: [ids.pool1!],
        corrected: 1,
        correctionActiveMs: 1000,
        approved: false,
      },
    });
    const [round] = await listRounds(db.pool, Number(campaignId));
    expect(round).toMatchObject({ round: 0, model_id: Number(modelId), selected_image_ids: [Number(ids.pool1)], metrics: { f1: 0.61 } });
    expect(round?.finished_at).not.toBeNull();

    await store.approveModel({ campaignId, round: 0, modelId, by: String(lead.id) });
    expect(await getModel(db.pool, Number(modelId))).toMatchObject({ approved: true, approved_by: lead.id });
    await store.setCampaignStatus({ campaignId, status: "paused" });
    expect((await getCampaign(db.pool, Number(campaignId))).state).toBe("paused");
    await store.recordCampaignPhase({ campaignId, phase: "training", round: 1 });
    expect(await getCampaign(db.pool, Number(campaignId))).toMatchObject({ state: "paused", phase: "training", round: 1 });
  });

  it("spread tasks created at the same moment evenly over the doctors, never one image twice to a doctor, and give a retry the same doctor", async () => {
    // A pool as wide as the burst, so every creation is in flight at once (as a campaign's seed tasks are).
    const wide = createPool(db.url, 13);
    try {
      const burst = createStoreActivities({ pool: wide, blobs });
      // Three images with two annotators each (a campaign's seeds with annotatorsPerSeed 2), in a
      // campaign of their own: no earlier task of this file holds these images there.
      const own = await wide.query<{ id: number }>(
        "INSERT INTO campaigns (project_id, name, config, state, created_by) VALUES ($1, 'burst', '{}', 'created', $2) RETURNING id",
        [Number(projectId), lead.id],
      );
      const images = [ids.seed1!, ids.pool1!, ids.test1!];
      const inputs = Array.from({ length: 6 }, (_, i) => ({
        workflowId: `task-burst-${i}`,
        campaignId: String(own.rows[0]!.id),
        projectId,
        imageId: images[i % 3]!,
        round: 0,
        kind: "annotate" as const,
        startVersionId: null,
        assigneeId: null,
        dueAt: "2030-01-01T00:00:00Z",
      }));
      const created = await Promise.all(inputs.map((input) => burst.createTask(input)));
      const open = await wide.query<{ assignee_id: number; n: number }>(
        "SELECT assignee_id, count(*)::int AS n FROM tasks WHERE state = 'open' AND campaign_id = $1 GROUP BY assignee_id",
        [own.rows[0]!.id],
      );
      const counts = [ada.id, ben.id].map((id) => open.rows.find((r) => r.assignee_id === id)?.n ?? 0);
      expect(counts).toEqual([3, 3]);
      for (const image of images) {
        const holders = created.filter((_, i) => inputs[i]!.imageId === image).map((c) => c.assignee.userId);
        expect(new Set(holders).size, `image ${image}`).toBe(2);
      }
      // Each answer names the doctor stored on its task; retried creations change nothing.
      for (const c of created) expect((await getTask(wide, Number(c.taskId))).assignee_id).toBe(Number(c.assignee.userId));
      expect(await Promise.all(inputs.map((input) => burst.createTask(input)))).toEqual(created);
      // Escalation never gives an image's task to the doctor who holds its other annotator's task.
      const [first, second] = created.filter((_, i) => inputs[i]!.imageId === images[0]);
      const moved = await burst.reassignTask({ taskId: first!.taskId, fromDoctorId: first!.assignee.userId, toDoctorId: second!.assignee.userId, dueAt: "2030-01-02T00:00:00Z" });
      expect(moved).toEqual({ assigned: false });
      expect((await getTask(wide, Number(first!.taskId))).assignee_id).toBe(Number(first!.assignee.userId));
    } finally {
      await wide.end();
    }
  });

  it("fail for good on bad ids and missing rows, and retry while no doctor exists", async () => {
    const permanent = async (p: Promise<unknown>, message: RegExp) => {
      const err = await p.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ApplicationFailure);
      expect((err as ApplicationFailure).nonRetryable).toBe(true);
      expect((err as ApplicationFailure).message).toMatch(message);
    };
    await permanent(store.recordReminder({ taskId: "abc" }), /invalid task id "abc"/);
    await permanent(store.completeTask({ taskId: "999999", versionId: "1", submissionId: "x", activeMs: 0 }), /task 999999 not found/);
    await permanent(
      store.createTask({
        workflowId: "task-wf-2",
        campaignId,
        projectId,
        imageId: ids.pool1!,
        round: 0,
        kind: "correct",
        startVersionId: null,
        assigneeId: String(ada.id),
        dueAt: "2030-01-01T00:00:00Z",
      }),
      /correction task needs the version it starts from/,
    );
    await db.pool.query("UPDATE users SET active = false WHERE role = 'doctor'");
    const err = await store.pickDoctor({ projectId, exclude: [] }).catch((e: unknown) => e);
    expect((err as ApplicationFailure).nonRetryable).toBe(false);
    expect((err as ApplicationFailure).message).toMatch(/no active doctor/);
    const unassigned = { workflowId: "task-wf-3", campaignId, projectId, imageId: ids.seed1!, round: 0, kind: "annotate" as const, startVersionId: null, assigneeId: null, dueAt: "2030-01-01T00:00:00Z" };
    const noDoctor = await store.createTask(unassigned).catch((e: unknown) => e);
    expect(noDoctor).toBeInstanceOf(ApplicationFailure);
    expect((noDoctor as ApplicationFailure).nonRetryable).toBe(false);
    expect((noDoctor as ApplicationFailure).type).toBe("NoDoctor");
    // Nothing was stored: the retry after a doctor is added creates the task.
    expect((await db.pool.query("SELECT count(*)::int AS n FROM tasks WHERE workflow_id = 'task-wf-3'")).rows[0].n).toBe(0);
  });
});
