// Quality control end to end (issue 14) with the real parts: the Temporal dev server, the
// TypeScript worker with its real activities, the Python gpu worker (consensus, training,
// prediction) and PostgreSQL. A campaign with two annotators per seed image, review and a
// honeypot per round: the two doctors' seed masks become a consensus version with each
// annotator's figures; a reviewer returns one mask with a comment and a region, the task reopens
// from that mask, the resubmission is accepted; the honeypot's score equals the hand-computed
// Dice against its reference; the audit chain still verifies.
import path from "node:path";
import { DefaultLogger, Runtime } from "@temporalio/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnPythonWorker, type PythonWorker } from "../../worker/pythonWorker.js";
import type { TestApi } from "../helpers/api.js";
import { makeImagePng, makeMaskPng } from "../helpers/images.js";
import { startTemporalTestApi, type TemporalTestApi } from "../helpers/temporalApi.js";
import { until } from "../helpers/poll.js";

Runtime.install({ logger: new DefaultLogger("WARN") });

const W = 64;
const TRAIN = { epochs: 1, patch_size: 32, batch_size: 4, patches_per_epoch: 16, channels: 4, depth: 2, infer_patch: 64, threads: 1, progress: false };

/** Dice of two left-aligned vertical bands x < a and x < b (hand-computed). */
const bandDice = (a: number, b: number) => (2 * Math.min(a, b)) / (a + b);

interface ApiTask {
  id: number;
  kind: string;
  state: string;
  round: number;
  assignee_id: number;
  image_id: number;
  image_name: string;
  start_version_id: number | null;
}

