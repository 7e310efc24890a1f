// The loop's last step on a campaign's own models: the real Python `gpu` worker activity
// (train_segmentation, tiny budget, tiny images) trains round 0 and round 1 into
// blob://runs/<campaign>/round-<r>/model/ exactly as workflows/campaign.ts asks it to, the
// campaign's store activity records them, the campaign completes; then the lab lead approves
// through the API (POST /api/models/:id/approve and POST /api/campaigns/:id/approve, both after
// completion, with no workflow to tell), a key is made, and the deployment answers KServe V2
// infer (JSON and binary tensors) and /v1 segment with the engine's probabilities.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createStoreActivities } from "../../activities/store.js";
import type { CampaignWorkflows } from "../../services/campaigns.js";
import { repoRoot } from "../../services/config.js";
import { createProject } from "../../services/projects.js";
import { decodeRunLengths, interleavedToPlanar } from "../../serving/image.js";
import { startTestApi, type TestApi } from "../helpers/api.js";

interface TrainResult {
  model_uri: string;
  onnx_uri: string;
  metrics: { val_f1: number; val_auc: number; threshold: number };
  seconds: number;
}

let api: TestApi;
let campaignId: number;
let outDir: string;
let trained: TrainResult[];
let test: { width: number; height: number };
const modelIds: number[] = [];
/** Every call the API makes to the campaign's workflow: none once the campaign has completed. */
const workflowCalls: string[] = [];
const workflows = new Proxy({} as CampaignWorkflows, {
  get: (_target, method: string) => async () => {
    workflowCalls.push(method);
    throw new Error(`the workflow of a completed campaign was asked to ${method}`);
  },
});

beforeAll(async () => {
  api = await startTestApi({ campaigns: workflows });
  const project = await createProject(api.db.pool, { name: "tiny vessels" }, api.users.lead!.id);
  const c = await api.db.pool.query<{ id: number }>(
    `INSERT INTO campaigns (project_id, name, config, workflow_id, state, created_by)
     VALUES ($1, 'Tiny vessels', '{"k": 2, "maxRounds": 2}', 'campaign-pending', 'running', $2) RETURNING id`,
    [project.id, api.users.lead!.id],
  );
  campaignId = c.rows[0]!.id;
  await api.db.pool.query("UPDATE campaigns SET workflow_id = $2 WHERE id = $1", [campaignId, `campaign-${campaignId}`]);

  outDir = await mkdtemp(path.join(os.tmpdir(), "medloop-campaign-model-"));
  const { stdout } = await promisify(execFile)(
    path.join(repoRoot, ".venv/bin/python"),
    [path.join(repoRoot, "test/api/fixtures/campaign_model.py"), "--campaign", String(campaignId), "--rounds", "2", "--out", outDir],
    { cwd: repoRoot, env: { ...process.env, MEDLOOP_BLOB_ROOT: api.deps.config.blobRoot, OMP_NUM_THREADS: "1" } },
  ).catch((err: Error & { stdout?: string; stderr?: string }) => {
    throw new Error(`campaign_model.py failed: ${err.stderr ?? ""}`, { cause: err });
  });
  ({ rounds: trained, test } = JSON.parse(stdout.trim().split("\n").at(-1)!) as { rounds: TrainResult[]; test: typeof test });

  // What the campaign does with each result (workflows/campaign.ts runRound, then finish).
  const store = createStoreActivities({ pool: api.db.pool, blobs: api.deps.blobs });
  for (const [round, t] of trained.entries()) {
    const { modelId } = await store.recordModel({
      campaignId: String(campaignId),
      round,
      modelUri: t.model_uri,
      onnxUri: t.onnx_uri,
      metrics: t.metrics,
      datasetUri: `blob://datasets/${campaignId}/round-${round}/v1/manifest.json`,
    });
    modelIds.push(Number(modelId));
    await store.recordRound({
      campaignId: String(campaignId),
      summary: {
        round, modelUri: t.model_uri, modelId, metrics: { f1: t.metrics.val_f1 }, trainSeconds: t.seconds,
        selected: [], corrected: 0, correctionActiveMs: 0, approved: false,
      },
    });
  }
  await store.setCampaignStatus({ campaignId: String(campaignId), status: "completed", reason: "round_limit" });
}, 180_000);

