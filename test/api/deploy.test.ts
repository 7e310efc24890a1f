// Approving a model through the API deploys it (versioned, with a model card), and a key made
// through the API opens the model on the same app (/v2 infer, /v1 segment) — real PostgreSQL,
// the engine-built test model of test/serving (test/serving/fixtures/make_model.py).
import { copyFile, mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CampaignWorkflows } from "../../services/campaigns.js";
import { notFound } from "../../services/errors.js";
import { recordModel } from "../../services/models.js";
import { createProject } from "../../services/projects.js";
import { interleavedToPlanar } from "../../serving/image.js";
import { startTestApi, type TestApi } from "../helpers/api.js";
import { makeModelFixture, type ModelFixture } from "../serving/fixtures.js";

let api: TestApi;
let fx: ModelFixture;
let campaignId: number;
const approveCalls: { workflowId: string; round: number; by: string }[] = [];
const roundModels = new Map<number, number>();

/**
 * The Temporal side of POST /campaigns/:id/approve as the API sees it: the workflow's approve
 * Update answers the round's summary (services/temporal.ts approveModel). The workflow itself is
 * tested in test/workflows; here only what the route does with the accepted Update matters.
 */
const workflows = {
  async approve(workflowId: string, round: number, by: string) {
    approveCalls.push({ workflowId, round, by });
    if (workflowId === "wf-gone") {
      // The workflow finished between the API reading the campaign row and sending the Update:
      // it records its final state, and Temporal answers that the workflow is gone.
      await api.db.pool.query("UPDATE campaigns SET state = 'completed' WHERE workflow_id = 'wf-gone'");
      throw notFound("workflow", workflowId);
    }
    return { round, modelId: String(roundModels.get(round)), approved: true };
  },
} as unknown as CampaignWorkflows;

async function runFolder(key: string): Promise<string> {
  const dir = path.join(api.deps.config.blobRoot, key);
  await mkdir(dir, { recursive: true });
  await copyFile(path.join(fx.dir, "model.json"), path.join(dir, "model.json"));
  await copyFile(path.join(fx.dir, "model.onnx"), path.join(dir, "model.onnx"));
  return `blob://${key}`;
}

async function addModel(round: number): Promise<number> {
  const m = await recordModel(api.db.pool, {
    campaignId,
    round,
    uri: await runFolder(`runs/r${round}`),
    runId: `r${round}`,
    metrics: { val_f1: 0.7 + round / 100 },
  });
  roundModels.set(round, m.id);
  return m.id;
}

beforeAll(async () => {
  [api, fx] = await Promise.all([startTestApi({ campaigns: workflows }), makeModelFixture()]);
  const project = await createProject(api.db.pool, { name: "chase" }, api.users.lead!.id);
  const c = await api.db.pool.query<{ id: number }>(
    `INSERT INTO campaigns (project_id, name, config, workflow_id, state) VALUES ($1, 'CHASE vessels', '{"k": 2}', 'wf-deploy', 'running')
     RETURNING id`,
    [project.id],
  );
  campaignId = c.rows[0]!.id;
}, 180_000);

afterAll(async () => {
  await api?.close();
  await fx?.cleanup();
});

