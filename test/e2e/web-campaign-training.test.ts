// A tiny campaign that reaches training: the stack with the Python gpu worker, a lab lead who
// starts the campaign in Chromium and watches it, seed tasks answered through the HTTP API
// with CHASE_DB1's reference masks (flagged as simulated: no person drew them). The live
// view must show the seeding, then the training phase with the running training activity and
// the per-epoch preview of an unseen image.
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
    await expect.poll(async () => (await pool.query("SELECT 1 FROM tasks WHERE campaign_id = $1 AND state = 'open'", [campaignId])).rowCount, { timeout: 60_000 }).toBe(2);
    const tasks = await pool.query<{ id: number; image_name: string; email: string }>(
      `SELECT t.id, i.name AS image_name, u.email FROM tasks t JOIN images i ON i.id = t.image_id JOIN users u ON u.id = t.assignee_id
        WHERE t.campaign_id = $1 AND t.state = 'open'`,
      [campaignId],
    );
    for (const t of tasks.rows) {
      const doctor = ui.stack.demoUsers.find((u) => u.email === t.email)!;
      const token = ((await (await fetch(`${baseUrl}/api/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: doctor.email, password: doctor.password }) })).json()) as { token: string }).token;
      const mask = await readFile(path.join(CHASE_DIR, "masks_1stHO", `${t.image_name}_1stHO.png`));
      const ended = new Date();
      const res = await fetch(`${baseUrl}/api/tasks/${t.id}/submissions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
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
    const leadToken = ((await (await fetch(`${baseUrl}/api/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: lead.email, password: lead.password }) })).json()) as { token: string }).token;
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
