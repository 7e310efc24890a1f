// Steering a campaign (services/campaigns.ts controlCampaign through the API) and the guard on the
// campaign's row (setCampaignState, the store activities), on PostgreSQL with a recording stand-in
// for the Temporal side (the workflow's own refusals are tested in test/workflow/campaign.test.ts,
// the whole stack racing in test/api/campaign-race.test.ts):
// - pause, resume and K are refused once a stop is requested or the campaign has finished (409
//   naming why), the workflow is never asked;
// - a stop is checked, marked and audited before the workflow hears of it; one that fails is undone;
// - a row in a final state never leaves it, whatever writes arrive after;
// - a campaign's row exists before its workflow starts; an approval is audited before the Update.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createStoreActivities, type StoreActivities } from "../../activities/store.js";
import {
  approveCampaignRound,
  controlCampaign,
  getCampaign,
  setCampaignState,
  startCampaign,
  type CampaignState,
  type CampaignWorkflows,
} from "../../services/campaigns.js";
import { AppError, conflict, notFound } from "../../services/errors.js";
import { importImage } from "../../services/images.js";
import { recordModel } from "../../services/models.js";
import { createProject } from "../../services/projects.js";
import { startTestApi, type TestApi } from "../helpers/api.js";
import { makeImagePng } from "../helpers/images.js";

type Method = Exclude<keyof CampaignWorkflows, "status">;

let api: TestApi;
let projectId: number;
let store: StoreActivities;
/** Every call the API made to the Temporal side, as "method workflowId". */
const calls: string[] = [];
/** What a stand-in method does when called (default: answers like an accepting workflow). */
let behaviour: Partial<Record<Method, (workflowId: string) => Promise<unknown>>> = {};

const gateway: CampaignWorkflows = {
  start: async (input) => {
    calls.push(`start ${input.campaignId}`);
    const act = behaviour.start;
    return act ? ((await act(input.campaignId)) as { workflowId: string }) : { workflowId: `campaign-${input.campaignId}` };
  },
  pause: (wf) => answer("pause", wf, { paused: true }),
  resume: (wf) => answer("resume", wf, { paused: false }),
  stop: (wf, reason) => answer("stop", wf, { stopRequested: true, reason }),
  approve: (wf, round) => answer("approve", wf, { round, approved: true }),
  setK: (wf, k) => answer("setK", wf, { previous: 2, k }),
  status: async () => ({}),
  pull: () => Promise.reject(new Error("not a continuous campaign")),
  restartTask: () => Promise.reject(new Error("not used here")),
};

async function answer(method: Method, workflowId: string, value: unknown): Promise<unknown> {
  calls.push(`${method} ${workflowId}`);
  const act = behaviour[method];
  return act ? act(workflowId) : value;
}

beforeAll(async () => {
  api = await startTestApi({ campaigns: gateway });
  projectId = (await createProject(api.db.pool, { name: "control" }, null)).id;
  for (const [name, role] of [["s1", "seed"], ["t1", "test"]] as const) {
    await importImage(api.deps, { projectId, name, role, data: await makeImagePng(32, 32), actorId: null });
  }
  store = createStoreActivities({ pool: api.db.pool, blobs: api.deps.blobs });
});
afterAll(async () => {
  await api?.close();
});
beforeEach(() => {
  calls.length = 0;
  behaviour = {};
});

let named = 0;
/** A campaign row as the workflow's activities would have left it. */
async function campaignIn(state: CampaignState, phase: string | null = "training"): Promise<number> {
  const { rows } = await api.db.pool.query<{ id: number }>(
    "INSERT INTO campaigns (project_id, name, state, phase, round) VALUES ($1, $2, $3, $4, 1) RETURNING id",
    [projectId, `c${++named}`, state, phase],
  );
  const id = rows[0]!.id;
  await api.db.pool.query("UPDATE campaigns SET workflow_id = $2 WHERE id = $1", [id, `campaign-${id}`]);
  return id;
}

const lead = () => api.tokens.lab_lead;
const control = (id: number, action: "pause" | "resume" | "stop", json: unknown = {}) =>
  api.call("POST", `/api/campaigns/${id}/${action}`, { token: lead(), json });
const patchK = (id: number, k: number) => api.call("PATCH", `/api/campaigns/${id}`, { token: lead(), json: { k } });
const auditOf = async (id: number) =>
  (
    await api.db.pool.query<{ action: string; details: Record<string, unknown> }>(
      "SELECT action, details FROM audit_log WHERE entity = 'campaign' AND entity_id = $1 ORDER BY id",
      [String(id)],
    )
  ).rows;
const stateOf = async (id: number) => {
  const c = await getCampaign(api.db.pool, id);
  return { state: c.state, phase: c.phase, round: c.round };
};

