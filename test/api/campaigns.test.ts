// Campaign routes up to the point where Temporal is needed (input checks, nothing stored when
// the workflow cannot start), and the rounds and models the campaign's activities record.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { recordRound, setCampaignState } from "../../services/campaigns.js";
import { importImage } from "../../services/images.js";
import { approveModel, recordModel } from "../../services/models.js";
import { createProject } from "../../services/projects.js";
import { createTask } from "../../services/tasks.js";
import { startTestApi, type TestApi } from "../helpers/api.js";
import { rowCounts } from "../helpers/db.js";
import { makeImagePng } from "../helpers/images.js";

describe("campaigns API", () => {
  let api: TestApi;
  let readyProject: number;
  let emptyProject: number;
  beforeAll(async () => {
    api = await startTestApi();
    const pool = api.db.pool;
    readyProject = (await createProject(pool, { name: "ready" }, null)).id;
    emptyProject = (await createProject(pool, { name: "empty" }, null)).id;
    for (const [name, role] of [["s1", "seed"], ["p1", "pool"], ["t1", "test"]] as const) {
      await importImage(api.deps, { projectId: readyProject, name, role, data: await makeImagePng(32, 32), actorId: null });
    }
  });
  afterAll(async () => {
    await api?.close();
  });

  it("checks the input before Temporal and stores nothing when the workflow cannot start", async () => {
    const lead = api.tokens.lab_lead;
    const before = await rowCounts(api.db.pool);
    const cases: Array<{ body: unknown; status: number; message: RegExp }> = [
      { body: { project_id: readyProject, name: "c", config: { k: 0 } }, status: 400, message: /body\.config\.k/ },
      { body: { project_id: readyProject, name: "c", config: { colour: "red" } }, status: 400, message: /colour/ },
      { body: { project_id: readyProject, name: "c", config: { strategy: "greedy" } }, status: 400, message: /body\.config\.strategy/ },
      { body: { project_id: readyProject, name: "" }, status: 400, message: /body\.name/ },
      { body: { project_id: 999999, name: "c" }, status: 404, message: /project 999999 not found/ },
      { body: { project_id: emptyProject, name: "c" }, status: 400, message: /has no seed images/ },
      { body: { project_id: readyProject, name: "c", config: { k: 3, maxRounds: 2 } }, status: 503, message: /no Temporal client/ },
    ];
    for (const c of cases) {
      const res = await api.call("POST", "/api/campaigns", { token: lead, json: c.body });
      expect(res.status, JSON.stringify(res.json)).toBe(c.status);
      expect(res.json.error.message).toMatch(c.message);
    }
    expect(await rowCounts(api.db.pool)).toEqual(before);
  });

  it("shows the rounds, models and task counts the activities record", async () => {
    const pool = api.db.pool;
    const { rows } = await pool.query<{ id: number }>(
      "INSERT INTO campaigns (project_id, name, state, workflow_id) VALUES ($1, 'recorded', 'running', NULL) RETURNING id",
      [readyProject],
    );
    const id = rows[0]!.id;
    const model = await recordModel(pool, { campaignId: id, round: 0, uri: "blob://runs/x/r0/model/", onnxUri: "blob://runs/x/r0/model/model.onnx", metrics: { val_f1: 0.61 } });
    // A retried activity records the same model again: still one row, updated.
    const again = await recordModel(pool, { campaignId: id, round: 0, uri: "blob://runs/x/r0/model/", metrics: { val_f1: 0.62 } });
    expect(again.id).toBe(model.id);
    await recordRound(pool, { campaignId: id, round: 0, phase: "evaluating", modelId: model.id, metrics: { f1: 0.7 } });
    const images = (await api.call("GET", `/api/projects/${readyProject}/images?role=pool`, { token: api.tokens.lab_lead })).json;
    await recordRound(pool, { campaignId: id, round: 0, phase: "correcting", metrics: { auc: 0.9 }, selectedImageIds: [images[0].id], strategy: "uncertainty" });
    await createTask(pool, { projectId: readyProject, imageId: images[0].id, kind: "annotate", campaignId: id, round: 0 });
    await approveModel(pool, model.id, api.users.lead!.id);
    await setCampaignState(pool, id, { state: "paused", phase: "correcting" });

    const res = await api.call("GET", `/api/campaigns/${id}/rounds`, { token: api.tokens.auditor });
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(res.json).toHaveLength(1);
    expect(res.json[0]).toMatchObject({
      round: 0,
      phase: "correcting",
      metrics: { f1: 0.7, auc: 0.9 },
      selected_image_ids: [images[0].id],
      strategy: "uncertainty",
      model: { id: model.id, metrics: { val_f1: 0.62 }, approved: true, approved_by: api.users.lead!.id },
      tasks: { total: 1, done: 0 },
    });
    const campaign = (await api.call("GET", `/api/campaigns/${id}`, { token: api.tokens.lab_lead })).json;
    expect(campaign).toMatchObject({ state: "paused", phase: "correcting", round: 0 });
    // Control and status need the workflow; this campaign has none.
    expect((await api.call("POST", `/api/campaigns/${id}/pause`, { token: api.tokens.lab_lead })).status).toBe(409);
    expect((await api.call("GET", `/api/campaigns/${id}/status`, { token: api.tokens.lab_lead })).status).toBe(409);
    expect((await api.call("POST", "/api/campaigns/999999/stop", { token: api.tokens.lab_lead, json: { reason: "x" } })).status).toBe(404);
    expect((await api.call("PATCH", `/api/campaigns/${id}`, { token: api.tokens.lab_lead, json: { k: 0 } })).status).toBe(400);
    // The files of the model's run folder.
    const curves = await makeImagePng(20, 10);
    await api.deps.blobs.put("runs/x/r0/model/curves.png", curves);
    await api.deps.blobs.put("runs/x/r0/model/previews/epoch_001.png", curves);
    const file = await api.call("GET", `/api/models/${model.id}/file?name=curves.png`, { token: api.tokens.auditor });
    expect(file.status).toBe(200);
    expect(file.headers.get("content-type")).toBe("image/png");
    expect(file.bytes.equals(curves)).toBe(true);
    expect((await api.call("GET", `/api/models/${model.id}/file?name=previews/epoch_001.png`, { token: api.tokens.auditor })).status).toBe(200);
    expect((await api.call("GET", `/api/models/${model.id}/file?name=../../secret.json`, { token: api.tokens.auditor })).status).toBe(400);
    expect((await api.call("GET", `/api/models/${model.id}/file?name=previews.gif`, { token: api.tokens.auditor })).status).toBe(404);
    const models = (await api.call("GET", `/api/models?campaign_id=${id}`, { token: api.tokens.lab_lead })).json;
    expect(models.map((m: { id: number }) => m.id)).toEqual([model.id]);
    const audit = (await api.call("GET", `/api/audit?entity=campaign&entity_id=${id}`, { token: api.tokens.auditor })).json;
    expect(audit.map((a: { action: string }) => a.action)).toEqual(["campaign.state"]);
  });
});