describe("approving deploys", () => {
  let key = "";

  it("POST /models/:id/approve sends the workflow's approve Update, then deploys version 1 with its card", async () => {
    const modelId = await addModel(0);
    const lead = api.tokens.lab_lead;
    expect((await api.call("POST", `/api/models/${modelId}/approve`, { token: api.tokens.doctor, json: {} })).status).toBe(403);
    const res = await api.call("POST", `/api/models/${modelId}/approve`, { token: lead, json: {} });
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(approveCalls).toEqual([{ workflowId: "wf-deploy", round: 0, by: String(api.users.lead!.id) }]);
    expect(res.json.model).toMatchObject({ id: modelId, approved: true, approved_by: api.users.lead!.id });
    expect(res.json.deployment).toMatchObject({
      name: "chase-vessels",
      version: 1,
      model_id: modelId,
      status: "active",
      card_uri: "blob://deployments/chase-vessels/v1/model_card.json",
      card_url: "/api/deployments/chase-vessels/card?version=1",
      infer_url: "/v2/models/chase-vessels/versions/1/infer",
    });
    const stored = JSON.parse(await readFile(api.deps.blobs.pathOf(res.json.deployment.card_uri), "utf8"));
    expect(stored.deployment).toMatchObject({ name: "chase-vessels", version: 1 });

    const card = await api.call("GET", res.json.deployment.card_url, { token: lead });
    expect(card.status).toBe(200);
    expect(card.json).toMatchObject({
      schema: "medloop.model-card/1",
      deployment: { name: "chase-vessels", version: 1 },
      model: { id: modelId, round: 0, campaign: { id: campaignId, name: "CHASE vessels", project: "chase" } },
    });
    expect(card.json.intended_use.limitations.length).toBeGreaterThan(0);
    const md = await api.call("GET", "/api/deployments/chase-vessels/card?format=markdown", { token: lead });
    expect(md.headers.get("content-type")).toContain("text/markdown");
    expect(md.bytes.toString("utf8")).toContain("chase-vessels");

    // Approving again gives back the same version; no second Update (the model is approved).
    const again = await api.call("POST", `/api/models/${modelId}/approve`, { token: lead, json: {} });
    expect(again.json.deployment.version).toBe(1);
    expect(approveCalls).toHaveLength(1);
    const list = await api.call("GET", "/api/deployments", { token: api.tokens.admin });
    expect(list.json.map((d: { name: string; version: number }) => [d.name, d.version])).toEqual([["chase-vessels", 1]]);
  });

  it("POST /campaigns/:id/approve deploys the model the workflow approved as the next version", async () => {
    const modelId = await addModel(1);
    const res = await api.call("POST", `/api/campaigns/${campaignId}/approve`, { token: api.tokens.admin, json: { round: 1 } });
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(approveCalls.at(-1)).toEqual({ workflowId: "wf-deploy", round: 1, by: String(api.users.admin!.id) });
    expect(res.json.deployment).toMatchObject({ name: "chase-vessels", version: 2, model_id: modelId });
    const model = await api.call("GET", `/api/models/${modelId}`, { token: api.tokens.admin });
    expect(model.json.approved).toBe(true);
    const audit = await api.db.pool.query(
      "SELECT details FROM audit_log WHERE action = 'campaign.approve' AND entity_id = $1 ORDER BY id DESC LIMIT 1",
      [String(campaignId)],
    );
    expect(audit.rows[0].details).toEqual({ round: 1, model_id: modelId, via: "workflow", state: "running" });
  });

  it("approves from the database when the Update finds the workflow finished a moment ago", async () => {
    const project = await api.db.pool.query<{ project_id: number }>("SELECT project_id FROM campaigns WHERE id = $1", [campaignId]);
    const c = await api.db.pool.query<{ id: number }>(
      `INSERT INTO campaigns (project_id, name, config, workflow_id, state) VALUES ($1, 'Late approval', '{}', 'wf-gone', 'running')
       RETURNING id`,
      [project.rows[0]!.project_id],
    );
    // A campaign records model folders with the trailing "/" (workflows/campaign.ts).
    const uri = `${await runFolder("runs/late/round-0/model")}/`;
    const m = await recordModel(api.db.pool, { campaignId: c.rows[0]!.id, round: 0, uri, runId: "late-r0" });
    const res = await api.call("POST", `/api/campaigns/${c.rows[0]!.id}/approve`, { token: api.tokens.lab_lead, json: { round: 0 } });
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(approveCalls.at(-1)).toMatchObject({ workflowId: "wf-gone", round: 0 });
    expect(res.json.result).toEqual({ round: 0, modelId: String(m.id), approved: true });
    expect(res.json.deployment).toMatchObject({ name: "late-approval", version: 1, model_id: m.id });
    expect(res.json.campaign.state).toBe("completed");
    const audit = await api.db.pool.query("SELECT details FROM audit_log WHERE action = 'campaign.approve' AND entity_id = $1 ORDER BY id", [
      String(c.rows[0]!.id),
    ]);
    // The approval is audited before the Update is sent (the row then read running); once the
    // workflow turned out finished, the approval from the database is audited too.
    expect(audit.rows).toEqual([
      { details: { round: 0, model_id: m.id, via: "workflow", state: "running" } },
      { details: { round: 0, model_id: m.id, via: "database", state: "completed" } },
    ]);
  });

  it("a model without an ONNX export is refused and stays unapproved", async () => {
    const m = await recordModel(api.db.pool, { campaignId: null, round: null, uri: "blob://runs/empty", runId: "empty" });
    await mkdir(api.deps.blobs.pathOf("blob://runs/empty"), { recursive: true });
    const res = await api.call("POST", `/api/models/${m.id}/approve`, { token: api.tokens.lab_lead, json: {} });
    expect(res.status).toBe(400);
    expect(res.json.error.message).toContain("no ONNX export");
    expect((await api.call("GET", `/api/models/${m.id}`, { token: api.tokens.lab_lead })).json.approved).toBe(false);
  });

  it("a key created through the API opens /v2 infer and /v1 segment on the same app; no key → 401", async () => {
    const created = await api.call("POST", "/api/deployments/chase-vessels/keys", { token: api.tokens.lab_lead, json: { label: "pacs" } });
    expect(created.status).toBe(201);
    key = created.json.key;
    expect(key).toMatch(/^mlk_[0-9a-f]{12}_/);
    const keys = await api.call("GET", "/api/deployments/chase-vessels/keys", { token: api.tokens.lab_lead });
    expect(keys.json).toEqual([expect.objectContaining({ id: created.json.id, label: "pacs", revoked_at: null })]);
    expect(JSON.stringify(keys.json)).not.toContain(key);

    const c = fx.cases.find((x) => x.name === "small")!;
    const data = Array.from(interleavedToPlanar(await fx.input("small"), c.width, c.height, 3).data);
    const body = JSON.stringify({ inputs: [{ name: "image", shape: [1, 3, c.height, c.width], datatype: "FP32", data }] });
    const url = `${api.baseUrl}/v2/models/chase-vessels/versions/1/infer`;
    const none = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body });
    expect(none.status).toBe(401);
    const ok = await fetch(url, { method: "POST", headers: { "content-type": "application/json", "x-api-key": key }, body });
    expect(ok.status).toBe(200);
    const answer = (await ok.json()) as { model_version: string; outputs: { shape: number[]; data: number[] }[] };
    expect(answer.model_version).toBe("1");
    expect(answer.outputs[0]!.shape).toEqual([1, 1, c.height, c.width]);
    // The served probabilities are the engine's (MONAI sliding window in Python).
    const ref = await fx.prob("small");
    let maxDiff = 0;
    answer.outputs[0]!.data.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - ref[i]!))));
    expect(maxDiff).toBeLessThan(1e-4);

    const png = await sharp({ create: { width: 48, height: 40, channels: 3, background: { r: 120, g: 30, b: 10 } } }).png().toBuffer();
    const segUrl = `${api.baseUrl}/v1/models/chase-vessels/segment`;
    expect((await fetch(segUrl, { method: "POST", body: new Uint8Array(png) })).status).toBe(401);
    const seg = await fetch(segUrl, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, accept: "application/json" },
      body: new Uint8Array(png),
    });
    expect(seg.status).toBe(200);
    expect(await seg.json()).toMatchObject({ model_name: "chase-vessels", model_version: "2", width: 48, height: 40 });

    const metrics = await fetch(`${api.baseUrl}/metrics`);
    expect(await metrics.text()).toContain('medloop_serving_requests_total{model="chase-vessels"');
  });

  it("a revoked key is refused; unknown deployments and keys answer 404", async () => {
    const lead = api.tokens.lab_lead;
    const second = await api.call("POST", "/api/deployments/chase-vessels/keys", { token: lead, json: {} });
    expect((await api.call("DELETE", `/api/deployments/chase-vessels/keys/${second.json.id}`, { token: lead })).status).toBe(204);
    const meta = await fetch(`${api.baseUrl}/v2/models/chase-vessels`, { headers: { "x-api-key": second.json.key } });
    expect(meta.status).toBe(401);
    expect((await api.call("DELETE", "/api/deployments/chase-vessels/keys/999999", { token: lead })).status).toBe(404);
    expect((await api.call("POST", "/api/deployments/nope/keys", { token: lead, json: {} })).status).toBe(404);
    expect((await api.call("GET", "/api/deployments/nope/card", { token: lead })).status).toBe(404);
    // The API's own 404 still answers under /api.
    expect((await api.call("GET", "/api/nope", { token: lead })).json.error.code).toBe("not_found");
  });
});
