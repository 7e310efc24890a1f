// Deployments on a real PostgreSQL database: approving deploys a versioned model with its card,
// failures leave nothing behind, keys are hashed at rest, and the registry-backed router and the
// `medloop serve-model` process serve what is deployed.
import { spawn, type ChildProcess } from "node:child_process";
import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BlobStore } from "../../services/blobs.js";
import { recordModel } from "../../services/models.js";
import { createProject } from "../../services/projects.js";
import { createUser } from "../../services/users.js";
import { interleavedToPlanar } from "../../serving/image.js";
import {
  createApiKey,
  deployModel,
  getDeploymentVersion,
  listApiKeys,
  revokeApiKey,
  verifyApiKey,
} from "../../serving/registry.js";
import { deploymentServing } from "../../serving/index.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { makeModelFixture, repoRoot, type ModelFixture } from "./fixtures.js";
import { listen, type Running } from "./http.js";

let db: TestDatabase;
let fx: ModelFixture;
let blobRoot: string;
let blobs: BlobStore;
let leadId: number;
let campaignId: number;
const modelIds: number[] = [];

async function runFolder(key: string, withOnnx = true): Promise<string> {
  const dir = path.join(blobRoot, key);
  await mkdir(dir, { recursive: true });
  await copyFile(path.join(fx.dir, "model.json"), path.join(dir, "model.json"));
  if (withOnnx) await copyFile(path.join(fx.dir, "model.onnx"), path.join(dir, "model.onnx"));
  return `blob://${key}`;
}

beforeAll(async () => {
  [db, fx] = await Promise.all([createTestDatabase(), makeModelFixture()]);
  blobRoot = await mkdtemp(path.join(os.tmpdir(), "medloop-blobs-"));
  blobs = new BlobStore(blobRoot);
  const lead = await createUser(db.pool, { email: "lead@example.org", name: "Lab Lead", role: "lab_lead", password: "pw-123456789" });
  const doctor = await createUser(db.pool, { email: "doc@example.org", name: "Doctor", role: "doctor", password: "pw-123456789" });
  leadId = lead.id;
  const project = await createProject(db.pool, { name: "chase" }, lead.id);
  const c = await db.pool.query<{ id: number }>(
    `INSERT INTO campaigns (project_id, name, config) VALUES ($1, 'CHASE vessels', '{"seeds": 6, "k": 2}') RETURNING id`,
    [project.id],
  );
  campaignId = c.rows[0]!.id;
  // Human annotations: 2 seeds drawn by hand in round 0, 1 correction in round 1, 1 in round 2.
  for (const [i, round, kind] of [[1, 0, "manual"], [2, 0, "manual"], [3, 1, "correction"], [4, 2, "correction"]] as const) {
    const img = await db.pool.query<{ id: number }>(
      `INSERT INTO images (project_id, name, role, format, width, height, bytes, sha256, original_uri, png_uri, thumb_uri)
       VALUES ($1, $2, 'seed', 'png', 10, 10, 100, $3, 'blob://x', 'blob://x', 'blob://x') RETURNING id`,
      [project.id, `img${i}`, "a".repeat(64)],
    );
    await db.pool.query(
      `INSERT INTO annotation_versions (image_id, kind, author_id, campaign_id, round, uri, width, height, foreground_pixels,
         pixels_changed, mask_sha256, active_ms) VALUES ($1, $2, $3, $4, $5, 'blob://m', 10, 10, 5, 5, 'x', $6)`,
      [img.rows[0]!.id, kind, doctor.id, campaignId, round, 30 * 60_000],
    );
  }
  await db.pool.query(`INSERT INTO rounds (campaign_id, round, metrics) VALUES ($1, 0, '{"val_f1": 0.71}'), ($1, 1, '{"val_f1": 0.76}')`, [
    campaignId,
  ]);
  for (const round of [0, 1]) {
    const m = await recordModel(db.pool, {
      campaignId,
      round,
      uri: await runFolder(`runs/r${round}`),
      runId: `r${round}`,
      metrics: { val_f1: 0.7 + round / 20, val_auc: 0.95 },
    });
    modelIds.push(m.id);
  }
});
afterAll(async () => {
  await db?.drop();
  await fx?.cleanup();
  if (blobRoot) await rm(blobRoot, { recursive: true, force: true });
});