describe("steering a campaign", () => {
  it("refuses pause, resume and K right after a stop, without asking the workflow", async () => {
    const id = await campaignIn("running");
    // The stop's audit row and the `stopping` mark are committed when the workflow is told.
    let seenByStop: unknown = null;
    behaviour.stop = async () => {
      seenByStop = { ...(await stateOf(id)), audit: (await auditOf(id)).map((a) => a.action) };
      return { stopRequested: true };
    };
    const stop = await control(id, "stop", { reason: "enough data" });
    expect(stop.status, JSON.stringify(stop.json)).toBe(200);
    expect(stop.json.campaign.state).toBe("stopping");
    expect(seenByStop).toEqual({ state: "stopping", phase: "training", round: 1, audit: ["campaign.stop"] });

    const refused = [await control(id, "resume"), await control(id, "pause"), await patchK(id, 4)];
    expect(refused.map((r) => [r.status, r.json.error.message])).toEqual([
      [409, `campaign ${id} is stopping (a stop was requested); it cannot be resumed`],
      [409, `campaign ${id} is stopping (a stop was requested); it cannot be paused`],
      [409, `campaign ${id} is stopping (a stop was requested); it cannot be given a new K`],
    ]);
    expect(calls).toEqual([`stop campaign-${id}`]);
    expect(await auditOf(id)).toEqual([{ action: "campaign.stop", details: { reason: "enough data", k: null, state: "running" } }]);
    // A stop sent again (a retry after a lost answer) still reaches the workflow, which takes it again.
    expect((await control(id, "stop")).status).toBe(200);
    expect(calls).toEqual([`stop campaign-${id}`, `stop campaign-${id}`]);

    // The workflow ends and records its final state: stopped, with its phase.
    await store.setCampaignStatus({ campaignId: String(id), status: "stopped", reason: "stopped" });
    expect(await stateOf(id)).toEqual({ state: "stopped", phase: "stopped", round: 1 });
  });

  it("refuses every control of a finished campaign with a 409 naming its state", async () => {
    for (const state of ["stopped", "completed", "failed"] as const) {
      const id = await campaignIn(state);
      const answers = [await control(id, "pause"), await control(id, "resume"), await control(id, "stop", { reason: "x" }), await patchK(id, 3)];
      expect(answers.map((r) => [r.status, r.json.error.message])).toEqual(answers.map(() => [409, `campaign ${id} is ${state}`]));
      expect(await auditOf(id)).toEqual([]);
      expect((await stateOf(id)).state).toBe(state);
    }
    expect(calls).toEqual([]);
  });

  it("checks a stop's reason and K before anything: no audit row, no workflow call, the row unchanged", async () => {
    const id = await campaignIn("running");
    const viaApi = [
      await control(id, "stop", { reason: "x".repeat(501) }),
      await control(id, "stop", { reason: "bad\u0000reason" }),
      await patchK(id, 0),
      await patchK(id, 1001),
    ];
    expect(viaApi.map((r) => r.status)).toEqual([400, 400, 400, 400]);
    expect(viaApi[0]!.json.error.message).toMatch(/body\.reason/);
    expect(viaApi[1]!.json.error.message).toMatch(/body\.reason/);
    // The service checks the same for callers other than the API.
    const actor = { id: api.users.lead!.id, email: "lead@medloop.local" };
    const deps = { pool: api.db.pool, workflows: gateway };
    const direct = await Promise.all(
      [
        { action: "stop" as const, reason: "bad\u0000reason" },
        { action: "stop" as const, reason: "bell\u0007" },
        { action: "stop" as const, reason: "y".repeat(501) },
        { action: "set_k" as const, k: 2.5 },
        { action: "set_k" as const },
      ].map((input) => controlCampaign(deps, id, input, actor).catch((e: unknown) => e)),
    );
    expect(direct.map((e) => [(e as AppError).code, (e as AppError).message])).toEqual([
      ["validation_failed", "reason: must not contain control characters (U+0000)"],
      ["validation_failed", "reason: must not contain control characters (U+0007)"],
      ["validation_failed", "reason: at most 500 characters, not 501"],
      ["validation_failed", "k: must be an integer from 1 to 1000"],
      ["validation_failed", "k: must be an integer from 1 to 1000"],
    ]);
    expect(calls).toEqual([]);
    expect(await auditOf(id)).toEqual([]);
    expect(await stateOf(id)).toEqual({ state: "running", phase: "training", round: 1 });
    // A reason with line breaks is fine.
    expect((await control(id, "stop", { reason: "line one\nline two" })).status).toBe(200);
  });

  it("puts the row back when a stop does not reach the workflow, and records that it failed", async () => {
    const id = await campaignIn("paused");
    behaviour.stop = async () => {
      throw new Error("14 UNAVAILABLE: connection refused");
    };
    const unreachable = await control(id, "stop", { reason: "r" });
    expect(unreachable.status).toBe(503);
    expect(unreachable.json.error.message).toMatch(/stop failed: 14 UNAVAILABLE/);
    expect((await stateOf(id)).state).toBe("paused");
    expect((await auditOf(id)).map((a) => [a.action, a.details])).toEqual([
      ["campaign.stop", { reason: "r", k: null, state: "paused" }],
      ["campaign.stop_failed", { error: "14 UNAVAILABLE: connection refused" }],
    ]);
    // The workflow refuses it (it is finishing on its own): 409 with its reason, the row put back.
    behaviour.stop = async () => {
      throw conflict("campaign is finishing (round_limit)");
    };
    const refused = await control(id, "stop");
    expect([refused.status, refused.json.error.message]).toEqual([409, "campaign is finishing (round_limit)"]);
    expect((await stateOf(id)).state).toBe("paused");
    // The workflow finished meanwhile and recorded it: the row keeps its final state, the answer names it.
    behaviour.stop = async () => {
      await store.setCampaignStatus({ campaignId: String(id), status: "completed", reason: "round_limit" });
      throw notFound("workflow", `campaign-${id}`);
    };
    const late = await control(id, "stop");
    expect([late.status, late.json.error.message]).toEqual([409, `campaign ${id} is completed`]);
    expect(await stateOf(id)).toEqual({ state: "completed", phase: "completed", round: 1 });
  });

  it("answers 409, not 404, when the campaign's workflow has closed", async () => {
    const id = await campaignIn("running");
    behaviour.pause = async (wf) => {
      throw notFound("workflow", wf);
    };
    const res = await control(id, "pause");
    expect([res.status, res.json.error.message]).toEqual([409, `campaign ${id}: its workflow campaign-${id} is no longer running (workflow campaign-${id} not found)`]);
  });

  it("audits pause, resume and K once the workflow took them", async () => {
    const id = await campaignIn("running");
    expect((await control(id, "pause")).status).toBe(200);
    expect((await control(id, "resume")).status).toBe(200);
    const k = await patchK(id, 5);
    expect([k.status, k.json.campaign.k]).toEqual([200, 5]);
    expect((await auditOf(id)).map((a) => a.action)).toEqual(["campaign.pause", "campaign.resume", "campaign.set_k"]);
    expect(calls).toEqual([`pause campaign-${id}`, `resume campaign-${id}`, `setK campaign-${id}`]);
  });
});

