// The whole system with real parts: the Temporal dev server and the workers started by
// the stack code (stack/stack.ts) on free ports in a temporary data folder, the
// machine's PostgreSQL server (a throw-away database), the Python gpu worker, and an
// SMTP server on loopback. A small campaign on tiny generated images is driven through
// the HTTP API as a lab lead and two doctors would; half-way the stack is stopped and
// started again on the same data folder, and the campaign carries on.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "../../services/config.js";
import { DEMO_PASSWORD } from "../../services/users.js";
import { MedloopClient, type ApiTask } from "../../services/simulate/client.js";
import { answerOpenTasks, calibrate, decodeGrey, encodeGrey, type GreyMask } from "../../services/simulate/doctors.js";
import type { SimulatedAnswer } from "../../services/simulate/report.js";
import { freePort } from "../../stack/ports.js";
import { startStack, type Stack } from "../../stack/stack.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { startMailCatcher, type MailCatcher } from "./smtp.js";

const SIZE = 64;
const LOG_DIR = path.join(repoRoot, ".test-data");
const ROLES = { seed: 6, pool: 4, test: 2 } as const;

/** A fundus-like tiny image: dark disc with a few bright-ish "vessels"; the mask marks the vessels. */
async function tinyImage(seed: number): Promise<{ image: Buffer; mask: Buffer }> {
  const rgb = Buffer.alloc(SIZE * SIZE * 3);
  const mask = Buffer.alloc(SIZE * SIZE);
  let state = seed * 7919 + 17;
  const rand = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const lines = Array.from({ length: 4 }, () => ({ a: rand() * Math.PI, c: SIZE * (0.2 + 0.6 * rand()) }));
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const i = y * SIZE + x;
      const vessel = lines.some(({ a, c }) => Math.abs((x - c) * Math.sin(a) - (y - c) * Math.cos(a)) < 1.5);
      mask[i] = vessel ? 255 : 0;
      const noise = Math.floor(rand() * 20);
      rgb[i * 3] = vessel ? 60 + noise : 170 + noise;
      rgb[i * 3 + 1] = vessel ? 20 + noise : 80 + noise;
      rgb[i * 3 + 2] = vessel ? 10 + noise : 40 + noise;
    }
  }
  const raw = (data: Buffer, channels: 1 | 3) => sharp(data, { raw: { width: SIZE, height: SIZE, channels } }).png().toBuffer();
  return { image: await raw(rgb, 3), mask: await raw(mask, 1) };
}