describe("deployModel", () => {
  it("approves the model and deploys version 1 with frozen artefacts and a model card", async () => {
    const dv = await deployModel({ pool: db.pool, blobs }, modelIds[0]!, leadId);
    expect([dv.name, dv.version, dv.model_id, dv.status]).toEqual(["chase-vessels", 1, modelIds[0], "active"]);
    const model = await db.pool.query("SELECT approved, approved_by FROM models WHERE id = $1", [modelIds[0]]);
    expect(model.rows[0]).toEqual({ approved: true, approved_by: leadId });
    const onnx = await readFile(path.join(blobRoot, "deployments/chase-vessels/v1/model.onnx"));
    expect(onnx.equals(await readFile(path.join(fx.dir, "model.onnx")))).toBe(true);

    const card = dv.card;
    expect(card.deployment).toMatchObject({ name: "chase-vessels", version: 1, deployed_by: "Lab Lead <lead@example.org>" });
    expect(card.model.campaign).toEqual({ id: campaignId, name: "CHASE vessels", project: "chase" });
    // Model of round 0: only round 0's annotations trained it.
    expect(card.training_data.rounds).toEqual([
      { round: 0, manual_images: 2, corrected_images: 0, annotation_minutes: 60, metrics: { val_f1: 0.71 } },
    ]);
    expect(card.configuration.inference).toEqual({ patch_size: 128, overlap: 0.25, threshold: 0.5, blend: "gaussian", sigma_scale: 0.125 });
    expect(card.configuration.campaign).toEqual({ seeds: 6, k: 2 });
    expect(card.metrics).toMatchObject({ val_f1: 0.7, val_auc: 0.95 });
    expect(card.intended_use.use).toMatch(/retinal blood vessels/);
    expect(dv.card_markdown).toMatch(/^# Model card: chase-vessels v1/);
    expect(dv.card_markdown).toMatch(/\| 0 \| 2 \| 0 \| 60 \|/);
    const md = await readFile(path.join(blobRoot, "deployments/chase-vessels/v1/model_card.md"), "utf8");
    expect(md).toBe(dv.card_markdown);
  });

  it("is idempotent per model and numbers the next model's deployment 2", async () => {
    const again = await deployModel({ pool: db.pool, blobs }, modelIds[0]!, leadId);
    expect(again.version).toBe(1);
    const dv2 = await deployModel({ pool: db.pool, blobs }, modelIds[1]!, leadId);
    expect(dv2.version).toBe(2);
    expect(dv2.card.training_data.rounds.map((r) => [r.round, r.manual_images, r.corrected_images])).toEqual([
      [0, 2, 0],
      [1, 0, 1],
    ]);
    expect((await getDeploymentVersion(db.pool, "chase-vessels")).version).toBe(2);
    const audit = await db.pool.query("SELECT count(*)::int AS n FROM audit_log WHERE action = 'model.deploy'");
    expect(audit.rows[0].n).toBe(2);
  });

  it("refuses a model without an ONNX export and leaves it unapproved, with nothing written", async () => {
    const m = await recordModel(db.pool, { campaignId, round: 2, uri: await runFolder("runs/r2", false) });
    await expect(deployModel({ pool: db.pool, blobs }, m.id, leadId)).rejects.toThrow(/has no ONNX export/);
    const row = await db.pool.query("SELECT approved FROM models WHERE id = $1", [m.id]);
    expect(row.rows[0].approved).toBe(false);
    const n = await db.pool.query("SELECT count(*)::int AS n FROM deployment_versions");
    expect(n.rows[0].n).toBe(2);
    await expect(readFile(path.join(blobRoot, "deployments/chase-vessels/v3/model_card.md"))).rejects.toThrow(/ENOENT/);
  });

  it("refuses an unknown model and a bad deployment name", async () => {
    await expect(deployModel({ pool: db.pool, blobs }, 9999, leadId)).rejects.toThrow(/model 9999 not found/);
    await expect(deployModel({ pool: db.pool, blobs }, modelIds[1]!, leadId, { name: "Bad Name!" })).rejects.toThrow(/deployment name/);
  });
});

describe("API keys", () => {
  it("stores only a salted hash, verifies, lists without secrets and revokes", async () => {
    const created = await createApiKey(db.pool, "chase-vessels", { label: "pacs", createdBy: leadId });
    expect(created.key).toMatch(/^mlk_[0-9a-f]{12}_[A-Za-z0-9_-]{32}$/);
    const stored = await db.pool.query("SELECT * FROM deployment_keys WHERE id = $1", [created.id]);
    const row = JSON.stringify(stored.rows[0]);
    expect(row).not.toContain(created.key);
    expect(row).not.toContain(created.key.slice(18));
    expect(await verifyApiKey(db.pool, "chase-vessels", created.key)).toBe(created.id);
    expect(await verifyApiKey(db.pool, "chase-vessels", created.key.slice(0, -1) + "x")).toBeNull();
    expect(await verifyApiKey(db.pool, "other", created.key)).toBeNull();
    expect((await listApiKeys(db.pool, "chase-vessels")).map((k) => [k.label, k.revoked_at])).toEqual([["pacs", null]]);
    await revokeApiKey(db.pool, "chase-vessels", created.id, leadId);
    expect(await verifyApiKey(db.pool, "chase-vessels", created.key)).toBeNull();
    await expect(createApiKey(db.pool, "nope")).rejects.toThrow(/deployment nope not found/);
  });
});

describe("serving what is deployed", () => {
  let srv: Running;
  let serving: ReturnType<typeof deploymentServing>;
  beforeAll(async () => {
    // As the API process mounts it: every deployment of the registry, loaded on first use.
    serving = deploymentServing({ pool: db.pool, blobs }, { keyCacheMs: 0, threads: 1 });
    srv = await listen(serving.router);
  });
  afterAll(async () => {
    await srv?.close();
    await serving?.close();
  });

  it("serves the latest version, a pinned version, and refuses revoked keys", async () => {
    const { key, id } = await createApiKey(db.pool, "chase-vessels", { label: "test" });
    const c = fx.cases.find((x) => x.name === "small")!;
    const data = Array.from(interleavedToPlanar(await fx.input("small"), c.width, c.height, 3).data);
    const body = JSON.stringify({ inputs: [{ name: "image", shape: [1, 3, c.height, c.width], datatype: "FP32", data }] });
    const headers = { "x-api-key": key, "content-type": "application/json" };
    const latest = await fetch(`${srv.url}/v2/models/chase-vessels/infer`, { method: "POST", headers, body });
    expect(latest.status).toBe(200);
    expect(((await latest.json()) as { model_version: string }).model_version).toBe("2");
    const v1 = await fetch(`${srv.url}/v2/models/chase-vessels/versions/1/infer`, { method: "POST", headers, body });
    expect(((await v1.json()) as { model_version: string }).model_version).toBe("1");
    const meta = await fetch(`${srv.url}/v2/models/chase-vessels`, { headers });
    expect(((await meta.json()) as { versions: string[] }).versions).toEqual(["1", "2"]);
    expect((await fetch(`${srv.url}/v2/models/chase-vessels/versions/7`, { headers })).status).toBe(404);
    await revokeApiKey(db.pool, "chase-vessels", id);
    expect((await fetch(`${srv.url}/v2/models/chase-vessels`, { headers })).status).toBe(401);
  });
});

describe("medloop deploy and medloop serve-model", () => {
  const cli = path.join(repoRoot, "bin/medloop.mjs");
  const env = () => ({ ...process.env, MEDLOOP_DATABASE_URL: db.url, MEDLOOP_BLOB_ROOT: blobRoot, OMP_NUM_THREADS: "1" });
  let child: ChildProcess | undefined;
  afterAll(() => {
    child?.kill("SIGTERM");
  });

  it("deploys from the command line, creates a key, and serves it from a separate process", async () => {
    const m = await recordModel(db.pool, { campaignId: null, round: null, uri: await runFolder("runs/cli") });
    const out = await promisify(execFile)("node", [cli, "deploy", "--model", String(m.id), "--name", "cli-demo", "--by", "lead@example.org", "--key", "ci"], {
      cwd: repoRoot,
      env: env(),
    });
    expect(out.stdout).toMatch(new RegExp(`deployed model ${m.id} as cli-demo v1`));
    const key = /shown once: (mlk_\S+)/.exec(out.stdout)![1]!;
    const card = await promisify(execFile)("node", [cli, "deploy", "card", "cli-demo"], { cwd: repoRoot, env: env() });
    expect(card.stdout).toMatch(/# Model card: cli-demo v1/);

    child = spawn("node", [cli, "serve-model", "--deployment", "cli-demo", "--port", "0", "--threads", "1"], { cwd: repoRoot, env: env() });
    const url = await new Promise<string>((resolve, reject) => {
      let text = "";
      child!.stdout!.on("data", (d: Buffer) => {
        text += d.toString();
        const match = /on (http:\/\/\S+) \((cpu|cuda)\)/.exec(text);
        if (match) resolve(match[1]!);
      });
      child!.stderr!.on("data", (d: Buffer) => (text += d.toString()));
      child!.once("exit", (code) => reject(new Error(`serve-model exited with ${code}: ${text}`)));
    });
    expect((await fetch(`${url}/v2/health/ready`)).status).toBe(200);
    expect((await fetch(`${url}/v2/models/cli-demo/ready`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    expect((await fetch(`${url}/v2/models/cli-demo/ready`)).status).toBe(401);
    expect((await fetch(`${url}/v2/models/chase-vessels`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(404);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/process_cpu_user_seconds_total/);
    expect(metrics).toMatch(/medloop_serving_requests_total\{model="cli-demo",endpoint="ready",status="200"\} 1/);
    const exited = new Promise<number | null>((resolve) => child!.once("exit", resolve));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    child = undefined;
  });

  it("deploys a completed campaign's final model, stored under a folder URI ending in /, without Temporal", async () => {
    const c = await db.pool.query<{ id: number }>(
      `INSERT INTO campaigns (project_id, name, config, workflow_id, state)
       SELECT project_id, 'Finished run', '{}', 'campaign-finished', 'completed' FROM campaigns WHERE id = $1 RETURNING id`,
      [campaignId],
    );
    // As workflows/campaign.ts records it: blob://runs/<id>/round-<r>/model/ (once "invalid blob key").
    const uri = `${await runFolder(`runs/${c.rows[0]!.id}/round-2/model`)}/`;
    const m = await recordModel(db.pool, { campaignId: c.rows[0]!.id, round: 2, uri });
    // No Temporal runs here: a finished campaign's workflow is closed and is not asked.
    const out = await promisify(execFile)("node", [cli, "deploy", "--model", String(m.id), "--by", "lead@example.org"], {
      cwd: repoRoot,
      env: { ...env(), MEDLOOP_TEMPORAL_ADDRESS: "127.0.0.1:1" },
    });
    expect(out.stdout).toMatch(new RegExp(`deployed model ${m.id} as finished-run v1 \\(blob://deployments/finished-run/v1/\\)`));
    const audit = await db.pool.query("SELECT actor_id, details FROM audit_log WHERE action = 'campaign.approve' AND entity_id = $1", [
      String(c.rows[0]!.id),
    ]);
    expect(audit.rows).toEqual([{ actor_id: leadId, details: { round: 2, model_id: m.id, via: "database", state: "completed" } }]);
  });

  it("fails with a one-line message for an unknown deployment", async () => {
    const res = await promisify(execFile)("node", [cli, "serve-model", "--deployment", "nope", "--port", "0"], { cwd: repoRoot, env: env() }).catch(
      (err: { code: number; stderr: string }) => err,
    );
    expect((res as { code: number }).code).toBe(1);
    expect((res as { stderr: string }).stderr.trim()).toBe("medloop serve-model: deployment nope not found");
  });
});