describe("the campaign row's guard", () => {
  const FINAL = ["stopped", "completed", "failed"] as const;

  it("never moves a row out of a final state, whatever write arrives after it", async () => {
    for (const final of FINAL) {
      const id = await campaignIn(final, final === "failed" ? "training" : final);
      const before = await getCampaign(api.db.pool, id);
      const cid = String(id);
      await store.setCampaignStatus({ campaignId: cid, status: "running" });
      await store.setCampaignStatus({ campaignId: cid, status: "paused" });
      for (const other of FINAL) await store.setCampaignStatus({ campaignId: cid, status: other, reason: "late" });
      await store.recordCampaignPhase({ campaignId: cid, phase: "training", round: 4 });
      await setCampaignState(api.db.pool, id, { state: "stopping" });
      const after = await getCampaign(api.db.pool, id);
      expect({ state: after.state, phase: after.phase, round: after.round, updated_at: after.updated_at }).toEqual({
        state: final,
        phase: before.phase,
        round: 1,
        updated_at: before.updated_at,
      });
      expect(await auditOf(id)).toEqual([]);
    }
  });

  it("lets a stopping row only finish; the final state brings its phase", async () => {
    const id = await campaignIn("stopping", "seeding");
    const cid = String(id);
    await store.setCampaignStatus({ campaignId: cid, status: "running" });
    await store.setCampaignStatus({ campaignId: cid, status: "paused" });
    expect((await stateOf(id)).state).toBe("stopping");
    await store.recordCampaignPhase({ campaignId: cid, phase: "augmenting", round: 1 });
    expect(await stateOf(id)).toEqual({ state: "stopping", phase: "augmenting", round: 1 });
    await store.setCampaignStatus({ campaignId: cid, status: "stopped", reason: "stopped" });
    expect(await stateOf(id)).toEqual({ state: "stopped", phase: "stopped", round: 1 });
    expect((await auditOf(id)).map((a) => a.details)).toEqual([{ from: "stopping", to: "stopped", reason: "stopped" }]);
  });

  it("ends stopped whatever the order in which concurrent writes land", async () => {
    for (let i = 0; i < 5; i++) {
      const id = await campaignIn("running", "seeding");
      const cid = String(id);
      const writes: Array<() => Promise<void>> = [];
      for (let j = 0; j < 6; j++) {
        writes.push(() => store.setCampaignStatus({ campaignId: cid, status: j % 2 ? "paused" : "running" }));
        writes.push(() => store.recordCampaignPhase({ campaignId: cid, phase: "training", round: 1 }));
      }
      writes.splice(3 + i, 0, () => store.setCampaignStatus({ campaignId: cid, status: "stopped", reason: "stopped" }));
      await Promise.all(writes.map((w) => w()));
      expect(await stateOf(id)).toEqual({ state: "stopped", phase: "stopped", round: 1 });
      // Exactly one transition into the final state was recorded.
      expect((await auditOf(id)).filter((a) => a.details.to === "stopped")).toHaveLength(1);
    }
  });
});

