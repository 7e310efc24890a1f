// Retries of one submission arriving together (a browser resending after a timeout, a proxy
// retrying): PostgreSQL, the HTTP API and services/tasks.ts submitTask. Every request carrying the
// stored submission id is answered with the stored version (`duplicate: true`), also those that
// raced the first one; one version is stored; the same id with other content is a 409 naming it.
//
// To make the race certain rather than likely, the test holds the task's row lock (the lock the
// first submission takes to store its version) while the requests arrive: each has looked for its
// submission id, found nothing, and waits on that lock; then the lock is released.
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importImage, type Image } from "../../services/images.js";
import { createProject } from "../../services/projects.js";
import type { SubmissionNotice } from "../../services/tasks.js";
import { assignTask, createTask, type Task } from "../../services/tasks.js";
import { listFiles, startTestApi, type TestApi } from "../helpers/api.js";
import { makeImagePng, makeMaskPng } from "../helpers/images.js";

const W = 48;
const H = 40;
const RETRIES = 8;

describe("concurrent retries of one submission", () => {
  let api: TestApi;
  let image: Image;
  const notices: Array<{ workflowId: string; notice: SubmissionNotice }> = [];

  beforeAll(async () => {
    api = await startTestApi({
      // Stands in for the task workflow's `submit` Update (services/temporal.ts submitTaskUpdate),
      // which dedupes by submission id itself; here only what the API tells it matters.
      notifySubmission: async (workflowId, notice) => {
        notices.push({ workflowId, notice });
      },
    });
    const project = await createProject(api.db.pool, { name: "retries" }, null);
    image = await importImage(api.deps, { projectId: project.id, name: "img", data: await makeImagePng(W, H), role: "pool", actorId: null });
  });
  afterAll(async () => {
    await api?.close();
  });

  async function newTask(workflowId: string | null): Promise<Task> {
    const task = await createTask(api.db.pool, { projectId: image.project_id, imageId: image.id, kind: "annotate", workflowId });
    return assignTask(api.db.pool, { taskId: task.id, assigneeId: api.users.doctor1!.id });
  }

  async function body(submissionId: string, mask: Buffer) {
    const ended = new Date();
    return {
      submission_id: submissionId,
      parent_version_id: null,
      mask_png_base64: mask.toString("base64"),
      active_ms: 30_000,
      started_at: new Date(ended.getTime() - 60_000).toISOString(),
      ended_at: ended.toISOString(),
      edits: 4,
    };
  }

  /**
   * Sends every body at once while holding the task's row lock, releases it once as many requests
   * wait on it as the API's pool has connections (the rest wait for a connection), and returns
   * the answers in the order of `bodies`.
   */
  async function racing(task: Task, bodies: unknown[]) {
    const holder = new pg.Client({ connectionString: api.db.url });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT id FROM tasks WHERE id = $1 FOR UPDATE", [task.id]);
      let settled = 0;
      const answers = Promise.all(
        bodies.map((json) =>
          api.call("POST", `/api/tasks/${task.id}/submissions`, { token: api.tokens.doctor, json }).finally(() => (settled += 1)),
        ),
      );
      const waiting = Math.min(bodies.length, api.db.pool.options.max);
      // A request answered before reaching the lock (refused outright) ends the wait too: the
      // assertions then say what it answered.
      while (settled === 0) {
        // The statistics views keep one snapshot per transaction: drop it to see the waits now.
        await holder.query("SELECT pg_stat_clear_snapshot()");
        const { rows } = await holder.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        );
        if (rows[0]!.n >= waiting) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      await holder.query("COMMIT");
      return await answers;
    } finally {
      await holder.end();
    }
  }

  const versionsOf = async (taskId: number) =>
    (await api.db.pool.query<{ id: number; submission_id: string }>("SELECT id, submission_id FROM annotation_versions WHERE task_id = $1", [taskId]))
      .rows;

  it(`answers ${RETRIES} concurrent requests of one submission with one stored version, ${RETRIES - 1} of them as duplicates`, async () => {
    const task = await newTask(null);
    const json = await body("sub-retried", await makeMaskPng(W, H, (x) => x < 10));
    const answers = await racing(task, Array.from({ length: RETRIES }, () => json));

    expect(answers.map((a) => [a.status, a.json.error?.message ?? null])).toEqual(answers.map(() => [201, null]));
    const versions = await versionsOf(task.id);
    expect(versions).toEqual([{ id: expect.any(Number), submission_id: "sub-retried" }]);
    expect(answers.map((a) => a.json.version.id)).toEqual(answers.map(() => versions[0]!.id));
    expect(answers.filter((a) => a.json.duplicate === true)).toHaveLength(RETRIES - 1);
    expect(answers.filter((a) => a.json.duplicate === false)).toHaveLength(1);
    // Without a workflow the task is done on submission; the retries changed nothing more.
    expect(answers.every((a) => a.json.task.state === "done" && a.json.task.result_version_id === versions[0]!.id)).toBe(true);
    const audit = await api.db.pool.query("SELECT count(*)::int AS n FROM audit_log WHERE action = 'task.submit' AND entity_id = $1", [String(task.id)]);
    expect(audit.rows[0].n).toBe(1);
    // The retries' mask files were removed again: one file per stored version of the image.
    const files = await listFiles(path.join(api.deps.config.blobRoot, "projects", String(image.project_id), "annotations", String(image.id)));
    const stored = await api.db.pool.query("SELECT count(*)::int AS n FROM annotation_versions WHERE image_id = $1", [image.id]);
    expect(files).toHaveLength(stored.rows[0].n);
  });

  it("tells the task's workflow the one stored version, whichever request stored it", async () => {
    notices.length = 0;
    const task = await newTask(`task-retries-${Date.now()}`);
    const json = await body("sub-with-workflow", await makeMaskPng(W, H, (x, y) => y < 7));
    const answers = await racing(task, Array.from({ length: RETRIES }, () => json));

    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 201));
    const versions = await versionsOf(task.id);
    expect(versions).toHaveLength(1);
    expect(answers.filter((a) => a.json.duplicate)).toHaveLength(RETRIES - 1);
    expect(answers.every((a) => a.json.workflow_notified === true && a.json.task.state === "submitted")).toBe(true);
    // Told at least once, and only ever about this submission id and its one version (the
    // workflow's Update is idempotent by submission id, so a retry may tell it again).
    expect(notices.length).toBeGreaterThanOrEqual(1);
    expect(new Set(notices.map((n) => `${n.workflowId} ${n.notice.submissionId} ${n.notice.versionId}`))).toEqual(
      new Set([`${task.workflow_id} sub-with-workflow ${versions[0]!.id}`]),
    );
  });

  it("refuses, naming the submission id, the requests that raced with other content under the same id", async () => {
    const task = await newTask(null);
    const a = await body("sub-contested", await makeMaskPng(W, H, (x) => x < 5));
    const b = await body("sub-contested", await makeMaskPng(W, H, (x) => x >= 30));
    const bodies = Array.from({ length: RETRIES }, (_, i) => (i % 2 === 0 ? a : b));
    const answers = await racing(task, bodies);

    const versions = await versionsOf(task.id);
    expect(versions).toHaveLength(1);
    const stored = (await api.db.pool.query<{ foreground_pixels: number }>("SELECT foreground_pixels FROM annotation_versions WHERE id = $1", [versions[0]!.id])).rows[0]!;
    // Whichever content won, the requests that sent it are answered with it; the others are 409s.
    const winner = stored.foreground_pixels === 5 * H ? a : b;
    answers.forEach((res, i) => {
      if (bodies[i] === winner) {
        expect(res.status, JSON.stringify(res.json)).toBe(201);
        expect(res.json.version.id).toBe(versions[0]!.id);
      } else {
        expect(res.status, JSON.stringify(res.json)).toBe(409);
        expect(res.json.error.message).toBe(
          `submission id sub-contested was already used for a different submission (version ${versions[0]!.id})`,
        );
      }
    });
    expect(answers.filter((r) => r.status === 201 && r.json.duplicate === false)).toHaveLength(1);
  });
});