describe("quality control: consensus, review, honeypots", () => {
  let stack: TemporalTestApi;
  let api: TestApi;
  let python: PythonWorker;
  const pythonLog: string[] = [];

  beforeAll(async () => {
    stack = await startTemporalTestApi("test-link-secret");
    api = stack.api;
    python = spawnPythonWorker({
      address: stack.env.address,
      env: { MEDLOOP_BLOB_ROOT: path.join(api.dataDir, "blobs") },
      log: (line) => pythonLog.push(line),
    });
  });
  afterAll(async () => {
    await python?.stop(30_000).catch(() => undefined);
    await stack?.close();
  });

  const tokenOf = (userId: number) => (userId === api.users.doctor1!.id ? api.tokens.doctor : api.doctor2Token);

  async function submit(task: ApiTask, bandWidth: number, parent: number | null, id: string) {
    const ended = new Date();
    const res = await api.call("POST", `/api/tasks/${task.id}/submissions`, {
      token: tokenOf(task.assignee_id),
      json: {
        submission_id: id,
        parent_version_id: parent,
        mask_png_base64: (await makeMaskPng(W, W, (x) => x < bandWidth)).toString("base64"),
        active_ms: 3000,
        started_at: new Date(ended.getTime() - 4000).toISOString(),
        ended_at: ended.toISOString(),
        edits: 2,
      },
    });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    return res.json.version.id as number;
  }

  async function pendingReviewOf(versionId: number) {
    return until(`review of version ${versionId}`, async () => {
      const list = (await api.call("GET", "/api/reviews", { token: api.tokens.reviewer })).json as Array<{ id: number; version_id: number }>;
      return list.find((r) => r.version_id === versionId);
    });
  }

  async function decide(reviewId: number, body: Record<string, unknown>) {
    return api.call("POST", `/api/reviews/${reviewId}/decision`, { token: api.tokens.reviewer, json: { active_ms: 2000, ...body } });
  }

  it("runs two annotators per seed with review and a honeypot, and reports consensus, review and honeypot figures", async () => {
    const lead = api.tokens.lab_lead;
    const project = (await api.call("POST", "/api/projects", { token: lead, json: { name: "quality" } })).json;
    for (const [name, role] of [["s1", "seed"], ["p1", "pool"], ["p2", "pool"], ["t1", "test"]] as const) {
      const form = new FormData();
      form.set("image", new Blob([new Uint8Array(await makeImagePng(W, W))]), `${name}.png`);
      // The test image's reference mask: a band 8 pixels wide.
      if (role === "test") form.set("mask", new Blob([new Uint8Array(await makeMaskPng(W, W, (x) => x < 8))]), `${name}_mask.png`);
      form.set("name", name);
      form.set("role", role);
      expect((await api.call("POST", `/api/projects/${project.id}/images`, { token: lead, body: form })).status).toBe(201);
    }
    const config = {
      k: 1,
      maxRounds: 2,
      targetF1: 0.999,
      annotatorsPerSeed: 2,
      review: true,
      honeypotsPerRound: 1,
      heartbeatTimeoutMs: 60_000,
      augmentation: { seed: 3, steps: [{ op: "flip", modes: ["none", "h"] }] },
      train: TRAIN,
    };
    // Three annotators per image need three doctors: refused before anything starts.
    const tooMany = await api.call("POST", "/api/campaigns", { token: lead, json: { project_id: project.id, name: "q", config: { ...config, annotatorsPerSeed: 3 } } });
    expect(tooMany.status).toBe(400);
    expect(tooMany.json.error.message).toMatch(/annotatorsPerSeed is 3, but there are 2 active doctors/);

    const started = await api.call("POST", "/api/campaigns", { token: lead, json: { project_id: project.id, name: "q", config } });
    expect(started.status, JSON.stringify(started.json)).toBe(201);
    const campaignId = started.json.id as number;
    const tasksOf = async () => (await api.call("GET", `/api/tasks?campaign_id=${campaignId}`, { token: lead })).json as ApiTask[];

    // Two seed tasks on the one seed image, each for a different doctor.
    const seeds = await until("two seed tasks", async () => {
      const open = (await tasksOf()).filter((t) => t.state === "open");
      return open.length === 2 ? open : null;
    });
    expect(seeds.map((t) => t.image_name)).toEqual(["s1", "s1"]);
    expect(new Set(seeds.map((t) => t.assignee_id)).size).toBe(2);
    const [a, b] = seeds as [ApiTask, ApiTask];
    const va = await submit(a, 8, null, `q-a-${a.id}`);
    const vb = await submit(b, 12, null, `q-b-${b.id}`);

    // Review: only reviewers and lab leads decide; a doctor does not even see the queue.
    expect((await api.call("GET", "/api/reviews", { token: api.tokens.doctor })).status).toBe(403);
    const ra = await pendingReviewOf(va);
    const rb = await pendingReviewOf(vb);
    expect((await decide(ra.id, { decision: "return", decision_id: "x1" })).status).toBe(400); // no comment
    const outside = await decide(ra.id, { decision: "return", comment: "c", region: { x: 60, y: 0, width: 10, height: 4 }, decision_id: "x2" });
    expect(outside.status).toBe(400);
    expect(outside.json.error.message).toMatch(/outside the image of 64×64/);
    const returned = await decide(ra.id, {
      decision: "return",
      comment: "the band is too thin on the left",
      region: { x: 0, y: 10, width: 12, height: 20 },
      decision_id: "ret-a",
    });
    expect(returned.status, JSON.stringify(returned.json)).toBe(200);
    expect(returned.json).toMatchObject({ state: "returned", reviewer_name: "Rhea Reviewer" });
    // The same decision retried is answered again; a different one is refused.
    expect((await decide(ra.id, { decision: "return", comment: "the band is too thin on the left", decision_id: "ret-a" })).status).toBe(200);
    expect((await decide(ra.id, { decision: "accept", decision_id: "acc-late" })).status).toBe(409);

    // The returned task reopens for its doctor from the submitted mask, with the comment and region.
    const reopened = await until("task reopened", async () => {
      const d = (await api.call("GET", `/api/tasks/${a.id}`, { token: tokenOf(a.assignee_id) })).json;
      return d.task.state === "open" ? d : null;
    });
    expect(reopened.start_version.id).toBe(va);
    expect(reopened.review).toMatchObject({ state: "returned", comment: "the band is too thin on the left", region: { x: 0, y: 10, width: 12, height: 20 } });
    const va2 = await submit({ ...a, start_version_id: va }, 10, va, `q-a2-${a.id}`);
    const ra2 = await pendingReviewOf(va2);
    expect((await decide(ra2.id, { decision: "accept", decision_id: "acc-a2" })).status).toBe(200);
    expect((await decide(rb.id, { decision: "accept", decision_id: "acc-b" })).status).toBe(200);

    // The two accepted masks (bands 10 and 12 wide) become a consensus version with each annotator's figures.
    const quality = await until("the consensus", async () => {
      const q = (await api.call("GET", `/api/reports/quality?campaign_id=${campaignId}`, { token: api.tokens.auditor })).json;
      return q.consensus?.length === 1 ? q : null;
    });
    const c = quality.consensus[0];
    expect(c).toMatchObject({ image_name: "s1", round: 0, method: "staple" });
    expect(c.annotators.map((x: { version_id: number }) => x.version_id).sort()).toEqual([va2, vb].sort());
    for (const x of c.annotators) {
      expect(x.sensitivity).toBeGreaterThanOrEqual(0);
      expect(x.sensitivity).toBeLessThanOrEqual(1);
      expect(x.specificity).toBeGreaterThan(0.5);
    }
    expect(c.pairs[0].dice).toBeCloseTo(bandDice(10, 12), 9);
    const versions = (await api.call("GET", `/api/images/${a.image_id}/versions`, { token: lead })).json as Array<{ kind: string; foreground_pixels: number }>;
    const consensus = versions.find((v) => v.kind === "consensus")!;
    // Agreed everywhere in x < 10, disagreed in 10 ≤ x < 12: the consensus lies between.
    expect(consensus.foreground_pixels).toBeGreaterThanOrEqual(10 * W);
    expect(consensus.foreground_pixels).toBeLessThanOrEqual(12 * W);
    expect(quality.reviews.find((r: { doctor_id: number }) => r.doctor_id === a.assignee_id)).toMatchObject({ accepted: 1, returned: 1 });

    // The correction round after training: one correction and one honeypot (the test image), both unmarked.
    const correctionTasks = await until("the correction round's tasks", async () => {
      const open = (await tasksOf()).filter((t) => t.kind === "correct" && t.state === "open");
      return open.length === 2 ? open : null;
    });
    const honeypot = correctionTasks.find((t) => t.image_name === "t1")!;
    expect(honeypot.kind).toBe("correct");
    const asDoctor = (await api.call("GET", `/api/tasks/${honeypot.id}`, { token: tokenOf(honeypot.assignee_id) })).json;
    expect(asDoctor.image.role).toBeNull(); // nothing tells the doctor it is a test image
    for (const t of correctionTasks) {
      const v = await submit(t, t === honeypot ? 12 : 9, t.start_version_id, `q-r1-${t.id}`);
      const r = await pendingReviewOf(v);
      // A decision id already used for another review is refused (409), not a server error.
      const reused = await decide(r.id, { decision: "accept", decision_id: "acc-b" });
      expect(reused.status, JSON.stringify(reused.json)).toBe(409);
      expect((await decide(r.id, { decision: "accept", decision_id: `acc-r1-${t.id}` })).status).toBe(200);
    }
    const scored = await until("the honeypot score", async () => {
      const q = (await api.call("GET", `/api/reports/quality?campaign_id=${campaignId}`, { token: lead })).json;
      return q.honeypots.scores.length === 1 ? q : null;
    });
    // Reference band 8 wide, the doctor's 12: Dice 2·8 / (8 + 12) = 0.8.
    expect(scored.honeypots.scores[0]).toMatchObject({ image_name: "t1", doctor_id: honeypot.assignee_id });
    expect(scored.honeypots.scores[0].dice).toBeCloseTo(bandDice(8, 12), 9);
    expect(scored.honeypots.by_doctor).toEqual([expect.objectContaining({ doctor_id: honeypot.assignee_id, honeypots: 1 })]);
    const csv = await api.call("GET", `/api/reports/quality.csv?campaign_id=${campaignId}`, { token: api.tokens.auditor });
    expect(csv.status).toBe(200);
    expect(csv.bytes.toString()).toMatch(/^section,round,image,doctor,metric,value\r\n/);
    expect(csv.bytes.toString()).toContain("honeypot,0,t1,");

    // The campaign is stopped; every step above is in the audit chain, which still verifies.
    expect((await api.call("POST", `/api/campaigns/${campaignId}/stop`, { token: lead, json: {} })).status).toBe(200);
    const verify = await api.call("GET", "/api/audit/verify", { token: api.tokens.auditor });
    expect(verify.json).toMatchObject({ ok: true });
    const audit = (await api.call("GET", "/api/audit?entity=review", { token: api.tokens.auditor })).json as Array<{ action: string }>;
    expect(audit.map((r) => r.action)).toEqual(expect.arrayContaining(["review.request", "review.return", "review.accept"]));
  });
});
