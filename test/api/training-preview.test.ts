// GET /campaigns/:id/training-preview over real PostgreSQL and the real blob store. The
// campaign's status comes from a recorded answer of the shape services/temporal.ts
// queryCampaignStatus returns (pending activities with their decoded heartbeat): the route's
// choices (which activity, which URI, which bytes) are what is tested here; the heartbeat's
// path through Temporal is covered by the training-activity tests.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CampaignWorkflows } from "../../services/campaigns.js";
import { createProject } from "../../services/projects.js";
import { startTestApi, type TestApi } from "../helpers/api.js";
import { makeImagePng } from "../helpers/images.js";

const refuse = (): never => {
  throw new Error("not used by this test");
};

describe("training preview API", () => {
  let api: TestApi;
  let withoutTemporal: TestApi;
  let campaignId: number;
  let status: unknown = null;
  const workflows: CampaignWorkflows = {
    start: refuse,
    pause: refuse,
    resume: refuse,
    stop: refuse,
    approve: refuse,
    setK: refuse,
    status: () => Promise.resolve(status),
    pull: refuse,
    restartTask: refuse,
  };
  const training = (heartbeat: unknown) => ({
    round: 0,
    phase: "training",
    activities: [
      { activityType: "send_task_email", attempt: 1, state: "STARTED", heartbeat: { epoch: 9, preview_uri: "blob://elsewhere.png" } },
      { activityType: "train_segmentation", attempt: 1, state: "STARTED", heartbeat, lastHeartbeatTime: null, lastFailure: null },
    ],
  });
  const get = (id: number, token = api.tokens.lab_lead) => api.call("GET", `/api/campaigns/${id}/training-preview`, { token });

  beforeAll(async () => {
    api = await startTestApi({ campaigns: workflows });
    withoutTemporal = await startTestApi();
    const project = await createProject(api.db.pool, { name: "preview" }, null);
    const { rows } = await api.db.pool.query<{ id: number }>(
      "INSERT INTO campaigns (project_id, name, state, workflow_id) VALUES ($1, 'c', 'running', 'campaign-preview-test') RETURNING id",
      [project.id],
    );
    campaignId = rows[0]!.id;
  });
  afterAll(async () => {
    await api?.close();
    await withoutTemporal?.close();
  });

  it("answers 404 when the campaign does not exist, is not training, or has no preview yet", async () => {
    expect((await get(999999)).status).toBe(404);
    status = { round: 0, phase: "awaiting_corrections", activities: [] };
    let res = await get(campaignId);
    expect(res.status).toBe(404);
    expect(res.json.error.message).toBe(`campaign ${campaignId} is not training`);
    status = training({ epoch: 1, epochs: 5, loss: 0.9, val_dice: 0.2, checkpoint_uri: "blob://ck" });
    res = await get(campaignId);
    expect(res.status).toBe(404);
    expect(res.json.error.message).toMatch(/no preview yet/);
    status = training({ epoch: 2, epochs: 5, preview_uri: "blob://runs/r/previews/missing.png" });
    res = await get(campaignId);
    expect(res.status).toBe(404);
    expect(res.json.error.message).toMatch(/missing\.png not found/);
  });

  it("serves only blob-store previews", async () => {
    status = training({ epoch: 2, epochs: 5, preview_uri: "file:///etc/passwd" });
    let res = await get(campaignId);
    expect(res.status).toBe(404);
    expect(res.json.error.message).toMatch(/not in the blob store/);
    status = training({ epoch: 2, epochs: 5, preview_uri: "blob://../../etc/passwd" });
    res = await get(campaignId);
    expect(res.status).toBe(400);
    expect(res.json.error.message).toMatch(/invalid blob key/);
  });

  it("streams the last heartbeat's preview PNG, uncached, to lab leads, admins and auditors", async () => {
    const png = await makeImagePng(24, 16);
    const uri = await api.deps.blobs.put("runs/r/previews/epoch_003.png", png);
    status = training({ epoch: 3, epochs: 5, loss: 0.5, val_dice: 0.6, preview_uri: uri });
    for (const role of ["lab_lead", "admin", "auditor"] as const) {
      const res = await get(campaignId, api.tokens[role]);
      expect(res.status, role).toBe(200);
      expect(res.headers.get("content-type")).toBe("image/png");
      expect(res.headers.get("cache-control")).toBe("no-store");
      expect(res.headers.get("x-training-epoch")).toBe("3");
      expect(res.bytes.equals(png)).toBe(true);
    }
    expect((await get(campaignId, api.tokens.doctor)).status).toBe(403);
    expect((await api.call("GET", `/api/campaigns/${campaignId}/training-preview`, { token: null })).status).toBe(401);
  });

  it("answers 503 without a Temporal client", async () => {
    const project = await createProject(withoutTemporal.db.pool, { name: "p" }, null);
    const { rows } = await withoutTemporal.db.pool.query<{ id: number }>(
      "INSERT INTO campaigns (project_id, name, state, workflow_id) VALUES ($1, 'c', 'running', 'wf') RETURNING id",
      [project.id],
    );
    const res = await withoutTemporal.call("GET", `/api/campaigns/${rows[0]!.id}/training-preview`, { token: withoutTemporal.tokens.auditor });
    expect(res.status).toBe(503);
  });
});
