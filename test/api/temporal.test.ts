// The API against real parts end to end: the Temporal dev server (the `temporal` CLI), the
// TypeScript worker with its real activities over this test's database, and PostgreSQL. A
// campaign started through the API sends seed tasks to the two demo doctors by e-mail
// (outbox); each doctor logs in with the e-mailed link and submits through the API; the task
// workflows accept the submissions and the campaign moves on to training, where it waits
// (no Python worker in this test), and is paused, resumed and stopped through the API.
import { DefaultLogger, Runtime } from "@temporalio/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestApi } from "../helpers/api.js";
import { startTemporalTestApi, type TemporalTestApi } from "../helpers/temporalApi.js";
import { makeImagePng, makeMaskPng } from "../helpers/images.js";
import { until } from "../helpers/poll.js";

Runtime.install({ logger: new DefaultLogger("WARN") });

const LINK_SECRET = "test-link-secret";

describe("API with Temporal, end to end", () => {
  let stack: TemporalTestApi;
  let api: TestApi;

  beforeAll(async () => {
    stack = await startTemporalTestApi(LINK_SECRET);
    api = stack.api;
  });
  afterAll(async () => {
    await stack?.close();
  });

  it("runs seed tasks from campaign start to accepted submissions, and steers the campaign", async () => {
    const lead = api.tokens.lab_lead;
    const project = (await api.call("POST", "/api/projects", { token: lead, json: { name: "e2e" } })).json;
    const W = 48;
    for (const [name, role] of [["s1", "seed"], ["s2", "seed"], ["p1", "pool"], ["t1", "test"]] as const) {
      const form = new FormData();
      form.set("image", new Blob([new Uint8Array(await makeImagePng(W, W))]), `${name}.png`);
      form.set("mask", new Blob([new Uint8Array(await makeMaskPng(W, W, (x) => x < 8))]), `${name}_mask.png`);
      form.set("name", name);
      form.set("role", role);
      expect((await api.call("POST", `/api/projects/${project.id}/images`, { token: lead, body: form })).status).toBe(201);
    }
    const started = await api.call("POST", "/api/campaigns", {
      token: lead,
      json: { project_id: project.id, name: "e2e", config: {
          k: 1,
          maxRounds: 2,
          train: { epochs: 1 },
          augmentation: { seed: 3, steps: [{ op: "flip", modes: ["none", "h"] }, { op: "random_crop", size: [32, 32], count: 2 }] },
        },
      },
    });
    expect(started.status, JSON.stringify(started.json)).toBe(201);
    const campaignId = started.json.id;
    expect(started.json.workflow_id).toBe(`campaign-${campaignId}`);

    // Two seed tasks, assigned to the demo doctors, each announced by an e-mail with a signed link.
    const tasks = await until("two open seed tasks", async () => {
      const list = (await api.call("GET", `/api/tasks?campaign_id=${campaignId}&state=open`, { token: lead })).json as Array<{
        id: number;
        kind: string;
        assignee_id: number;
      }>;
      return list.length === 2 ? list : null;
    });
    const tokenOf = (userId: number) => (userId === api.users.doctor1!.id ? api.tokens.doctor : api.doctor2Token);
    const emailOf = (userId: number) => (userId === api.users.doctor1!.id ? "doctor1@medloop.local" : "doctor2@medloop.local");
    const submissions: Array<{ taskId: number; token: string; body: Record<string, unknown> }> = [];
    for (const task of tasks) {
      expect(task.kind).toBe("annotate");
      const email = emailOf(task.assignee_id);
      const mail = await until(`mail about task ${task.id}`, async () => {
        const list = (await api.call("GET", "/api/outbox", { token: tokenOf(task.assignee_id) })).json as Array<{
          to: string;
          meta: { link?: string; taskId?: string };
        }>;
        // A doctor is shown only the mail addressed to them.
        expect(list.every((m) => m.to.includes(email))).toBe(true);
        return list.find((m) => m.meta.taskId === String(task.id) && m.meta.link);
      });
      const viaLink = await api.call("POST", "/api/auth/task-link", { json: { link: mail.meta.link } });
      expect(viaLink.status, JSON.stringify(viaLink.json)).toBe(200);
      expect(viaLink.json).toMatchObject({ task_id: task.id, user: { email } });
      const forged = await api.call("POST", "/api/auth/task-link", { json: { link: `${mail.meta.link}0` } });
      expect(forged.status).toBe(401);
      // Single-use, and the lab lead sees that the mail went out but not its link.
      const again = await api.call("POST", "/api/auth/task-link", { json: { link: mail.meta.link } });
      expect(again.json.error?.details).toMatchObject({ reason: "used" });
      const leadView = (await api.call("GET", "/api/outbox", { token: lead })).json as Array<{ text: string; meta: { link?: string; taskId?: string } }>;
      expect(leadView.some((m) => m.meta.taskId === String(task.id))).toBe(true);
      expect(leadView.filter((m) => m.meta.link || m.text.includes("sig="))).toEqual([]);
      const token = viaLink.json.token as string;
      const detail = await api.call("GET", `/api/tasks/${task.id}`, { token });
      expect(detail.status).toBe(200);
      const ended = new Date();
      submissions.push({
        taskId: task.id,
        token,
        body: {
          submission_id: `e2e-${task.id}`,
          parent_version_id: null,
          mask_png_base64: (await makeMaskPng(W, W, (x) => x < 9)).toString("base64"),
          active_ms: 4000,
          started_at: new Date(ended.getTime() - 5000).toISOString(),
          ended_at: ended.toISOString(),
          edits: 3,
        },
      });
    }
    const status = await api.call("GET", `/api/campaigns/${campaignId}/status`, { token: api.tokens.auditor });
    expect(status.status, JSON.stringify(status.json)).toBe(200);
    expect(status.json).toMatchObject({ phase: "seeding", round: 0 });
    expect(status.json.openTasks).toHaveLength(2);

    for (const s of submissions) {
      const res = await api.call("POST", `/api/tasks/${s.taskId}/submissions`, { token: s.token, json: s.body });
      expect(res.status, JSON.stringify(res.json)).toBe(201);
      expect(res.json.workflow_notified).toBe(true);
      expect(res.json.version.pixels_changed).toBe(9 * W);
      // A retry (same submission id) is answered from the stored version and deduplicated by the workflow.
      const again = await api.call("POST", `/api/tasks/${s.taskId}/submissions`, { token: s.token, json: s.body });
      expect(again.status, JSON.stringify(again.json)).toBe(201);
      expect(again.json).toMatchObject({ duplicate: true, version: { id: res.json.version.id } });
    }
    // The task workflows complete the tasks; the campaign goes on to training.
    for (const s of submissions) {
      await until(`task ${s.taskId} done`, async () => {
        const t = (await api.call("GET", `/api/tasks/${s.taskId}`, { token: s.token })).json;
        return t.task.state === "done" && t.task.result_version_id !== null;
      });
    }
    await until("training phase", async () => {
      const st = (await api.call("GET", `/api/campaigns/${campaignId}/status`, { token: lead })).json;
      return st.phase === "training";
    });

    const paused = await api.call("POST", `/api/campaigns/${campaignId}/pause`, { token: lead });
    expect(paused.status, JSON.stringify(paused.json)).toBe(200);
    expect(paused.json.result.paused).toBe(true);
    const resumed = await api.call("POST", `/api/campaigns/${campaignId}/resume`, { token: lead });
    expect(resumed.json.result.paused).toBe(false);
    const k = await api.call("PATCH", `/api/campaigns/${campaignId}`, { token: lead, json: { k: 2 } });
    expect(k.status, JSON.stringify(k.json)).toBe(200);
    expect(k.json.campaign.k).toBe(2);
    const stopped = await api.call("POST", `/api/campaigns/${campaignId}/stop`, { token: lead, json: { reason: "end of test" } });
    expect(stopped.status, JSON.stringify(stopped.json)).toBe(200);
    await until("campaign stopped", async () => {
      const c = (await api.call("GET", `/api/campaigns/${campaignId}`, { token: lead })).json;
      return c.state === "stopped";
    });
    const audit = (await api.call("GET", `/api/audit?entity=campaign&entity_id=${campaignId}`, { token: api.tokens.auditor })).json;
    expect(audit.map((a: { action: string }) => a.action)).toEqual(
      expect.arrayContaining(["campaign.start", "campaign.pause", "campaign.resume", "campaign.set_k", "campaign.stop"]),
    );
  });
});