describe("starting and approving", () => {
  it("commits the row before the workflow starts, and keeps a state the workflow recorded first", async () => {
    let seenByStart: unknown = null;
    behaviour.start = async (campaignId) => {
      const c = await getCampaign(api.db.pool, Number(campaignId)); // another connection: committed
      seenByStart = [c.state, c.workflow_id];
      // The workflow's first activities may run before start() returns; here it fails at once.
      await store.setCampaignStatus({ campaignId, status: "failed", reason: "no seed images" });
      return { workflowId: `campaign-${campaignId}` };
    };
    const actor = api.users.lead!.id;
    const started = await startCampaign({ pool: api.db.pool, workflows: gateway }, { projectId, name: "started", config: {} }, actor);
    expect(seenByStart).toEqual(["created", null]);
    expect([started.state, started.workflow_id]).toEqual(["failed", `campaign-${started.id}`]);
    behaviour.start = undefined;
    const normal = await startCampaign({ pool: api.db.pool, workflows: gateway }, { projectId, name: "normal", config: {} }, actor);
    expect(normal.state).toBe("running");
    expect((await auditOf(normal.id)).map((a) => a.action)).toEqual(["campaign.start"]);
    // A start Temporal refuses leaves no row behind.
    behaviour.start = async () => {
      throw new Error("14 UNAVAILABLE");
    };
    const count = async () => (await api.db.pool.query("SELECT count(*)::int AS n FROM campaigns")).rows[0].n as number;
    const before = await count();
    const err = await startCampaign({ pool: api.db.pool, workflows: gateway }, { projectId, name: "refused", config: {} }, actor).catch((e: unknown) => e);
    expect((err as AppError).code).toBe("workflow_unavailable");
    expect(await count()).toBe(before);
  });

  it("audits an approval before the workflow's Update, and a refused one as failed", async () => {
    const id = await campaignIn("running", "awaiting_approval");
    const model = await recordModel(api.db.pool, { campaignId: id, round: 0, uri: "blob://runs/a/round-0/model/", metrics: {} });
    let auditedFirst: string[] = [];
    behaviour.approve = async () => {
      auditedFirst = (await auditOf(id)).map((a) => a.action);
      return { round: 0, modelId: String(model.id), approved: true };
    };
    const deployed: number[] = [];
    const deploy = async (modelId: number) => {
      deployed.push(modelId);
      return { modelId };
    };
    const deps = { pool: api.db.pool, workflows: gateway };
    const approved = await approveCampaignRound(deps, id, 0, { id: api.users.lead!.id }, deploy);
    expect(approved.via).toBe("workflow");
    expect(auditedFirst).toEqual(["campaign.approve"]);
    expect(deployed).toEqual([model.id]);

    // No model recorded for the round: refused before anything is written or asked.
    calls.length = 0;
    const none = await approveCampaignRound(deps, id, 1, { id: null }, deploy).catch((e: unknown) => e);
    expect([(none as AppError).code, (none as AppError).message]).toEqual(["conflict", `round 1 of campaign ${id} has no model yet`]);
    expect(calls).toEqual([]);

    behaviour.approve = async () => {
      throw conflict("the model of round 0 is already approved");
    };
    const again = await approveCampaignRound(deps, id, 0, { id: null }, deploy).catch((e: unknown) => e);
    expect((again as AppError).message).toBe("the model of round 0 is already approved");
    expect((await auditOf(id)).map((a) => [a.action, a.details])).toEqual([
      ["campaign.approve", { round: 0, model_id: model.id, via: "workflow", state: "running" }],
      ["campaign.approve", { round: 0, model_id: model.id, via: "workflow", state: "running" }],
      ["campaign.approve_failed", { round: 0, model_id: model.id, error: "the model of round 0 is already approved" }],
    ]);
    expect(deployed).toEqual([model.id]);
  });
});