afterAll(async () => {
  await api?.close();
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

describe("a completed campaign's trained models", () => {
  it("are recorded as the campaign's folder URIs, and their files are readable through the API", async () => {
    expect(trained.map((t) => t.model_uri)).toEqual([0, 1].map((r) => `blob://runs/${campaignId}/round-${r}/model/`));
    const models = await api.call("GET", `/api/models?campaign_id=${campaignId}`, { token: api.tokens.lab_lead });
    expect(models.json.map((m: { uri: string; approved: boolean }) => [m.uri, m.approved])).toEqual([
      [`blob://runs/${campaignId}/round-0/model/`, false],
      [`blob://runs/${campaignId}/round-1/model/`, false],
    ]);
    const meta = await api.call("GET", `/api/models/${modelIds[1]}/file?name=model.json`, { token: api.tokens.lab_lead });
    expect(meta.status).toBe(200);
    expect(meta.json).toMatchObject({ input: "image", output: "probability" });
  });

  it("POST /api/models/:id/approve deploys round 0's model without asking the closed workflow", async () => {
    const res = await api.call("POST", `/api/models/${modelIds[0]}/approve`, { token: api.tokens.lab_lead, json: {} });
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(res.json.model).toMatchObject({ id: modelIds[0], approved: true, approved_by: api.users.lead!.id });
    expect(res.json.deployment).toMatchObject({ name: "tiny-vessels", version: 1, model_id: modelIds[0] });
    expect(workflowCalls).toEqual([]);
  });

  it("POST /api/campaigns/:id/approve approves the final round's model after completion and deploys it", async () => {
    const lead = api.tokens.lab_lead;
    expect((await api.call("GET", `/api/campaigns/${campaignId}`, { token: lead })).json.state).toBe("completed");
    const res = await api.call("POST", `/api/campaigns/${campaignId}/approve`, { token: lead, json: { round: 1 } });
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(res.json.result).toEqual({ round: 1, modelId: String(modelIds[1]), approved: true });
    expect(res.json.deployment).toMatchObject({
      name: "tiny-vessels",
      version: 2,
      model_id: modelIds[1],
      card_uri: "blob://deployments/tiny-vessels/v2/model_card.json",
    });
    expect(res.json.campaign.state).toBe("completed");
    expect(workflowCalls).toEqual([]);
    // The frozen ONNX is the one the worker exported into the round's model folder.
    const frozen = await readFile(api.deps.blobs.pathOf("blob://deployments/tiny-vessels/v2/model.onnx"));
    expect(frozen.equals(await readFile(api.deps.blobs.pathOf(trained[1]!.onnx_uri)))).toBe(true);
    const audit = await api.db.pool.query(
      "SELECT actor_id, details FROM audit_log WHERE action = 'campaign.approve' AND entity_id = $1",
      [String(campaignId)],
    );
    expect(audit.rows).toEqual([
      { actor_id: api.users.lead!.id, details: { round: 0, model_id: modelIds[0], via: "database", state: "completed" } },
      { actor_id: api.users.lead!.id, details: { round: 1, model_id: modelIds[1], via: "database", state: "completed" } },
    ]);
    // Approving again gives back the same version.
    const again = await api.call("POST", `/api/campaigns/${campaignId}/approve`, { token: lead, json: { round: 1 } });
    expect(again.json.deployment.version).toBe(2);
    const none = await api.call("POST", `/api/campaigns/${campaignId}/approve`, { token: lead, json: { round: 5 } });
    expect(none.status).toBe(404);
    expect(none.json.error.message).toBe(`model of round 5 of campaign ${campaignId} not found`);
    expect((await api.call("POST", `/api/campaigns/${campaignId}/approve`, { token: api.tokens.doctor, json: { round: 1 } })).status).toBe(403);
  });

  it("answers keyed KServe V2 infer (JSON and binary tensors) and /v1 segment with the engine's probabilities", async () => {
    const created = await api.call("POST", "/api/deployments/tiny-vessels/keys", { token: api.tokens.lab_lead, json: { label: "pacs" } });
    expect(created.status).toBe(201);
    const key = created.json.key as string;
    const { width: w, height: h } = test;
    const rgb = await readFile(path.join(outDir, "test.input.bin"));
    const engine = await readFile(path.join(outDir, "test.prob.bin"));
    const ref = new Float32Array(engine.buffer, engine.byteOffset, engine.byteLength / 4);
    const data = interleavedToPlanar(rgb, w, h, 3).data;
    const url = `${api.baseUrl}/v2/models/tiny-vessels/infer`;

    const body = JSON.stringify({ inputs: [{ name: "image", shape: [1, 3, h, w], datatype: "FP32", data: Array.from(data) }] });
    expect((await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body })).status).toBe(401);
    const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", "x-api-key": key }, body });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as { model_version: string; outputs: Array<{ shape: number[]; data: number[] }> };
    expect(answer.model_version).toBe("2");
    expect(answer.outputs[0]!.shape).toEqual([1, 1, h, w]);
    const prob = answer.outputs[0]!.data;
    let worst = 0;
    prob.forEach((v, k) => (worst = Math.max(worst, Math.abs(v - ref[k]!))));
    expect(worst).toBeLessThan(1e-4);

    // The same tensor as the binary tensor data extension, pinned to version 2.
    const header = Buffer.from(JSON.stringify({
      inputs: [{ name: "image", shape: [1, 3, h, w], datatype: "FP32", parameters: { binary_data_size: data.byteLength } }],
      outputs: [{ name: "probability", parameters: { binary_data: true } }],
    }));
    const bin = await fetch(`${api.baseUrl}/v2/models/tiny-vessels/versions/2/infer`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "inference-header-content-length": String(header.length) },
      body: new Uint8Array(Buffer.concat([header, Buffer.from(data.buffer, data.byteOffset, data.byteLength)])),
    });
    expect(bin.status).toBe(200);
    const bytes = Buffer.from(await bin.arrayBuffer());
    const n = Number(bin.headers.get("inference-header-content-length"));
    const binProb = Array.from({ length: w * h }, (_, k) => bytes.readFloatLE(n + 4 * k));
    expect(binProb).toEqual(prob);

    // /v1 segment of the PNG: the mask is the V2 probabilities at the model's threshold.
    const threshold = trained[1]!.metrics.threshold;
    const seg = await fetch(`${api.baseUrl}/v1/models/tiny-vessels/segment`, {
      method: "POST",
      headers: { "x-api-key": key, accept: "application/json" },
      body: new Uint8Array(await readFile(path.join(outDir, "test.png"))),
    });
    expect(seg.status).toBe(200);
    const s = (await seg.json()) as { model_version: string; width: number; height: number; threshold: number; mask: { counts: number[] } };
    expect([s.model_version, s.width, s.height, s.threshold]).toEqual(["2", w, h, threshold]);
    const mask = decodeRunLengths(s.mask.counts, w * h);
    expect(Array.from(mask, (v) => v > 0)).toEqual(prob.map((p) => p >= threshold));
    const png = await fetch(`${api.baseUrl}/v1/models/tiny-vessels/segment`, {
      method: "POST",
      headers: { "x-api-key": key },
      body: new Uint8Array(await readFile(path.join(outDir, "test.png"))),
    });
    const pngMask = await sharp(Buffer.from(await png.arrayBuffer())).extractChannel(0).raw().toBuffer();
    expect(Buffer.from(mask).equals(pngMask)).toBe(true);
  });
});
