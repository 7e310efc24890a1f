// Review of submitted masks in Chromium against the real stack (Temporal, the TypeScript worker,
// the API): a campaign with `review: true` is started through the API; the doctor of its seed
// task submits a mask through the API (CHASE_DB1's 1stHO mask, flagged as simulated); the
// reviewer opens the queue, the review, drags a region over the image, writes a comment and
// returns the mask. The task is open again from the submitted mask, and the doctor's task page
// shows the comment and the marked region. The doctor submits again (the 2ndHO mask, from the
// returned version); the reviewer accepts it, and the task is done. The lab lead's campaign page
// shows the review outcomes in its quality section.
import { readFile } from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPool, type Pool } from "../../db/pool.js";
import { BlobStore } from "../../services/blobs.js";
import { importChase } from "../../services/imageImport.js";
import { createProject } from "../../services/projects.js";
import { CHASE_DIR, differing, launchBrowser, login, pageMask, shot, startUiStack, type UiStack } from "./helpers.js";

const FILE = "review";
const COMMENT = "The vessel leaving the optic disc towards the lower left is missing; please trace it.";

interface Region {
  x: number;
  y: number;
  width: number;
  height: number;
}

interface ReviewJson {
  id: number;
  task_id: number;
  version_id: number;
  state: string;
  comment: string | null;
  region: Region | null;
  reviewer_name: string | null;
  active_ms: number | null;
  width: number;
  height: number;
}

