// Issue 10, parts 1 and 2 and the `?access_token=` rule, against the real PostgreSQL: the
// outbox shows each user only their own mail (lab leads and admins: that a mail was sent, never
// its link); an e-mailed task link opens one session, only while its task is open and assigned to
// that doctor, and that session reaches only that task; a token in the URL is taken only where an
// <img> needs it. The links are issued by the real notify activity (worker/main.ts
// buildActivities over this test's database), run in a mock activity context.
import { MockActivityEnvironment } from "@temporalio/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TaskEmailInput } from "../../activities/notify.js";
import { recordPrediction } from "../../services/annotations.js";
import { importImage, type Image } from "../../services/images.js";
import { Mailer, signTaskLink, verifyTaskLink } from "../../services/mail.js";
import { recordModel } from "../../services/models.js";
import { createProject } from "../../services/projects.js";
import { assignTask, cancelTask, createTask, type Task } from "../../services/tasks.js";
import { buildActivities } from "../../worker/main.js";
import { startTestApi, type TestApi } from "../helpers/api.js";
import { makeImagePng, makeMaskPng } from "../helpers/images.js";

const SECRET = "task-links-test-secret";
const PUBLIC_URL = "https://medloop.example/";
const W = 40;
const H = 32;
const DAY = 86_400;

type Doctor = "doctor1" | "doctor2";

/** The text of a raw .eml with quoted-printable soft breaks undone, so a link reads whole. */
function unfoldEml(raw: Buffer): string {
  return raw.toString("utf8").replace(/=\r?\n/g, "").replace(/=3D/g, "=");
}

