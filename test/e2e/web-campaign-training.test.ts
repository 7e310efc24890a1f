// Campaigns that train, with the stack's Python gpu worker, in Chromium; seed tasks are answered
// through the HTTP API with CHASE_DB1's reference masks (flagged as simulated: no person drew them).
// - Continuous mode: the lab lead starts it from the form; a doctor presses "Next image" in the
//   inbox, corrects the opened task with the brush and submits; once the trainer has published
//   the next model version, "Next image" opens a task that starts from that version's prediction;
//   a task another doctor pulled before that version, opened only now, starts over from it.
// - Rounds: the live view shows the seeding, then the training phase with the running training
//   activity and the per-epoch preview of an unseen image.
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPool, type Pool } from "../../db/pool.js";
import { BlobStore } from "../../services/blobs.js";
import { importChase } from "../../services/imageImport.js";
import { createProject } from "../../services/projects.js";
import { CHASE_DIR, launchBrowser, login, shot, startUiStack, type UiStack } from "./helpers.js";

const FILE = "training";

async function text(page: Page, testid: string): Promise<string> {
  return (await page.locator(`[data-testid="${testid}"]`).textContent()) ?? "";
}

async function apiToken(baseUrl: string, user: { email: string; password: string }): Promise<string> {
  const res = await fetch(`${baseUrl}/api/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: user.email, password: user.password }),
  });
  return ((await res.json()) as { token: string }).token;
}

/** Submits every open seed task of the campaign as its doctor, with the image's 1stHO mask. */
async function answerSeeds(pool: Pool, baseUrl: string, ui: UiStack, campaignId: number, expected: number): Promise<void> {
  await expect
    .poll(async () => (await pool.query("SELECT 1 FROM tasks WHERE campaign_id = $1 AND state = 'open'", [campaignId])).rowCount, { timeout: 60_000 })
    .toBe(expected);
  const tasks = await pool.query<{ id: number; image_name: string; email: string }>(
    `SELECT t.id, i.name AS image_name, u.email FROM tasks t JOIN images i ON i.id = t.image_id JOIN users u ON u.id = t.assignee_id
      WHERE t.campaign_id = $1 AND t.state = 'open'`,
    [campaignId],
  );
  for (const t of tasks.rows) {
    const doctor = ui.stack.demoUsers.find((u) => u.email === t.email)!;
    const mask = await readFile(path.join(CHASE_DIR, "masks_1stHO", `${t.image_name}_1stHO.png`));
    const ended = new Date();
    const res = await fetch(`${baseUrl}/api/tasks/${t.id}/submissions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${await apiToken(baseUrl, doctor)}` },
      body: JSON.stringify({
        submission_id: `e2e-seed-${t.id}`,
        parent_version_id: null,
        mask_png_base64: mask.toString("base64"),
        active_ms: 36 * 60_000,
        started_at: new Date(ended.getTime() - 36 * 60_000).toISOString(),
        ended_at: ended.toISOString(),
        edits: 1,
        simulated: true,
      }),
    });
    expect(res.status).toBe(201);
  }
}

describe("a tiny campaign reaches training while the lab lead watches", () => {
  let ui: UiStack;
  let pool: Pool;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;

  beforeAll(async () => {
    ui = await startUiStack({ gpuWorker: true });
    pool = createPool(ui.stack.databaseUrl, 2);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await pool?.end();
    await ui?.close();
  });

  it("continuous: the doctor presses Next image, corrects, submits, and the next task starts from a newer model", async () => {
    const baseUrl = ui.stack.apiUrl;
    const lead = ui.stack.demoUsers.find((u) => u.role === "lab_lead")!;
    const doctor = ui.stack.demoUsers.find((u) => u.role === "doctor")!;
    const leadId = (await pool.query<{ id: number }>("SELECT id FROM users WHERE email = $1", [lead.email])).rows[0]!.id;
    const project = await createProject(pool, { name: "e2e continuous" }, leadId);
    await importChase({ pool, blobs: new BlobStore(ui.blobRoot) }, project.id, CHASE_DIR, leadId, [
      "Image_01L.jpg",
      "Image_01R.jpg",
      "Image_04L.jpg",
      "Image_04R.jpg",
      "Image_05L.jpg",
      "Image_11L.jpg",
    ]);
    const leadContext = await browser.browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const leadPage = await leadContext.newPage();
    await login(leadPage, baseUrl, lead.email, lead.password);
    await leadPage.goto(`${baseUrl}/#/projects/${project.id}`);
    const form = leadPage.locator('[data-testid="campaign-form"]');
    await form.locator('input[name="name"]').fill("continuous");
    await form.locator('select[name="mode"]').selectOption("continuous");
    await form.locator('select[name="budget"]').selectOption("epochs");
    await form.locator('input[name="epochs"]').fill("1");
    await form.locator('input[name="random_crop.size"]').fill("128x128");
    await form.locator('input[name="random_crop.count"]').fill("1");
    await leadPage.click('[data-testid="start-campaign"]');
    await leadPage.waitForURL(/#\/campaigns\/\d+$/);
    const campaignId = Number(/#\/campaigns\/(\d+)/.exec(leadPage.url())![1]);
    expect((await pool.query<{ mode: string }>("SELECT config->>'mode' AS mode FROM campaigns WHERE id = $1", [campaignId])).rows[0]!.mode).toBe("continuous");
    await answerSeeds(pool, baseUrl, ui, campaignId, 2);
    await leadPage.waitForSelector('[data-testid="campaign-model-version"]:has-text("v0")', { timeout: 5 * 60_000 });
    await shot(leadPage, FILE, "c1-continuous-model-v0");

    const context = await browser.browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await login(page, baseUrl, doctor.email, doctor.password);
    const pullButton = page.locator(`[data-testid="pull-${campaignId}"]`);
    await pullButton.waitFor();
    await shot(page, FILE, "c2-inbox-next-image");
    const taskRound = async () => {
      const id = Number(/#\/tasks\/(\d+)/.exec(page.url())![1]);
      const row = await pool.query<{ round: number; kind: string; assignee: string }>(
        "SELECT t.round, t.kind, u.email AS assignee FROM tasks t JOIN users u ON u.id = t.assignee_id WHERE t.id = $1",
        [id],
      );
      return { id, ...row.rows[0]! };
    };
    await pullButton.click();
    await page.waitForURL(/#\/tasks\/\d+$/);
    await page.waitForFunction(() => "__medloopEditor" in window);
    const first = await taskRound();
    expect(first).toMatchObject({ round: 0, kind: "correct", assignee: doctor.email });

    // One brush stroke across the middle of the image, then Submit.
    const box = (await page.locator("canvas").first().boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.4, box.y + box.height * 0.5);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.55);
    await page.mouse.move(box.x + box.width * 0.6, box.y + box.height * 0.5);
    await page.mouse.up();
    await page.click('[data-testid="submit"]');
    await page.waitForSelector('[data-testid="task-message"].ok', { timeout: 60_000 });
    await shot(page, FILE, "c3-corrected");
    // The second doctor pulls an image under v0 (through the API) and opens it only after v1.
    const doctor2 = ui.stack.demoUsers.filter((u) => u.role === "doctor")[1]!;
    const pulledRes = await fetch(`${baseUrl}/api/campaigns/${campaignId}/pull`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${await apiToken(baseUrl, doctor2)}` },
      body: "{}",
    });
    expect(pulledRes.status).toBe(200);
    const early = (await pulledRes.json()) as { task: { id: number }; model_version: number };
    expect(early.model_version).toBe(0);

    // The trainer fine-tunes on the correction and publishes v1; the next pull starts from it.
    await leadPage.waitForSelector('[data-testid="campaign-model-version"]:has-text("v1")', { timeout: 5 * 60_000 });
    await page.goto(`${baseUrl}/#/inbox`);
    await page.locator(`[data-testid="pull-${campaignId}"]`).click();
    await page.waitForURL((url) => /#\/tasks\/\d+$/.test(url.hash) && !url.hash.endsWith(`/${first.id}`));
    await page.waitForFunction(() => "__medloopEditor" in window);
    const second = await taskRound();
    expect(second.round).toBe(1);
    await shot(page, FILE, "c4-next-from-v1");
    expect(errors).toEqual([]);

    // Opened now, the second doctor's task starts over from v1's prediction of its image.
    const context2 = await browser.browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const page2 = await context2.newPage();
    await login(page2, baseUrl, doctor2.email, doctor2.password);
    await page2.goto(`${baseUrl}/#/tasks/${early.task.id}`);
    await page2.waitForFunction(() => "__medloopEditor" in window);
    await page2.waitForSelector('.toast:has-text("Starting from model v1")');
    await shot(page2, FILE, "c5-restarted-from-v1");
    const start = await pool.query<{ round: number }>(
      "SELECT v.round FROM tasks t JOIN annotation_versions v ON v.id = t.start_version_id WHERE t.id = $1",
      [early.task.id],
    );
    expect(start.rows[0]!.round).toBe(1);
    await context2.close();

    // Stopped, so its training does not run beside the next test.
    const stop = await fetch(`${baseUrl}/api/campaigns/${campaignId}/stop`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${await apiToken(baseUrl, lead)}` },
      body: JSON.stringify({ reason: "test done" }),
    });
    expect(stop.status).toBe(200);
    await context.close();
    await leadContext.close();
  }, 15 * 60_000);

  it("shows the seeding, then the training phase and its activity", async () => {
    const baseUrl = ui.stack.apiUrl;
    const lead = ui.stack.demoUsers.find((u) => u.role === "lab_lead")!;
    const leadId = (await pool.query<{ id: number }>("SELECT id FROM users WHERE email = $1", [lead.email])).rows[0]!.id;
    const project = await createProject(pool, { name: "e2e training" }, leadId);
    await importChase({ pool, blobs: new BlobStore(ui.blobRoot) }, project.id, CHASE_DIR, leadId, ["Image_01L.jpg", "Image_01R.jpg", "Image_04L.jpg", "Image_11L.jpg"]);

    const context = await browser.browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const page = await context.newPage();
    page.on("dialog", (d) => void d.accept());
    await login(page, baseUrl, lead.email, lead.password);
    await page.goto(`${baseUrl}/#/projects/${project.id}`);
    const form = page.locator('[data-testid="campaign-form"]');
    await form.locator('input[name="name"]').fill("tiny training");
    await form.locator('input[name="k"]').fill("1");
    await form.locator('input[name="maxRounds"]').fill("1");
    await form.locator('input[name="minutes"]').fill("1");
    await form.locator('input[name="epochs"]').fill("2");
    await form.locator('input[name="random_crop.size"]').fill("128x128");
    await form.locator('input[name="random_crop.count"]').fill("2");
    await page.click('[data-testid="start-campaign"]');
    await page.waitForURL(/#\/campaigns\/\d+$/);
    const campaignId = Number(/#\/campaigns\/(\d+)/.exec(page.url())![1]);
    await page.waitForSelector('[data-testid="campaign-phase"]:has-text("seeding")', { timeout: 60_000 });

    // The seed tasks, answered by their doctors through the API with the reference masks.
    await answerSeeds(pool, baseUrl, ui, campaignId, 2);
    await shot(page, FILE, "01-seeds-submitted");

    // Watch the live view: the phase moves on to training and the training activity, as the
    // Temporal server sees it (attempt, heartbeats), is shown.
    const phases = new Set<string>();
    let activity = "";
    const deadline = Date.now() + 5 * 60_000;
    while (Date.now() < deadline && !activity.includes("train_segmentation")) {
      // The activity first, then the phase: a repaint between the two reads then shows the
      // phase at least as far on as the activity (the loop ends on the activity).
      activity = (await page.locator('[data-testid="activity"]').textContent().catch(() => null)) ?? "";
      phases.add((await text(page, "campaign-phase")).trim());
      await page.waitForTimeout(500);
    }
    await shot(page, FILE, "02-training");
    expect(phases).toContain("training");
    expect(activity).toMatch(/^train_segmentation, attempt \d+/);

    // The first epoch's heartbeat names a preview of an unseen image: the API serves it as a
    // PNG and the page shows it (fetched with the token, through an object URL).
    const leadToken = await apiToken(baseUrl, lead);
    let png: Buffer | null = null;
    let src = "";
    const previewDeadline = Date.now() + 8 * 60_000;
    while (Date.now() < previewDeadline && !(png && src.startsWith("blob:"))) {
      if (!png) {
        const res = await fetch(`${baseUrl}/api/campaigns/${campaignId}/training-preview`, { headers: { authorization: `Bearer ${leadToken}` } });
        if (res.status === 200) png = Buffer.from(await res.arrayBuffer());
      }
      src = (await page.locator('[data-testid="training-preview-img"]').getAttribute("src").catch(() => null)) ?? src;
      await page.waitForTimeout(500);
    }
    await shot(page, FILE, "03-training-preview");
    expect(png?.subarray(0, 8).toString("hex")).toBe("89504e470d0a1a0a");
    expect(src).toMatch(/^blob:/);
    expect(await text(page, "training-preview")).toMatch(/after epoch \d+\/\d+/);
    await context.close();
  }, 15 * 60_000);
});
