// Auditor reports on known numbers: three masks drawn from scratch (10, 12, 14 min) and three
// corrections (2, 3, 4 min, one of them simulated), submitted through the API. The expected
// intervals are Welch's, computed with scipy.stats.ttest_ind(equal_var=False).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { recordPrediction } from "../../services/annotations.js";
import { effortMinutes, type Action } from "../../services/correction/effort.js";
import { importImage } from "../../services/images.js";
import { recordModel } from "../../services/models.js";
import { createProject } from "../../services/projects.js";
import { assignTask, createTask } from "../../services/tasks.js";
import { startTestApi, type TestApi } from "../helpers/api.js";
import { makeImagePng, makeMaskPng } from "../helpers/images.js";

const W = 40;
const H = 32; // the ingest contract's smallest side
const MIN = 60_000;

const ACTIONS: Action[] = [
  { tool: "trace", clicks: 2, travel_px: 200, path_px: 0, width_px: 3 },
  { tool: "remove", clicks: 1, travel_px: 50, path_px: 0, width_px: 4 },
];

describe("reports", () => {
  let api: TestApi;
  let campaignId: number;
  beforeAll(async () => {
    api = await startTestApi();
    const pool = api.db.pool;
    const project = await createProject(pool, { name: "reports" }, null);
    const { rows } = await pool.query<{ id: number }>("INSERT INTO campaigns (project_id, name) VALUES ($1, 'c') RETURNING id", [project.id]);
    campaignId = rows[0]!.id;
    const model = await recordModel(pool, { campaignId, round: 0, uri: "blob://runs/r/model/" });
    const predicted = await makeMaskPng(W, H, (x) => x < 10); // 10 columns
    const work: Array<{ doctor: "doctor1" | "doctor2"; kind: "annotate" | "correct"; minutes: number; simulated: boolean }> = [
      { doctor: "doctor1", kind: "annotate", minutes: 10, simulated: false },
      { doctor: "doctor2", kind: "annotate", minutes: 12, simulated: false },
      { doctor: "doctor1", kind: "annotate", minutes: 14, simulated: false },
      { doctor: "doctor1", kind: "correct", minutes: 2, simulated: false },
      { doctor: "doctor2", kind: "correct", minutes: 3, simulated: true },
      { doctor: "doctor1", kind: "correct", minutes: 4, simulated: false },
    ];
    for (const [i, w] of work.entries()) {
      const image = await importImage(api.deps, { projectId: project.id, name: `i${i}`, data: await makeImagePng(W, H), role: "pool", actorId: null });
      let parent: number | null = null;
      if (w.kind === "correct") {
        const uri = await api.deps.blobs.put(`runs/r/pred/${i}.png`, predicted);
        parent = (await recordPrediction(api.deps, { campaignId, round: 0, modelId: model.id, imageId: image.id, maskUri: uri })).id;
      }
      const task = await createTask(pool, {
        projectId: project.id,
        imageId: image.id,
        kind: w.kind,
        campaignId,
        round: w.kind === "annotate" ? 0 : 1,
        parentVersionId: parent,
      });
      await assignTask(pool, { taskId: task.id, assigneeId: api.users[w.doctor]!.id });
      // Scratch masks: 20 columns (640 pixels); corrections widen the prediction by 2 columns (64 pixels).
      const mask = await makeMaskPng(W, H, (x) => x < (w.kind === "annotate" ? 20 : 12));
      const ended = new Date();
      const res = await api.call("POST", `/api/tasks/${task.id}/submissions`, {
        token: w.doctor === "doctor1" ? api.tokens.doctor : api.doctor2Token,
        json: {
          submission_id: `rep-${i}`,
          parent_version_id: parent,
          mask_png_base64: mask.toString("base64"),
          active_ms: w.minutes * MIN,
          started_at: new Date(ended.getTime() - w.minutes * MIN - 1000).toISOString(),
          ended_at: ended.toISOString(),
          edits: 5,
          simulated: w.simulated,
          // The first two corrections carry their editor actions; the third none (an older client).
          ...(w.kind === "correct" && i < 5 ? { actions: ACTIONS } : {}),
        },
      });
      expect(res.status, JSON.stringify(res.json)).toBe(201);
    }
  });
  afterAll(async () => {
    await api?.close();
  });

  it("computes the saving and Welch's 95% interval", async () => {
    const res = await api.call("GET", `/api/reports/savings?campaign_id=${campaignId}`, { token: api.tokens.auditor });
    expect(res.status).toBe(200);
    const r = res.json;
    expect(r.scratch).toMatchObject({ n: 3, simulated_n: 0, total_minutes: 36, mean_pixels_changed: 20 * H });
    expect(r.scratch.mean_minutes).toBeCloseTo(12, 12);
    expect(r.scratch.sd_minutes).toBeCloseTo(2, 12);
    expect(r.correction).toMatchObject({ n: 3, simulated_n: 1, median_minutes: 3, mean_pixels_changed: 2 * H });
    expect(r.savings_minutes_per_image).toBeCloseTo(9, 12);
    expect(r.savings_fraction).toBeCloseTo(0.75, 12);
    expect(r.savings_ci95.low).toBeCloseTo(4.8446004968174945, 9);
    expect(r.savings_ci95.high).toBeCloseTo(13.155399503182505, 9);
    expect(r.savings_ci95.df).toBeCloseTo(2.9411764705882346, 9);
    expect(r.simulated).toBe(true);
  });

  it("leaves the simulated times out on request", async () => {
    const r = (await api.call("GET", "/api/reports/savings?simulated=exclude", { token: api.tokens.lab_lead })).json;
    expect(r.simulated).toBe(false);
    expect(r.correction.n).toBe(2);
    expect(r.savings_ci95.low).toBeCloseTo(4.024532403589236, 9);
    expect(r.savings_ci95.high).toBeCloseTo(13.975467596410764, 9);
    const only = (await api.call("GET", "/api/reports/savings?simulated=only", { token: api.tokens.admin })).json;
    expect([only.scratch.n, only.correction.n, only.savings_ci95]).toEqual([0, 1, null]);
  });

  it("reports per doctor and per round", async () => {
    const doctors = (await api.call("GET", "/api/reports/doctors", { token: api.tokens.auditor })).json;
    expect(doctors.map((d: { doctor_email: string }) => d.doctor_email)).toEqual(["doctor1@medloop.local", "doctor2@medloop.local"]);
    const [d1, d2] = doctors;
    expect(d1.savings_minutes_per_image).toBeCloseTo(9, 12);
    expect(d1.savings_ci95.low).toBeCloseTo(-4.8370456601421274, 9);
    expect(d1.savings_ci95.high).toBeCloseTo(22.837045660142127, 9);
    expect(d2.savings_ci95).toBeNull(); // one image on each side: no interval
    expect(d2.simulated).toBe(true);
    const rounds = (await api.call("GET", "/api/reports/rounds", { token: api.tokens.auditor })).json;
    expect(rounds.map((r: { round: number; scratch: { n: number }; correction: { n: number } }) => [r.round, r.scratch.n, r.correction.n])).toEqual([
      [0, 3, 0],
      [1, 0, 3],
    ]);
  });

  it("summarises the editor actions per tool and prices them with the effort model", async () => {
    const r = (await api.call("GET", `/api/reports/savings?campaign_id=${campaignId}`, { token: api.tokens.auditor })).json;
    expect(r.correction).toMatchObject({ with_actions_n: 2, mean_actions: 2, mean_clicks: 3, tools: { trace: { actions: 2, clicks: 4 }, remove: { actions: 2, clicks: 2 } } });
    expect(r.correction.mean_effort_minutes).toBeCloseTo(effortMinutes(ACTIONS), 3);
    expect(r.scratch).toMatchObject({ with_actions_n: 0, mean_actions: null, tools: {} });
    const csv = (await api.call("GET", `/api/reports/savings.csv?campaign_id=${campaignId}`, { token: api.tokens.auditor })).bytes.toString("utf8").trim().split("\r\n");
    const header = csv[0]!.split(",");
    const rows = csv.slice(1).map((l) => Object.fromEntries(l.split(",").map((v, i) => [header[i], v])));
    expect(rows.map((x) => [x.kind, x.action_count, x.clicks])).toEqual([
      ["manual", "", ""],
      ["manual", "", ""],
      ["manual", "", ""],
      ["correction", "2", "3"],
      ["correction", "2", "3"],
      ["correction", "", ""],
    ]);
  });

  it("draws the live learning curve: the model's predictions scored against the corrected masks", async () => {
    const res = await api.call("GET", `/api/campaigns/${campaignId}/live`, { token: api.tokens.lab_lead });
    expect(res.status).toBe(200);
    expect(res.json).toHaveLength(1);
    // The prediction (10 columns) against each correction (12 columns): F1 = 2·10/(10 + 12).
    expect(res.json[0]).toMatchObject({ round: 0, corrections: 3, pixels_changed_mean: 2 * H });
    expect(res.json[0].f1_mean).toBeCloseTo(20 / 22, 5);
    expect(res.json[0].cldice_mean).toBeGreaterThan(0.5);
    expect(res.json[0].effort_minutes_mean).toBeCloseTo(effortMinutes(ACTIONS), 3);
    // The auditor's per-round report carries the same curve.
    const rounds = (await api.call("GET", `/api/reports/rounds?campaign_id=${campaignId}`, { token: api.tokens.auditor })).json;
    expect(rounds.find((r: { round: number }) => r.round === 1).correction.mean_start_f1).toBeCloseTo(20 / 22, 5);
    expect((await api.call("GET", "/api/campaigns/999999/live", { token: api.tokens.lab_lead })).status).toBe(404);
  });

  it("exports one CSV line per mask with the simulated flag", async () => {
    const res = await api.call("GET", `/api/reports/savings.csv?campaign_id=${campaignId}`, { token: api.tokens.auditor });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/csv/);
    const lines = res.bytes.toString("utf8").trim().split("\r\n");
    expect(lines).toHaveLength(7);
    const header = lines[0]!.split(",");
    expect(header).toContain("simulated");
    const rows = lines.slice(1).map((l) => Object.fromEntries(l.split(",").map((v, i) => [header[i], v])));
    expect(rows.map((r) => [r.kind, Number(r.active_ms) / MIN, r.simulated, r.pixels_changed])).toEqual([
      ["manual", 10, "false", "640"],
      ["manual", 12, "false", "640"],
      ["manual", 14, "false", "640"],
      ["correction", 2, "false", "64"],
      ["correction", 3, "true", "64"],
      ["correction", 4, "false", "64"],
    ]);
  });

  it("counts and marks the versions whose timing was corrected, and leaves them out on request", async () => {
    const pool = api.db.pool;
    const project = await createProject(pool, { name: "reports flagged" }, null);
    const image = await importImage(api.deps, { projectId: project.id, name: "f0", data: await makeImagePng(W, H), role: "pool", actorId: null });
    const task = await createTask(pool, { projectId: project.id, imageId: image.id, kind: "annotate" });
    await assignTask(pool, { taskId: task.id, assigneeId: api.users.doctor1!.id });
    const ended = new Date();
    // 20 minutes of active time sent for a 5-minute span: stored as 5 minutes, flagged.
    const res = await api.call("POST", `/api/tasks/${task.id}/submissions`, {
      token: api.tokens.doctor,
      json: {
        submission_id: "rep-flagged",
        parent_version_id: null,
        mask_png_base64: (await makeMaskPng(W, H, (x) => x < 20)).toString("base64"),
        active_ms: 20 * MIN,
        started_at: new Date(ended.getTime() - 5 * MIN).toISOString(),
        ended_at: ended.toISOString(),
        edits: 5,
      },
    });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    const versionId = res.json.version.id;

    const all = (await api.call("GET", "/api/reports/savings", { token: api.tokens.auditor })).json;
    expect([all.flagged_n, all.scratch.flagged_n, all.correction.flagged_n, all.scratch.n]).toEqual([1, 1, 0, 4]);
    const inCampaign = (await api.call("GET", `/api/reports/savings?campaign_id=${campaignId}`, { token: api.tokens.auditor })).json;
    expect(inCampaign.flagged_n).toBe(0);
    const only = (await api.call("GET", "/api/reports/savings?flagged=only", { token: api.tokens.auditor })).json;
    expect([only.scratch.n, only.correction.n, only.scratch.mean_minutes]).toEqual([1, 0, 5]);
    const without = (await api.call("GET", "/api/reports/savings?flagged=exclude", { token: api.tokens.auditor })).json;
    expect([without.flagged_n, without.scratch.n, without.correction.n]).toEqual([0, 3, 3]);
    expect(without.savings_ci95.low).toBeCloseTo(4.8446004968174945, 9); // the campaign's numbers again
    const doctors = (await api.call("GET", "/api/reports/doctors", { token: api.tokens.auditor })).json;
    expect(doctors.map((d: { flagged_n: number }) => d.flagged_n)).toEqual([1, 0]);
    expect((await api.call("GET", "/api/reports/savings?flagged=sometimes", { token: api.tokens.auditor })).status).toBe(400);

    const csv = (await api.call("GET", "/api/reports/savings.csv", { token: api.tokens.auditor })).bytes.toString("utf8").trim().split("\r\n");
    const header = csv[0]!.split(",");
    const rows = csv.slice(1).map((l) => Object.fromEntries(l.split(",").map((v, i) => [header[i], v])));
    expect(rows.filter((r) => r.flags !== "").map((r) => [Number(r.version_id), r.flags, Number(r.active_ms) / MIN])).toEqual([[versionId, "active_ms_clamped", 5]]);
  });
});