async function waitUntil<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe("the embedded stack runs a campaign end to end", () => {
  let db: TestDatabase;
  let smtp: MailCatcher;
  let dataDir: string;
  let stack: Stack | null = null;
  let lead: MedloopClient;
  let doctors: MedloopClient[];
  let projectId: number;
  let campaignId: number;
  const truth = new Map<string, GreyMask>();
  const answers: SimulatedAnswer[] = [];
  const logLines: string[] = [];
  const ports = { api: 0, temporal: 0 };

  async function start(): Promise<Stack> {
    stack = await startStack({
      dataDir,
      port: ports.api,
      temporalPort: ports.temporal,
      databaseUrl: db.url,
      demoProject: false,
      env: { MEDLOOP_SMTP_URL: smtp.url, MEDLOOP_PUBLIC_URL: `http://127.0.0.1:${ports.api}` },
      log: (line) => logLines.push(line),
    });
    lead = await new MedloopClient(stack.apiUrl).login("lead@medloop.local", DEMO_PASSWORD);
    doctors = await Promise.all(
      ["doctor1@medloop.local", "doctor2@medloop.local"].map((email) => new MedloopClient(stack!.apiUrl).login(email, DEMO_PASSWORD)),
    );
    return stack;
  }

  const campaignTasks = () => lead.tasks({ campaign_id: campaignId });
  const doctorsAnswer = async () => {
    const calibration = await calibrate(async (name) => truth.get(name)!, [...truth.keys()]);
    answers.push(...(await answerOpenTasks({ doctors, campaignId, truth: async (name) => truth.get(name)!, calibration })));
  };

  beforeAll(async () => {
    db = await createTestDatabase();
    smtp = await startMailCatcher();
    dataDir = await mkdtemp(path.join(os.tmpdir(), "medloop-stack-"));
    ports.api = await freePort();
    ports.temporal = await freePort();
    await start();
  });

  afterAll(async () => {
    await stack?.stop();
    // The children's output, for a look after a failure (.test-data/ is git-ignored).
    await mkdir(LOG_DIR, { recursive: true });
    await writeFile(path.join(LOG_DIR, "integration-stack.log"), `${logLines.join("\n")}\n`);
    await smtp?.close();
    await db?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it("imports tiny images through the upload API", async () => {
    projectId = (await lead.createProject("tiny vessels")).id;
    let n = 0;
    for (const [role, count] of Object.entries(ROLES)) {
      for (let i = 0; i < count; i++, n++) {
        const name = `${role}_${i}`;
        const { image, mask } = await tinyImage(n + 1);
        truth.set(name, await decodeGrey(mask));
        // Only the test images carry their reference mask; seeds and pool are drawn by the doctors.
        await lead.uploadImage(projectId, { name, role, image, ...(role === "test" ? { mask } : {}) });
      }
    }
    const images = await lead.listImages(projectId);
    const count = (role: string) => images.filter((i) => i.role === role).length;
    expect({ seed: count("seed"), pool: count("pool"), test: count("test") }).toEqual(ROLES);
    expect(images.filter((i) => i.has_mask).map((i) => i.name).sort()).toEqual(["test_0", "test_1"]);
  });

  it("starts a campaign whose seed tasks are e-mailed to the doctors", async () => {
    const campaign = await lead.startCampaign(projectId, "tiny campaign", {
      k: 2,
      maxRounds: 2,
      targetF1: 0.999,
      strategy: "uncertainty",
      augmentation: { seed: 3, steps: [{ op: "flip", modes: ["none", "h"] }] },
      // A stopped worker's activity is retried after at most this long without a heartbeat.
      heartbeatTimeoutMs: 20_000,
      train: { epochs: 2, patch_size: 32, batch_size: 4, patches_per_epoch: 16, channels: 4, depth: 2, infer_patch: 64, threads: 1, progress: false },
    });
    campaignId = campaign.id;
    const seeds = await waitUntil("6 open seed tasks", async () => {
      const tasks = await campaignTasks();
      const open = tasks.filter((t) => t.kind === "annotate" && t.state === "open");
      return open.length === ROLES.seed ? open : null;
    }, 60_000);
    expect(new Set(seeds.map((t) => t.image_name))).toEqual(new Set(Array.from({ length: 6 }, (_, i) => `seed_${i}`)));
    const mails = await waitUntil("6 task e-mails", async () => (smtp.mails.length >= ROLES.seed ? smtp.mails : null), 30_000);
    const doctorEmails = new Set(["doctor1@medloop.local", "doctor2@medloop.local"]);
    for (const mail of mails) {
      expect(mail.to.every((to) => doctorEmails.has(to))).toBe(true);
      // The mail carries a link back to this stack's API.
      expect(mail.raw).toContain(`127.0.0.1:${ports.api}`);
    }
  });

  it("stores the doctors' submissions and does not store a retried one twice", async () => {
    await doctorsAnswer();
    expect(answers.filter((a) => a.kind === "annotate")).toHaveLength(ROLES.seed);
    const tasks = await campaignTasks();
    const seedTasks = tasks.filter((t) => t.kind === "annotate");
    expect(seedTasks.every((t) => t.result_version_id !== null)).toBe(true);
    // A retried request with the same submission id answers the stored version.
    const first = seedTasks[0]!;
    const owner = doctors.find((d) => d.userId === first.assignee_id)!;
    const retry = await owner.submit(first.id, {
      submission_id: `simulated-task-${first.id}`,
      parent_version_id: null,
      mask_png_base64: (await encodeGrey(truth.get(first.image_name)!)).toString("base64"),
      active_ms: 1,
      started_at: new Date().toISOString(),
      ended_at: new Date().toISOString(),
      edits: 1,
      simulated: true,
    });
    expect(retry.duplicate).toBe(true);
    expect(retry.version.id).toBe(first.result_version_id);
  });

  it("continues the campaign after the whole stack is stopped and started again", async () => {
    // Stop while the gpu worker trains round 0's model, then restart on the same data folder.
    await waitUntil("round 0 training", async () => (await lead.campaignStatus(campaignId)).phase === "training", 60_000);
    await stack!.stop();
    stack = null;
    await start();
    const corrections = await waitUntil("2 open correction tasks", async () => {
      const open = (await campaignTasks()).filter((t: ApiTask) => t.kind === "correct" && t.state === "open");
      return open.length === 2 ? open : null;
    }, 150_000);
    expect(corrections.every((t) => t.start_version_id !== null && t.round === 0)).toBe(true);
    await doctorsAnswer();
    expect(answers.filter((a) => a.kind === "correct")).toHaveLength(2);
  });

  it("records the metrics of every round and completes", async () => {
    const done = await waitUntil("the campaign to complete", async () => {
      const c = await lead.getCampaign(campaignId);
      if (c.state === "failed") throw new Error(`campaign failed:\n${logLines.slice(-30).join("\n")}`);
      return c.state === "completed" ? c : null;
    }, 150_000);
    expect(done.round).toBe(1);
    expect(done.phase).toBe("completed"); // the workflow mirrors its phase into the campaign's row
    const rounds = await lead.rounds(campaignId);
    expect(rounds.map((r) => r.round)).toEqual([0, 1]);
    for (const r of rounds) {
      expect(r.model_id).not.toBeNull();
      expect(r.metrics.f1).toEqual(expect.any(Number));
      expect(r.metrics.f1 as number).toBeGreaterThanOrEqual(0);
      expect(r.metrics.f1 as number).toBeLessThanOrEqual(1);
    }
    expect(rounds[0]!.selected_image_ids).toHaveLength(2);
    // Every e-mail went to a doctor: 6 seed tasks and 2 corrections at least.
    expect(smtp.mails.length).toBeGreaterThanOrEqual(8);
  });

  it("runs a continuous campaign: a doctor pulls, corrects, the model version rises and the next pull is predicted by the newer model", async () => {
    const campaign = await lead.startCampaign(projectId, "continuous", {
      mode: "continuous",
      targetF1: 0.999,
      strategy: "diverse",
      augmentation: { seed: 3, steps: [{ op: "flip", modes: ["none", "h"] }] },
      heartbeatTimeoutMs: 20_000,
      train: { epochs: 1, patch_size: 32, batch_size: 4, patches_per_epoch: 16, channels: 4, depth: 2, infer_patch: 64, threads: 1, progress: false },
    });
    campaignId = campaign.id;
    const [ada, ben] = doctors as [MedloopClient, MedloopClient];
    await waitUntil("6 open seed tasks", async () => (await campaignTasks()).filter((t) => t.state === "open").length === ROLES.seed, 60_000);
    await doctorsAnswer();
    const status = () => lead.campaignStatus(campaignId) as Promise<{ continuous?: { modelVersion: number | null } }>;
    await waitUntil("model v0", async () => (await status()).continuous?.modelVersion === 0, 150_000);

    const first = await ada.pull(campaignId);
    expect(first).toMatchObject({ model_version: 0, existing: false });
    expect(first.task).toMatchObject({ kind: "correct", assignee_id: ada.userId, state: "open" });
    expect(first.task.start_version_id).not.toBeNull();
    const other = await ben.pull(campaignId);
    expect(other.image_id).not.toBe(first.image_id); // never the same image for two doctors
    // A lab lead does not pull.
    await expect(lead.pull(campaignId)).rejects.toThrow(/403|doctor/);

    await doctorsAnswer(); // both pulled tasks corrected
    await waitUntil("model v1", async () => ((await status()).continuous?.modelVersion ?? 0) >= 1, 150_000);
    const next = await ada.pull(campaignId);
    expect(next.model_version).toBeGreaterThanOrEqual(1);
    expect([first.image_id, other.image_id]).not.toContain(next.image_id);

    await lead.control(campaignId, "stop", { reason: "enough" });
    const stopped = await waitUntil("the campaign to stop", async () => {
      const c = await lead.getCampaign(campaignId);
      return c.state === "stopped" ? c : null;
    }, 60_000);
    expect(stopped.state).toBe("stopped");
    const open = await waitUntil("the pulled task cancelled", async () => {
      const t = (await campaignTasks()).find((x) => x.id === next.task.id);
      return t?.state === "cancelled" ? t : null;
    }, 30_000);
    expect(open.state).toBe("cancelled");
  });
});