describe("outbox, task links and access_token", () => {
  let api: TestApi;
  let mailer: Mailer;
  let activities: ReturnType<typeof buildActivities>;
  let projectId: number;
  let image: Image;
  let predictionId: number;
  let activitySeq = 0;

  beforeAll(async () => {
    api = await startTestApi({ linkSecret: SECRET });
    mailer = new Mailer({ smtpUrl: null, outboxDir: api.deps.config.outboxDir });
    activities = buildActivities({ pool: api.db.pool, blobs: api.deps.blobs, mailer, linkSecret: SECRET, baseUrl: PUBLIC_URL });
    projectId = (await createProject(api.db.pool, { name: "links" }, null)).id;
    image = await importImage(api.deps, { projectId, name: "img0", data: await makeImagePng(W, H), role: "pool", actorId: null });
    const model = await recordModel(api.db.pool, { campaignId: null, round: null, uri: "blob://runs/links/model/" });
    const maskUri = await api.deps.blobs.put("runs/links/pred/img0.png", await makeMaskPng(W, H, (x) => x < W / 2));
    predictionId = (await recordPrediction(api.deps, { campaignId: null, round: null, modelId: model.id, imageId: image.id, maskUri })).id;
  });
  afterAll(async () => {
    mailer?.close();
    await api?.close();
  });

  /** A correction task (it has a start mask) assigned to a doctor. */
  async function newTask(doctor: Doctor): Promise<Task> {
    const task = await createTask(api.db.pool, { projectId, imageId: image.id, kind: "correct", parentVersionId: predictionId });
    return assignTask(api.db.pool, { taskId: task.id, assigneeId: api.users[doctor]!.id });
  }

  /** The notify activity's e-mail about a task, as a task workflow's activity `activityId` sends it. */
  async function sendMail(
    task: Task,
    doctor: Doctor,
    template: TaskEmailInput["template"] = "assigned",
    activityId = `a${++activitySeq}`,
    acts = activities,
  ): Promise<{ messageId: string; link: string | null }> {
    const u = api.users[doctor]!;
    const env = new MockActivityEnvironment({ activityId, workflowExecution: { workflowId: `task-wf-${task.id}`, runId: "run-1" } });
    const input: TaskEmailInput = {
      template,
      taskId: String(task.id),
      to: { userId: String(u.id), email: u.email, name: u.name },
      taskKind: "correct",
      imageId: String(image.id),
      round: 0,
      dueAt: null,
    };
    return env.run(acts.sendTaskEmail, input);
  }

  async function linkFor(task: Task, doctor: Doctor): Promise<string> {
    const { link } = await sendMail(task, doctor);
    expect(link).toMatch(/^https:\/\/medloop\.example\/tasks\/\d+\?/);
    return link!;
  }

  const exchange = (link: string) => api.call("POST", "/api/auth/task-link", { json: { link } });

  function submission(): Record<string, unknown> {
    const ended = new Date();
    return {
      submission_id: `sub-${Math.random().toString(36).slice(2)}`,
      parent_version_id: predictionId,
      mask_png_base64: "",
      active_ms: 30_000,
      started_at: new Date(ended.getTime() - 60_000).toISOString(),
      ended_at: ended.toISOString(),
      edits: 2,
    };
  }
  async function submissionWithMask(): Promise<Record<string, unknown>> {
    return { ...submission(), mask_png_base64: (await makeMaskPng(W, H, (x) => x < W / 3)).toString("base64") };
  }

  describe("outbox", () => {
    it("shows a doctor whose address is contained in another's none of the other's mail", async () => {
      const created = await api.call("POST", "/api/users", {
        token: api.tokens.admin,
        json: { email: "r1@medloop.local", name: "R. One", role: "doctor", password: "r1-Quiet-Harbour-93" },
      });
      expect(created.status, JSON.stringify(created.json)).toBe(201);
      const r1 = await api.call("POST", "/api/auth/login", { json: { email: "r1@medloop.local", password: "r1-Quiet-Harbour-93" } });
      expect(r1.status).toBe(200);
      const task = await newTask("doctor1");
      const { messageId, link } = await sendMail(task, "doctor1");
      const id = /^<([0-9a-f]+)@medloop>$/.exec(messageId)![1]!;

      // "doctor1@medloop.local" contains "r1@medloop.local": before, r1 saw this mail and its link.
      const listed = await api.call("GET", "/api/outbox", { token: r1.json.token });
      expect(listed.status).toBe(200);
      expect(listed.json.filter((m: { to: string }) => m.to !== "r1@medloop.local")).toEqual([]);
      expect(JSON.stringify(listed.json)).not.toContain(link!);
      expect((await api.call("GET", `/api/outbox/${id}`, { token: r1.json.token })).status).toBe(404);

      // Its recipient sees it whole, with the link.
      const own = await api.call("GET", "/api/outbox", { token: api.tokens.doctor });
      const mine = own.json.find((m: { id: string }) => m.id === id);
      expect(mine).toMatchObject({ to: "doctor1@medloop.local", meta: { link, taskId: String(task.id) } });
      expect(mine.text).toContain(link);
      expect((await api.call("GET", "/api/outbox", { token: api.doctor2Token })).json.map((m: { id: string }) => m.id)).not.toContain(id);
    });

    it("matches the recipient by the user id recorded with the mail, else by the normalised address", async () => {
      const d1 = api.users.doctor1!;
      const byAddress = await mailer.send({ to: "  Doctor1@MEDLOOP.local ", subject: "case and spaces", text: "t", idempotencyKey: "norm-1" });
      const byId = await mailer.send({ to: "old-address@medloop.local", toUserId: d1.id, subject: "recorded id", text: "t", idempotencyKey: "norm-2" });
      const hex = (m: { messageId: string }) => /^<([0-9a-f]+)@medloop>$/.exec(m.messageId)![1]!;
      const seen = async (token: string) => ((await api.call("GET", "/api/outbox", { token })).json as Array<{ id: string }>).map((m) => m.id);
      expect(await seen(api.tokens.doctor)).toEqual(expect.arrayContaining([hex(byAddress), hex(byId)]));
      const other = await seen(api.doctor2Token);
      expect(other).not.toContain(hex(byAddress));
      expect(other).not.toContain(hex(byId));
    });

    it("tells lab leads and admins that a mail was sent, never its usable link", async () => {
      const task = await newTask("doctor2");
      const { messageId, link } = await sendMail(task, "doctor2");
      const id = /^<([0-9a-f]+)@medloop>$/.exec(messageId)![1]!;
      const claims = verifyTaskLink(link!, SECRET)!;
      const sig = new URL(link!).searchParams.get("sig")!;
      for (const token of [api.tokens.lab_lead, api.tokens.admin]) {
        const listed = await api.call("GET", "/api/outbox", { token });
        const entry = listed.json.find((m: { id: string }) => m.id === id);
        // Recipient, subject, time and template are there …
        expect(entry).toMatchObject({ to: "doctor2@medloop.local", subject: `medloop: new correct task ${task.id}`, meta: { template: "assigned", taskId: String(task.id) } });
        expect(Date.parse(entry.sentAt)).not.toBeNaN();
        // … the link, its signature and its nonce are not, neither in the listing nor in the .eml.
        const text = JSON.stringify(entry);
        expect(text).not.toContain(sig);
        expect(text).not.toContain(String(claims.nonce));
        expect(entry.meta.link).toBeUndefined();
        const eml = await api.call("GET", `/api/outbox/${id}`, { token });
        expect(eml.status).toBe(200);
        expect(eml.headers.get("content-type")).toContain("message/rfc822");
        const raw = unfoldEml(eml.bytes);
        expect(raw).toContain(`Subject: medloop: new correct task ${task.id}`);
        expect(raw).not.toContain(sig);
        expect(raw).not.toContain(String(claims.nonce));
        expect(raw).toContain("link withheld");
      }
      // The recipient's .eml holds the link, and looking did not spend it.
      expect(unfoldEml((await api.call("GET", `/api/outbox/${id}`, { token: api.doctor2Token })).bytes)).toContain(sig);
      expect((await exchange(link!)).status).toBe(200);
    });
  });

  describe("task links", () => {
    it("open one session: a second exchange of the same link is refused, naming why", async () => {
      const task = await newTask("doctor1");
      const link = await linkFor(task, "doctor1");
      const first = await exchange(link);
      expect(first.status, JSON.stringify(first.json)).toBe(200);
      expect(first.json).toMatchObject({ task_id: task.id, user: { email: "doctor1@medloop.local" } });
      const second = await exchange(link);
      expect(second.status).toBe(401);
      expect(second.json.error.message).toMatch(/already used/);
      expect(second.json.error.details).toMatchObject({ reason: "used" });
      // Exchanged concurrently, a fresh link still opens exactly one session.
      const raced = await linkFor(await newTask("doctor1"), "doctor1");
      const answers = await Promise.all(Array.from({ length: 6 }, () => exchange(raced)));
      expect(answers.map((r) => r.status).sort()).toEqual([200, 401, 401, 401, 401, 401]);
      // Both are in the audit log, the refusal with its reason.
      const { rows } = await api.db.pool.query<{ action: string; actor_id: number; details: { reason?: string } }>(
        "SELECT action, actor_id, details FROM audit_log WHERE entity = 'task' AND entity_id = $1 AND action LIKE 'auth.task_link%' ORDER BY id",
        [String(task.id)],
      );
      expect(rows.map((r) => [r.action, r.actor_id, r.details.reason ?? null])).toEqual([
        ["auth.task_link", api.users.doctor1!.id, null],
        ["auth.task_link_refused", api.users.doctor1!.id, "used"],
      ]);
    });

    it("are refused once the task is submitted, cancelled or reassigned", async () => {
      const submitted = await newTask("doctor1");
      const l1 = await linkFor(submitted, "doctor1");
      const sub = await api.call("POST", `/api/tasks/${submitted.id}/submissions`, { token: api.tokens.doctor, json: await submissionWithMask() });
      expect(sub.status, JSON.stringify(sub.json)).toBe(201);
      const r1 = await exchange(l1);
      expect(r1.status).toBe(401);
      expect(r1.json.error.message).toMatch(new RegExp(`task ${submitted.id} is (done|submitted)`));

      const cancelled = await newTask("doctor1");
      const l2 = await linkFor(cancelled, "doctor1");
      await cancelTask(api.db.pool, { taskId: cancelled.id, reason: "campaign stopped" });
      const r2 = await exchange(l2);
      expect(r2.status).toBe(401);
      expect(r2.json.error.message).toMatch(new RegExp(`task ${cancelled.id} was cancelled`));

      const moved = await newTask("doctor1");
      const l3 = await linkFor(moved, "doctor1");
      await assignTask(api.db.pool, { taskId: moved.id, assigneeId: api.users.doctor2!.id });
      const r3 = await exchange(l3);
      expect(r3.status).toBe(401);
      expect(r3.json.error.details).toMatchObject({ reason: "reassigned" });
      // The new doctor's link works; the old doctor's stays dead.
      const l4 = await linkFor(moved, "doctor2");
      expect((await exchange(l4)).json).toMatchObject({ task_id: moved.id, user: { email: "doctor2@medloop.local" } });
      expect((await exchange(l3)).status).toBe(401);
    });

    it("are refused for a task that does not exist, and when expired or forged", async () => {
      const exp = Math.floor(Date.now() / 1000) + DAY;
      const doctorId = String(api.users.doctor1!.id);
      const missing = await exchange(signTaskLink(PUBLIC_URL, SECRET, { taskId: "999999", doctorId, exp, nonce: "no-such-nonce-0000000000000000000000000" }));
      expect(missing.status).toBe(401);
      expect(missing.json.error.message).toMatch(/task 999999 does not exist/);

      const task = await newTask("doctor1");
      const expired = await exchange(signTaskLink(PUBLIC_URL, SECRET, { taskId: String(task.id), doctorId, exp: 1_000_000, nonce: "n" }));
      expect(expired.status).toBe(401);
      expect(expired.json.error.details).toMatchObject({ reason: "expired" });

      const link = await linkFor(task, "doctor1");
      const forged = await exchange(link.replace(/sig=[^&]+/, "sig=AAAA"));
      expect(forged.status).toBe(401);
      expect(forged.json.error.details).toMatchObject({ reason: "invalid" });
      const otherDoctor = await exchange(link.replace(`doctor=${doctorId}`, `doctor=${api.users.doctor2!.id}`));
      expect(otherDoctor.status).toBe(401);
      expect((await exchange(link)).status).toBe(200); // the refusals did not spend it
    });

    it("die when the doctor is disabled, and stay dead when the doctor is enabled again", async () => {
      const task = await newTask("doctor2");
      const link = await linkFor(task, "doctor2");
      const doctorId = api.users.doctor2!.id;
      const patch = (active: boolean) => api.call("PATCH", `/api/users/${doctorId}`, { token: api.tokens.admin, json: { active } });
      expect((await patch(false)).status).toBe(200);
      expect((await patch(true)).status).toBe(200);
      const refused = await exchange(link);
      expect(refused.status).toBe(401);
      expect(refused.json.error.message).toMatch(/revoked \(sessions_revoked\)/);
    });

    it("die when a newer link for the task is sent (a reminder); a retried send keeps its link", async () => {
      const task = await newTask("doctor2");
      const assigned = await sendMail(task, "doctor2", "assigned", "remind-1");
      const retried = await sendMail(task, "doctor2", "assigned", "remind-1");
      expect(retried.link).toBe(assigned.link); // the same activity again: the same mail, the same link
      const reminder = await sendMail(task, "doctor2", "reminder", "remind-2");
      expect(reminder.link).not.toBe(assigned.link);
      const old = await exchange(assigned.link!);
      expect(old.status).toBe(401);
      expect(old.json.error.details).toMatchObject({ reason: "superseded" });
      expect((await exchange(reminder.link!)).status).toBe(200);
      // The mail telling a doctor that a task went to someone else carries no link at all.
      const away = await sendMail(task, "doctor2", "reassigned_away", "remind-3");
      expect(away.link).toBeNull();
    });

    it("live MEDLOOP_TASK_LINK_DAYS days (the activity's TTL), not a month", async () => {
      const ttl = api.deps.config.taskLinkTtlSeconds;
      expect(ttl).toBe(7 * DAY); // the default
      const twoDays = buildActivities({
        pool: api.db.pool,
        blobs: api.deps.blobs,
        mailer,
        linkSecret: SECRET,
        baseUrl: PUBLIC_URL,
        linkTtlSeconds: 2 * DAY,
      });
      const task = await newTask("doctor1");
      const before = Math.floor(Date.now() / 1000);
      const { link } = await sendMail(task, "doctor1", "assigned", "ttl-1", twoDays);
      const after = Math.ceil(Date.now() / 1000);
      const { exp } = verifyTaskLink(link!, SECRET)!;
      expect(exp).toBeGreaterThanOrEqual(before + 2 * DAY);
      expect(exp).toBeLessThanOrEqual(after + 2 * DAY);
    });

    it("open a session that reaches only the link's task", async () => {
      const task = await newTask("doctor1");
      const other = await newTask("doctor1");
      const res = await exchange(await linkFor(task, "doctor1"));
      expect(res.status).toBe(200);
      const scoped = res.json.token as string;
      // The task, its image and its start mask, and who is logged in.
      for (const p of [`/api/tasks/${task.id}`, `/api/tasks/${task.id}/image`, `/api/tasks/${task.id}/start-mask`, "/api/auth/me"]) {
        expect((await api.call("GET", p, { token: scoped })).status, p).toBe(200);
      }
      // Nothing else, not even the same doctor's other task or their inbox.
      for (const p of [`/api/tasks/${other.id}`, `/api/tasks/${other.id}/image`, "/api/tasks/mine", "/api/tasks", "/api/outbox", `/api/versions/${predictionId}/mask`]) {
        const r = await api.call("GET", p, { token: scoped });
        expect(r.status, p).toBe(403);
        expect(r.json.error.message, p).toMatch(new RegExp(`task ${task.id}`));
      }
      const elsewhere = await api.call("POST", `/api/tasks/${other.id}/submissions`, { token: scoped, json: await submissionWithMask() });
      expect(elsewhere.status).toBe(403);
      const viaQuery = await fetch(`${api.baseUrl}/api/tasks/${other.id}/image?access_token=${scoped}`);
      expect(viaQuery.status).toBe(403);
      // Its own task can be submitted.
      const own = await api.call("POST", `/api/tasks/${task.id}/submissions`, { token: scoped, json: await submissionWithMask() });
      expect(own.status, JSON.stringify(own.json)).toBe(201);
    });
  });

  describe("access_token in the URL", () => {
    it("is taken only on GET routes answering an image, and refused elsewhere with a 401 naming the Authorization header", async () => {
      const task = await newTask("doctor1");
      const doctor = api.tokens.doctor;
      const lead = api.tokens.lab_lead;
      const q = (t: string) => `access_token=${encodeURIComponent(t)}`;
      // Image bytes for <img> elements.
      for (const [p, t] of [
        [`/api/tasks/${task.id}/image?${q(doctor)}`, doctor],
        [`/api/images/${image.id}/thumbnail?${q(lead)}`, lead],
        [`/api/versions/${predictionId}/mask?${q(lead)}`, lead],
      ] as const) {
        const r = await fetch(`${api.baseUrl}${p}`);
        expect(r.status, `${p} ${t === lead ? "lead" : "doctor"}`).toBe(200);
        expect(r.headers.get("content-type")).toBe("image/png");
      }
      // Everything else: JSON, CSV, model files that are not images, even with a header beside it.
      for (const [p, t] of [
        [`/api/tasks/mine?${q(doctor)}`, doctor],
        [`/api/auth/me?${q(doctor)}`, doctor],
        [`/api/projects?${q(lead)}`, lead],
        [`/api/reports/savings.csv?${q(lead)}`, lead],
        [`/api/models/999999/file?name=model.onnx&${q(lead)}`, lead],
      ] as const) {
        const r = await api.call("GET", p);
        expect(r.status, p).toBe(401);
        expect(r.json.error.message, p).toMatch(/Authorization: Bearer/);
        expect((await api.call("GET", p, { token: t })).status, `${p} with a header too`).toBe(401);
      }
      // A model's image file is an image: past the token check (404: no such model).
      expect((await fetch(`${api.baseUrl}/api/models/999999/file?name=curves.png&${q(lead)}`)).status).toBe(404);
    });
  });
});
