// An open correction task of a continuous campaign starts over from the newer prediction of its
// image (POST /tasks/:id/restart): the task detail names it, only the task's doctor may take it,
// only the newest one, the task workflow is told first (here a recording stand-in for the
// `restartFrom` Update; test/workflow/continuous.test.ts runs the real one), and a refusal of the
// workflow changes nothing.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { recordPrediction } from "../../services/annotations.js";
import type { CampaignWorkflows } from "../../services/campaigns.js";
import { conflict } from "../../services/errors.js";
import { importImage, type Image } from "../../services/images.js";
import { recordModel } from "../../services/models.js";
import { createProject } from "../../services/projects.js";
import { assignTask, createTask, type Task } from "../../services/tasks.js";
import { startTestApi, type TestApi } from "../helpers/api.js";
import { makeImagePng, makeMaskPng } from "../helpers/images.js";

const W = 64;
const H = 48;

describe("restarting a correction task from a newer prediction", () => {
  let api: TestApi;
  let image: Image;
  let campaignId: number;
  const predictions: number[] = []; // by model version (round)
  const restarts: Array<[string, string]> = [];
  let refuse = false;
  const refused = () => Promise.reject(new Error("not used here"));
  const workflows: CampaignWorkflows = {
    start: refused,
    pause: refused,
    resume: refused,
    stop: refused,
    approve: refused,
    setK: refused,
    status: refused,
    pull: refused,
    restartTask: async (workflowId, versionId) => {
      if (refuse) throw conflict("task is submitted");
      restarts.push([workflowId, versionId]);
      return { startVersionIds: [versionId] };
    },
  };

  beforeAll(async () => {
    api = await startTestApi({ campaigns: workflows });
    const project = await createProject(api.db.pool, { name: "restart" }, null);
    image = await importImage(api.deps, { projectId: project.id, name: "pool-0", data: await makeImagePng(W, H), role: "pool", actorId: null });
    const { rows } = await api.db.pool.query<{ id: number }>(
      `INSERT INTO campaigns (project_id, name, config, k, state) VALUES ($1, 'continuous', '{"mode": "continuous"}', 1, 'running') RETURNING id`,
      [project.id],
    );
    campaignId = rows[0]!.id;
    // Models v0, v1 and v2 of the campaign each predicted the image (the trainer predicts the pool after every update).
    for (const round of [0, 1, 2]) {
      const model = await recordModel(api.db.pool, { campaignId, round, uri: `blob://runs/c/round-${round}/model/` });
      const maskUri = await api.deps.blobs.put(`runs/c/round-${round}/pool/img.png`, await makeMaskPng(W, H, (x) => x < 10 * (round + 1)));
      predictions.push((await recordPrediction(api.deps, { campaignId, round, modelId: model.id, imageId: image.id, maskUri })).id);
    }
  });
  afterAll(async () => {
    await api?.close();
  });

  async function pulledTask(workflowId: string): Promise<Task> {
    const task = await createTask(api.db.pool, { projectId: image.project_id, imageId: image.id, kind: "correct", campaignId, round: 0, parentVersionId: predictions[0]!, workflowId });
    return assignTask(api.db.pool, { taskId: task.id, assigneeId: api.users.doctor1!.id });
  }

  it("names the newest prediction, takes only that one from the task's doctor, and tells the workflow first", async () => {
    const task = await pulledTask("task-restart-1");
    const detail = await api.call("GET", `/api/tasks/${task.id}`, { token: api.tokens.doctor });
    expect(detail.json.newer_prediction).toEqual({ version_id: predictions[2], round: 2 });

    const older = await api.call("POST", `/api/tasks/${task.id}/restart`, { token: api.tokens.doctor, json: { version_id: predictions[1] } });
    expect(older.status).toBe(409);
    expect(older.json.error.message).toContain(`version ${predictions[2]}`);
    expect((await api.call("POST", `/api/tasks/${task.id}/restart`, { token: api.doctor2Token, json: { version_id: predictions[2] } })).status).toBe(404);
    expect((await api.call("POST", `/api/tasks/${task.id}/restart`, { token: api.tokens.lab_lead, json: { version_id: predictions[2] } })).status).toBe(403);
    expect(restarts).toEqual([]);

    const res = await api.call("POST", `/api/tasks/${task.id}/restart`, { token: api.tokens.doctor, json: { version_id: predictions[2] } });
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(res.json.start_version.id).toBe(predictions[2]);
    expect(res.json.newer_prediction).toBeNull();
    expect(restarts).toEqual([["task-restart-1", String(predictions[2])]]);
    const audit = await api.db.pool.query("SELECT details FROM audit_log WHERE action = 'task.restart' AND entity_id = $1", [String(task.id)]);
    expect(audit.rows[0]?.details).toMatchObject({ from_version_id: predictions[0], to_version_id: predictions[2], round: 2 });
    // Nothing newer any more.
    const again = await api.call("POST", `/api/tasks/${task.id}/restart`, { token: api.tokens.doctor, json: { version_id: predictions[2] } });
    expect(again.status).toBe(409);
  });

  it("changes nothing when the workflow refuses", async () => {
    const task = await pulledTask("task-restart-2");
    refuse = true;
    try {
      const res = await api.call("POST", `/api/tasks/${task.id}/restart`, { token: api.tokens.doctor, json: { version_id: predictions[2] } });
      expect(res.status).toBe(409);
      expect(res.json.error.message).toContain("task is submitted");
    } finally {
      refuse = false;
    }
    const row = await api.db.pool.query("SELECT start_version_id FROM tasks WHERE id = $1", [task.id]);
    expect(row.rows[0].start_version_id).toBe(predictions[0]);
  });
});