async function apiToken(baseUrl: string, user: { email: string; password: string }): Promise<string> {
  const res = await fetch(`${baseUrl}/api/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: user.email, password: user.password }),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { token: string }).token;
}

async function call<T = unknown>(baseUrl: string, token: string, method: string, route: string, body?: unknown): Promise<{ status: number; json: T }> {
  const res = await fetch(`${baseUrl}/api${route}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const type = res.headers.get("content-type") ?? "";
  return { status: res.status, json: (type.includes("json") ? await res.json() : await res.text()) as T };
}

async function bits(png: Buffer): Promise<Uint8Array> {
  const { data, info } = await sharp(png).removeAlpha().greyscale().raw().toBuffer({ resolveWithObject: true });
  const out = new Uint8Array(info.width * info.height);
  for (let i = 0; i < out.length; i++) out[i] = data[i]! > 127 ? 1 : 0;
  return out;
}

describe("a reviewer returns a mask with a comment and a region, then accepts the corrected one", () => {
  let ui: UiStack;
  let pool: Pool;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;

  beforeAll(async () => {
    ui = await startUiStack();
    pool = createPool(ui.stack.databaseUrl, 2);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await pool?.end();
    await ui?.close();
  });

  it("returns, shows the comment to the doctor, and accepts the resubmission", async () => {
    const baseUrl = ui.stack.apiUrl;
    const lead = ui.stack.demoUsers.find((u) => u.role === "lab_lead")!;
    const reviewer = ui.stack.demoUsers.find((u) => u.role === "reviewer")!;
    expect(reviewer, "the demo users include a reviewer").toBeTruthy();
    const leadToken = await apiToken(baseUrl, lead);
    const reviewerToken = await apiToken(baseUrl, reviewer);

    // A project with one seed, one pool and one test image of CHASE_DB1, and a campaign with review.
    const leadId = (await pool.query<{ id: number }>("SELECT id FROM users WHERE email = $1", [lead.email])).rows[0]!.id;
    const project = await createProject(pool, { name: "e2e review" }, leadId);
    await importChase({ pool, blobs: new BlobStore(ui.blobRoot) }, project.id, CHASE_DIR, leadId, ["Image_01L.jpg", "Image_04L.jpg", "Image_11L.jpg"]);
    const started = await call<{ id: number }>(baseUrl, leadToken, "POST", "/campaigns", {
      project_id: project.id,
      name: "review",
      config: {
        k: 1,
        maxRounds: 1,
        review: true,
        train: { epochs: 1 },
        augmentation: { seed: 1, steps: [{ op: "flip", modes: ["none"] }, { op: "random_crop", size: [64, 64], count: 1 }] },
      },
    });
    expect(started.status, JSON.stringify(started.json)).toBe(201);
    const campaignId = started.json.id;

    // The seed task goes out to a doctor.
    await expect
      .poll(async () => (await pool.query("SELECT 1 FROM tasks WHERE campaign_id = $1 AND state = 'open'", [campaignId])).rowCount, { timeout: 120_000, interval: 500 })
      .toBe(1);
    const taskRow = (
      await pool.query<{ id: number; email: string }>(
        "SELECT t.id, u.email FROM tasks t JOIN users u ON u.id = t.assignee_id WHERE t.campaign_id = $1 AND t.state = 'open'",
        [campaignId],
      )
    ).rows[0]!;
    const taskId = taskRow.id;
    const doctor = ui.stack.demoUsers.find((u) => u.email === taskRow.email)!;
    const doctorToken = await apiToken(baseUrl, doctor);

    /** Submits `png` for the task as its doctor; a 503 (stored, workflow not told yet) is retried with the same id. */
    const submit = async (submissionId: string, png: Buffer, parentVersionId: number | null) => {
      const ended = new Date();
      const body = {
        submission_id: submissionId,
        parent_version_id: parentVersionId,
        mask_png_base64: png.toString("base64"),
        active_ms: 20 * 60_000,
        started_at: new Date(ended.getTime() - 25 * 60_000).toISOString(),
        ended_at: ended.toISOString(),
        edits: 1,
        simulated: true,
      };
      let res = await call<{ version: { id: number }; task: { state: string } }>(baseUrl, doctorToken, "POST", `/tasks/${taskId}/submissions`, body);
      for (let attempt = 0; res.status === 503 && attempt < 20; attempt++) {
        await new Promise((r) => setTimeout(r, 1000));
        res = await call(baseUrl, doctorToken, "POST", `/tasks/${taskId}/submissions`, body);
      }
      expect(res.status, JSON.stringify(res.json)).toBe(201);
      return res.json.version.id;
    };
    /** The pending review of the task's version, once the task workflow has asked for it. */
    const findPending = async (versionId: number): Promise<number> => {
      let id: number | null = null;
      await expect
        .poll(
          async () => {
            const list = await call<ReviewJson[]>(baseUrl, reviewerToken, "GET", `/reviews?state=pending&campaign_id=${campaignId}`);
            id = list.json.find((r) => r.task_id === taskId && r.version_id === versionId)?.id ?? null;
            return id;
          },
          { timeout: 120_000, interval: 500 },
        )
        .not.toBeNull();
      return id!;
    };

    const firstMask = await readFile(path.join(CHASE_DIR, "masks_1stHO", "Image_01L_1stHO.png"));
    const firstVersion = await submit(`e2e-review-${taskId}-1`, firstMask, null);
    const firstReviewId = await findPending(firstVersion);
    await expect.poll(async () => (await pool.query<{ state: string }>("SELECT state FROM tasks WHERE id = $1", [taskId])).rows[0]!.state).toBe("in_review");

    // ------------------------------------------------------------ the reviewer returns it
    const reviewerContext = await browser.browser.newContext({ viewport: { width: 1400, height: 1000 } });
    const rpage = await reviewerContext.newPage();
    const errors: string[] = [];
    rpage.on("pageerror", (e) => errors.push(`reviewer: ${e.message}`));
    await login(rpage, baseUrl, reviewer.email, reviewer.password);
    // The reviewer's home is the queue.
    await rpage.waitForURL(/#\/reviews$/);
    await rpage.waitForSelector('nav a.active:has-text("Reviews")');
    await rpage.waitForSelector(`[data-testid="reviews-pending"] tr[data-review-id="${firstReviewId}"]`, { timeout: 60_000 });
    expect(await rpage.locator(`tr[data-review-id="${firstReviewId}"]`).textContent()).toContain("Image_01L");
    await shot(rpage, FILE, "01-queue");
    await rpage.click(`[data-testid="open-review-${firstReviewId}"]`);
    await rpage.waitForURL(new RegExp(`#/reviews/${firstReviewId}$`));
    const canvas = rpage.locator('[data-testid="review-canvas"]');
    await canvas.waitFor({ timeout: 60_000 });
    expect(await rpage.locator('[data-testid="review-state"]').textContent()).toBe("pending");
    // Returning needs a comment.
    expect(await rpage.locator('[data-testid="review-return"]').isDisabled()).toBe(true);
    expect(await rpage.locator('[data-testid="review-accept"]').isDisabled()).toBe(false);

    // Drag a rectangle over the image: from 20 %/30 % to 45 %/60 % of the shown canvas.
    const box = (await canvas.boundingBox())!;
    const [iw, ih] = [999, 960];
    const from = { x: box.x + box.width * 0.2, y: box.y + box.height * 0.3 };
    const to = { x: box.x + box.width * 0.45, y: box.y + box.height * 0.6 };
    await rpage.mouse.move(from.x, from.y);
    await rpage.mouse.down();
    await rpage.mouse.move((from.x + to.x) / 2, (from.y + to.y) / 2, { steps: 4 });
    await rpage.mouse.move(to.x, to.y, { steps: 4 });
    await rpage.mouse.up();
    await rpage.waitForSelector('[data-testid="review-region"]:has-text("Region: x")');
    const expected = { x: iw * 0.2, y: ih * 0.3, width: iw * 0.25, height: ih * 0.3 };

    await rpage.fill('[data-testid="review-comment-input"]', COMMENT);
    await rpage.waitForSelector('[data-testid="review-return"]:not([disabled])');
    await shot(rpage, FILE, "02-review-marked");
    await rpage.click('[data-testid="review-return"]');
    await rpage.waitForSelector('[data-testid="review-message"].ok', { timeout: 120_000 });
    expect(await rpage.locator('[data-testid="review-state"]').textContent()).toBe("returned");
    await shot(rpage, FILE, "03-returned");

    // Stored: returned, with the comment and a region in image pixels inside the image.
    const returned = (await call<ReviewJson>(baseUrl, reviewerToken, "GET", `/reviews/${firstReviewId}`)).json;
    expect(returned).toMatchObject({ state: "returned", comment: COMMENT, reviewer_name: reviewer.name, version_id: firstVersion, width: iw, height: ih });
    const region = returned.region!;
    expect(region).not.toBeNull();
    for (const v of [region.x, region.y, region.width, region.height]) expect(Number.isInteger(v)).toBe(true);
    expect(region.x).toBeGreaterThanOrEqual(0);
    expect(region.y).toBeGreaterThanOrEqual(0);
    expect(region.x + region.width).toBeLessThanOrEqual(iw);
    expect(region.y + region.height).toBeLessThanOrEqual(ih);
    // Where it was dragged, in image pixels (the canvas is shown smaller than the image).
    const tolerance = 3 * (iw / box.width) + 2;
    expect(Math.abs(region.x - expected.x)).toBeLessThanOrEqual(tolerance);
    expect(Math.abs(region.y - expected.y)).toBeLessThanOrEqual(tolerance);
    expect(Math.abs(region.width - expected.width)).toBeLessThanOrEqual(2 * tolerance);
    expect(Math.abs(region.height - expected.height)).toBeLessThanOrEqual(2 * tolerance);
    expect(returned.active_ms).toBeGreaterThanOrEqual(0);

    // The task is open again and starts from the submitted mask.
    const detail = await call<{
      task: { state: string; start_version_id: number | null };
      start_mask_url: string | null;
      review: { id: number; state: string; comment: string | null; region: Region | null } | null;
    }>(baseUrl, doctorToken, "GET", `/tasks/${taskId}`);
    expect(detail.status).toBe(200);
    expect(detail.json.task.state).toBe("open");
    expect(detail.json.task.start_version_id).toBe(firstVersion);
    expect(detail.json.start_mask_url).not.toBeNull();
    expect(detail.json.review).toMatchObject({ id: firstReviewId, state: "returned", comment: COMMENT, region });
    const startMask = await fetch(`${baseUrl}/api/tasks/${taskId}/start-mask`, { headers: { authorization: `Bearer ${doctorToken}` } });
    expect(startMask.status).toBe(200);
    const submittedBits = await bits(firstMask);
    expect(differing(await bits(Buffer.from(await startMask.arrayBuffer())), submittedBits)).toBe(0);

    // ------------------------------------------------------------ the doctor sees the comment
    const doctorContext = await browser.browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const dpage = await doctorContext.newPage();
    dpage.on("pageerror", (e) => errors.push(`doctor: ${e.message}`));
    await login(dpage, baseUrl, doctor.email, doctor.password);
    await dpage.goto(`${baseUrl}/#/tasks/${taskId}`);
    await dpage.waitForFunction(() => "__medloopEditor" in window, undefined, { timeout: 60_000 });
    await dpage.waitForSelector(`[data-testid="review-comment"]:has-text("${COMMENT}")`);
    expect(await dpage.locator('[data-testid="review-notice"]').textContent()).toContain(reviewer.name);
    expect(await dpage.locator('[data-testid="review-notice"] [data-testid="review-region"]').textContent()).toContain(
      `x ${region.x}, y ${region.y}, ${region.width}×${region.height} px`,
    );
    await dpage.locator('[data-testid="review-region-overlay"]').waitFor({ state: "attached" });
    // The editor holds the returned mask.
    expect(differing(await pageMask(dpage), submittedBits)).toBe(0);
    await shot(dpage, FILE, "04-doctor-sees-comment");
    await doctorContext.close();

    // ------------------------------------------------------------ resubmitted, then accepted
    const secondMask = await readFile(path.join(CHASE_DIR, "masks_2ndHO", "Image_01L_2ndHO.png"));
    const secondVersion = await submit(`e2e-review-${taskId}-2`, secondMask, detail.json.task.start_version_id);
    expect(secondVersion).not.toBe(firstVersion);
    const secondReviewId = await findPending(secondVersion);
    expect(secondReviewId).not.toBe(firstReviewId);

    await rpage.click('nav a:has-text("Reviews")');
    await rpage.waitForURL(/#\/reviews$/);
    await rpage.waitForSelector(`[data-testid="reviews-pending"] tr[data-review-id="${secondReviewId}"]`, { timeout: 60_000 });
    expect(await rpage.locator(`tr[data-review-id="${firstReviewId}"]`).count()).toBe(0);
    await rpage.click(`[data-testid="open-review-${secondReviewId}"]`);
    await rpage.waitForURL(new RegExp(`#/reviews/${secondReviewId}$`));
    await rpage.locator('[data-testid="review-canvas"]').waitFor({ timeout: 60_000 });
    await rpage.waitForSelector('[data-testid="review-accept"]:not([disabled])');
    await rpage.click('[data-testid="review-accept"]');
    await rpage.waitForSelector('[data-testid="review-message"].ok', { timeout: 120_000 });
    expect(await rpage.locator('[data-testid="review-state"]').textContent()).toBe("accepted");
    await shot(rpage, FILE, "05-accepted");

    await expect
      .poll(async () => (await pool.query<{ state: string }>("SELECT state FROM tasks WHERE id = $1", [taskId])).rows[0]!.state, { timeout: 120_000, interval: 500 })
      .toBe("done");
    const accepted = (await call<ReviewJson>(baseUrl, reviewerToken, "GET", `/reviews/${secondReviewId}`)).json;
    expect(accepted).toMatchObject({ state: "accepted", version_id: secondVersion, reviewer_name: reviewer.name });
    const done = (await call<{ task: { state: string; result_version_id: number | null } }>(baseUrl, doctorToken, "GET", `/tasks/${taskId}`)).json;
    expect(done.task).toMatchObject({ state: "done", result_version_id: secondVersion });

    // ------------------------------------------------------------ the lab lead's quality section
    const leadContext = await browser.browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const lpage = await leadContext.newPage();
    lpage.on("pageerror", (e) => errors.push(`lead: ${e.message}`));
    await login(lpage, baseUrl, lead.email, lead.password);
    await lpage.waitForSelector('nav a:has-text("Reviews")');
    await lpage.goto(`${baseUrl}/#/campaigns/${campaignId}`);
    const outcome = lpage.locator(`[data-testid="quality-reviews"] tr:has-text("${doctor.name}")`);
    await outcome.waitFor({ timeout: 60_000 });
    expect((await outcome.locator("td").allTextContents()).slice(0, 4)).toEqual([doctor.name, "1", "1", "0"]);
    expect(await lpage.locator('[data-testid="quality-csv"]').getAttribute("href")).toMatch(/^blob:/);
    await shot(lpage, FILE, "06-quality");
    await leadContext.close();

    // Stopped, so its training does not wait beside the next test file.
    const stop = await call(baseUrl, leadToken, "POST", `/campaigns/${campaignId}/stop`, { reason: "test done" });
    expect(stop.status).toBe(200);
    expect(errors).toEqual([]);
    await reviewerContext.close();
  }, 10 * 60_000);
});
