// A doctor in Chromium against the real stack: logs in, opens an annotation task, draws
// with the mouse (brush, undo, eraser, polygon, polyline), submits; the stored mask equals,
// pixel for pixel, what the editor's raster functions give for the same geometry. A
// correction task opens on the model's prediction, survives a reload through the local
// draft, and is stored as a correction. Both submissions happen with CPU-burning processes
// beside the browser (a loaded machine once made the editor read the active time after the end
// time, and the server refused the mask); the stored timings hold together and carry no flag.
// The task link of the e-mail opens the task, and the auditor's report shows the recorded
// times, and counts and marks a version whose timing the server had to correct.
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Page } from "playwright-core";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPool, type Pool } from "../../db/pool.js";
import { recordPrediction } from "../../services/annotations.js";
import { BlobStore } from "../../services/blobs.js";
import { importImage, type Image } from "../../services/images.js";
import { linkSecret } from "../../services/mail.js";
import { recordModel } from "../../services/models.js";
import { createProject } from "../../services/projects.js";
import { createTask, type Task } from "../../services/tasks.js";
import { issueTaskLink, pgTaskLinkStore } from "../../services/taskLinks.js";
import { createMask, fillPolygon, polyline, stroke, type Mask, type Point } from "../../services/correction/raster.js";
import { screenToImage, type View } from "../../web/src/editor/view.js";
import { CHASE_DIR, differing, launchBrowser, login, pageMask, shot, startCpuBurners, startUiStack, type UiStack } from "./helpers.js";

const FILE = "doctor";

interface Geometry {
  view: View;
  left: number;
  top: number;
  width: number;
  height: number;
  brushSize: number;
  lineWidth: number;
}

async function geometry(page: Page): Promise<Geometry> {
  return page.evaluate(() => {
    const e = (window as unknown as { __medloopEditor: { view: View; canvas: HTMLCanvasElement; brushSize: number; lineWidth: number } }).__medloopEditor;
    const r = e.canvas.getBoundingClientRect();
    return { view: e.view, left: r.left, top: r.top, width: r.width, height: r.height, brushSize: e.brushSize, lineWidth: e.lineWidth };
  });
}

async function pngBits(png: Buffer): Promise<{ width: number; height: number; bits: Uint8Array }> {
  const { data, info } = await sharp(png).removeAlpha().greyscale().raw().toBuffer({ resolveWithObject: true });
  const bits = new Uint8Array(info.width * info.height);
  for (let i = 0; i < bits.length; i++) bits[i] = data[i]! > 127 ? 1 : 0;
  return { width: info.width, height: info.height, bits };
}

function count(a: Uint8Array): number {
  let n = 0;
  for (const v of a) n += v;
  return n;
}

/** Screen points relative to the canvas, as fractions of its size. */
function screen(g: Geometry, fx: number, fy: number): { x: number; y: number } {
  return { x: Math.round(g.left + fx * g.width), y: Math.round(g.top + fy * g.height) };
}

function toImage(g: Geometry, s: { x: number; y: number }): Point {
  return screenToImage(g.view, s.x - g.left, s.y - g.top);
}

async function drag(page: Page, pts: Array<{ x: number; y: number }>): Promise<void> {
  await page.mouse.move(pts[0]!.x, pts[0]!.y);
  await page.mouse.down();
  for (const p of pts.slice(1)) await page.mouse.move(p.x, p.y);
  await page.mouse.up();
}

async function clicks(page: Page, pts: Array<{ x: number; y: number }>): Promise<void> {
  for (const p of pts) await page.mouse.click(p.x, p.y);
}

async function openTask(page: Page, baseUrl: string, taskId: number): Promise<void> {
  await page.goto(`${baseUrl}/#/tasks/${taskId}`);
  await page.waitForFunction(() => "__medloopEditor" in window);
  await page.waitForTimeout(200); // the first frame and the fit-to-view
}

/** Waits for the submission's answer and fails with the page's message when it is not a success. */
async function submitted(page: Page): Promise<void> {
  const msg = page.locator('[data-testid="task-message"]');
  await page.waitForSelector('[data-testid="task-message"].ok, [data-testid="task-message"].error', { timeout: 60_000 });
  expect(await msg.getAttribute("class"), (await msg.textContent()) ?? "").toContain("ok");
}

/** Presses Submit (a key or a click) with every core busy, and waits for the answer. */
async function submitUnderLoad(page: Page, press: () => Promise<void>): Promise<void> {
  const burners = await startCpuBurners();
  try {
    await press();
    await submitted(page);
    expect(burners.alive()).toBe(burners.count); // the load lasted the whole submission
  } finally {
    await burners.stop();
  }
}

interface StoredVersion {
  id: number;
  uri: string;
  kind: string;
  parent_id: number | null;
  active_ms: number;
  edits: number;
  pixels_changed: number;
  started_at: Date;
  submitted_at: Date;
  flags: string[];
}

/** The editor takes the end time and the active time from one clock reading: they agree exactly. */
function expectConsistentTiming(v: StoredVersion): void {
  expect(v.flags).toEqual([]);
  expect(v.active_ms).toBeGreaterThan(0);
  expect(v.active_ms).toBeLessThanOrEqual(v.submitted_at.getTime() - v.started_at.getTime());
}

async function storedVersion(pool: Pool, taskId: number): Promise<StoredVersion> {
  const { rows } = await pool.query<StoredVersion>(
    `SELECT id, uri, kind, parent_id, active_ms::int AS active_ms, edits, pixels_changed, started_at, submitted_at, flags
       FROM annotation_versions WHERE task_id = $1`,
    [taskId],
  );
  expect(rows).toHaveLength(1); // exactly one version, however the submission went
  return rows[0]!;
}

describe("doctor in the browser", () => {
  let ui: UiStack;
  let pool: Pool;
  let blobs: BlobStore;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let baseUrl: string;
  let doctor: { id: number; email: string; password: string };
  let auditor: { email: string; password: string };
  let image1: Image;
  let image2: Image;
  let annotate: Task;
  let correct: Task;
  let prediction: { id: number; bits: Uint8Array };

  beforeAll(async () => {
    ui = await startUiStack();
    baseUrl = ui.stack.apiUrl;
    pool = createPool(ui.stack.databaseUrl, 2);
    blobs = new BlobStore(ui.blobRoot);
    const demo = (role: string) => ui.stack.demoUsers.find((u) => u.role === role)!;
    const ids = await pool.query<{ id: number; email: string }>("SELECT id, email FROM users");
    const idOf = (email: string) => ids.rows.find((r) => r.email === email)!.id;
    doctor = { ...demo("doctor"), id: idOf(demo("doctor").email) };
    auditor = demo("auditor");
    const lead = idOf(demo("lab_lead").email);
    const project = await createProject(pool, { name: "e2e doctor", description: "browser test" }, lead);
    const chase = (p: string) => readFile(path.join(CHASE_DIR, p));
    image1 = await importImage({ pool, blobs }, { projectId: project.id, name: "Image_01L", role: "pool", data: await chase("images/Image_01L.jpg"), mask: await chase("masks_1stHO/Image_01L_1stHO.png"), actorId: lead });
    image2 = await importImage({ pool, blobs }, { projectId: project.id, name: "Image_02L", role: "pool", data: await chase("images/Image_02L.jpg"), mask: await chase("masks_1stHO/Image_02L_1stHO.png"), actorId: lead });
    const due = new Date(Date.now() + 2 * 86400_000);
    annotate = await createTask(pool, { projectId: project.id, imageId: image1.id, kind: "annotate", assigneeId: doctor.id, dueAt: due });
    // A "prediction" for image 2: the second observer's mask, recorded as a model's output.
    const model = await recordModel(pool, { campaignId: null, round: null, uri: "blob://models/e2e/" });
    const predPng = await chase("masks_2ndHO/Image_02L_2ndHO.png");
    const maskUri = await blobs.put("predictions/e2e/Image_02L.png", predPng);
    const version = await recordPrediction({ pool, blobs }, { campaignId: null, round: null, modelId: model.id, imageId: image2.id, maskUri });
    prediction = { id: version.id, bits: (await pngBits(predPng)).bits };
    correct = await createTask(pool, { projectId: project.id, imageId: image2.id, kind: "correct", parentVersionId: version.id, assigneeId: doctor.id, dueAt: due });
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await pool?.end();
    await ui?.close();
  });

  it("draws strokes with the mouse and stores exactly those pixels", async () => {
    const context = await browser.browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await login(page, baseUrl, doctor.email, doctor.password);
    await page.waitForSelector('[data-testid="inbox-open"]');
    expect(await page.locator('[data-testid="inbox-open"] tbody tr').count()).toBe(2);
    await shot(page, FILE, "01-inbox");

    await page.click(`a[href="#/tasks/${annotate.id}"]`);
    await page.waitForFunction(() => "__medloopEditor" in window);
    await page.waitForTimeout(200);
    await shot(page, FILE, "02-annotate-opened");
    const expected = createMask(image1.width, image1.height);

    // Brush: two presses of ] make it larger; the size used is read back from the editor.
    await page.keyboard.press("]");
    await page.keyboard.press("]");
    let g = await geometry(page);
    const brush = [screen(g, 0.3, 0.3), screen(g, 0.45, 0.35), screen(g, 0.55, 0.5), screen(g, 0.5, 0.62)];
    await drag(page, brush);
    stroke(expected, brush.map((s) => toImage(g, s)), g.brushSize, 1);

    // A second stroke, undone with Ctrl+Z: it must not reach the server.
    await drag(page, [screen(g, 0.7, 0.2), screen(g, 0.8, 0.3)]);
    await page.keyboard.press("Control+z");

    // Zoom with the wheel towards a point, then erase across the first stroke.
    await page.mouse.move(...Object.values(screen(g, 0.45, 0.4)) as [number, number]);
    await page.mouse.wheel(0, -200);
    await page.waitForTimeout(100);
    g = await geometry(page);
    expect(g.view.scale).toBeGreaterThan(0);
    await page.keyboard.press("e");
    const eraser = [screen(g, 0.3, 0.5), screen(g, 0.6, 0.45)];
    await drag(page, eraser);
    stroke(expected, eraser.map((s) => toImage(g, s)), g.brushSize, 0);

    // Polygon: four corners, Enter fills.
    await page.keyboard.press("p");
    const poly = [screen(g, 0.15, 0.7), screen(g, 0.3, 0.68), screen(g, 0.32, 0.85), screen(g, 0.18, 0.88)];
    await clicks(page, poly);
    await page.keyboard.press("Enter");
    fillPolygon(expected, poly.map((s) => toImage(g, s)), 1);

    // Polyline with its width, for a thin vessel.
    await page.keyboard.press("l");
    const line = [screen(g, 0.6, 0.7), screen(g, 0.7, 0.75), screen(g, 0.85, 0.72)];
    await clicks(page, line);
    await page.keyboard.press("Enter");
    polyline(expected, line.map((s) => toImage(g, s)), g.lineWidth, 1);
    await page.waitForTimeout(100);
    await shot(page, FILE, "03-annotate-drawn");

    expect(differing(await pageMask(page), expected.data)).toBe(0);
    expect(count(expected.data)).toBeGreaterThan(500);

    await page.keyboard.press("?");
    await expect.poll(() => page.locator('[data-testid="help"]').isVisible()).toBe(true);
    await shot(page, FILE, "04-shortcuts-help");
    await page.keyboard.press("?");

    await submitUnderLoad(page, () => page.keyboard.press("Control+Enter"));
    await shot(page, FILE, "05-annotate-submitted");

    const v = await storedVersion(pool, annotate.id);
    const stored = await pngBits(await blobs.get(v.uri));
    expect([stored.width, stored.height]).toEqual([image1.width, image1.height]);
    expect(differing(stored.bits, expected.data)).toBe(0);
    expect(v.kind).toBe("manual");
    expect(v.pixels_changed).toBe(count(expected.data));
    expect(v.edits).toBe(6); // brush, brush, undo, eraser, polygon, polyline
    expectConsistentTiming(v);
    const state = await pool.query<{ state: string }>("SELECT state FROM tasks WHERE id = $1", [annotate.id]);
    expect(state.rows[0]!.state).toBe("done");
    expect(errors).toEqual([]);
    await context.close();
  });

  it("a correction starts from the prediction and survives a reload through the local draft", async () => {
    const context = await browser.browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await login(page, baseUrl, doctor.email, doctor.password);
    await openTask(page, baseUrl, correct.id);
    expect(differing(await pageMask(page), prediction.bits)).toBe(0);
    await page.check('input[data-layer="prediction"]');
    await shot(page, FILE, "06-correction-opened");

    const expected: Mask = createMask(image2.width, image2.height, prediction.bits.slice());
    const g = await geometry(page);
    await page.keyboard.press("e");
    const erase = [screen(g, 0.4, 0.4), screen(g, 0.6, 0.42)];
    await drag(page, erase);
    stroke(expected, erase.map((s) => toImage(g, s)), g.brushSize, 0);
    await page.keyboard.press("b");
    const add = [screen(g, 0.35, 0.6), screen(g, 0.5, 0.58)];
    await drag(page, add);
    stroke(expected, add.map((s) => toImage(g, s)), g.brushSize, 1);
    expect(differing(await pageMask(page), expected.data)).toBe(0);
    await page.waitForTimeout(1200); // the draft is saved half a second after the last edit
    await shot(page, FILE, "07-correction-edited");

    await page.reload();
    await page.waitForFunction(() => "__medloopEditor" in window);
    await page.waitForSelector(".toast");
    expect(await page.locator(".toast").first().textContent()).toContain("Restored");
    expect(differing(await pageMask(page), expected.data)).toBe(0);
    await shot(page, FILE, "08-correction-restored");

    await submitUnderLoad(page, () => page.click('[data-testid="submit"]'));
    await shot(page, FILE, "09-correction-submitted");
    const v = await storedVersion(pool, correct.id);
    expect(v.kind).toBe("correction");
    expectConsistentTiming(v);
    expect(v.parent_id).toBe(prediction.id);
    const stored = await pngBits(await blobs.get(v.uri));
    expect(differing(stored.bits, expected.data)).toBe(0);
    expect(v.pixels_changed).toBe(differing(expected.data, prediction.bits));
    expect(v.edits).toBe(2);

    // Confirmed: the draft is gone, a reload shows the task as closed.
    await page.reload();
    await page.waitForSelector('[data-testid="task-message"].ok');
    expect(await page.locator('[data-testid="submit"]').isDisabled()).toBe(true);
    await context.close();
  });

  it("the e-mail's signed task link opens the task without a password, once", async () => {
    // The two tasks above are submitted by now, and a closed task's link is refused: a new open one.
    const open = await createTask(pool, { projectId: image1.project_id, imageId: image1.id, kind: "annotate", assigneeId: doctor.id, dueAt: new Date(Date.now() + 86400_000) });
    const secret = await linkSecret(ui.dataDir);
    // Issued as the notify activity issues it (its nonce recorded), pointing at this stack's UI.
    const { link } = await issueTaskLink(pgTaskLinkStore(pool), { secret, baseUrl, ttlSeconds: 600 }, { taskId: String(open.id), doctorId: String(doctor.id), issueKey: null });
    const context = await browser.browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto(link);
    await page.waitForFunction(() => "__medloopEditor" in window);
    expect(page.url()).toContain(`#/tasks/${open.id}`);
    expect(await page.locator('[data-testid="whoami"]').textContent()).toContain("doctor");
    await shot(page, FILE, "10-task-link");

    // The same link again (another browser) is refused and leads to the login page, saying why.
    const second = await browser.browser.newContext();
    const p2 = await second.newPage();
    await p2.goto(link);
    await p2.waitForSelector('input[name="email"]');
    expect(await p2.locator(".toast").first().textContent()).toContain("already used");
    await second.close();

    // So does a forged one.
    const forged = await browser.browser.newContext();
    const p3 = await forged.newPage();
    await p3.goto(link.replace(/sig=[^&]+/, "sig=forged"));
    await p3.waitForSelector('input[name="email"]');
    await forged.close();
    await context.close();
  });

  it("the auditor's report shows the recorded times", async () => {
    const { rows } = await pool.query<{ kind: string; active_ms: number }>(
      "SELECT kind, active_ms::int AS active_ms FROM annotation_versions WHERE task_id = ANY($1::int[]) ORDER BY id",
      [[annotate.id, correct.id]],
    );
    expect(rows).toHaveLength(2);
    const context = await browser.browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const page = await context.newPage();
    await login(page, baseUrl, auditor.email, auditor.password);
    await page.goto(`${baseUrl}/#/reports`);
    await page.waitForSelector('[data-testid="work-rows"] tbody tr');
    const shown = await page.locator('[data-testid="active-ms"]').allTextContents();
    expect(shown).toEqual(rows.map((r) => `${(r.active_ms / 1000).toFixed(1)} s`));
    const minutes = (ms: number) => (ms / 60_000).toFixed(2);
    expect(await page.locator('[data-testid="kpi-scratch"]').textContent()).toBe(minutes(rows[0]!.active_ms));
    expect(await page.locator('[data-testid="kpi-correction"]').textContent()).toBe(minutes(rows[1]!.active_ms));
    expect(await page.locator('svg[data-chart="distribution"] circle').count()).toBe(2);
    const csv = await page.evaluate(async () => (await fetch((document.querySelector('[data-testid="csv-link"]') as HTMLAnchorElement).href)).text());
    expect(csv.split(/\r?\n/).filter(Boolean)).toHaveLength(3);
    await shot(page, FILE, "11-auditor-savings");
    await page.goto(`${baseUrl}/#/audit`);
    await page.waitForSelector('[data-testid="audit"] tbody tr');
    expect(await page.locator('[data-testid="audit"]').textContent()).toContain("task.submit");
    // The hash chain is verified on opening; its head is shown to keep, and checks against itself.
    await page.waitForSelector('[data-testid="chain-status"]');
    expect(await page.locator('[data-testid="chain-status"]').textContent()).toContain("The audit chain holds");
    const head = (await page.locator('[data-testid="chain-head"]').textContent())!;
    expect(head).toMatch(/^\d+:[0-9a-f]{64}$/);
    await page.fill('[data-testid="kept-head"]', head);
    await page.click('[data-testid="verify-chain"]');
    await expect.poll(() => page.locator('[data-testid="chain-status"]').textContent()).toContain("kept head is in it");
    await shot(page, FILE, "12-auditor-audit-log");
    await context.close();
  });

  it("the evaluation view overlays two masks of an image on its reference, side by side", async () => {
    // A campaign record for the project (the overlay viewer lives on a campaign's page).
    const { rows } = await pool.query<{ id: number }>("INSERT INTO campaigns (project_id, name) VALUES ($1, 'e2e eval') RETURNING id", [image2.project_id]);
    const campaignId = rows[0]!.id;
    const correction = await storedVersion(pool, correct.id);
    const truth = (await pngBits(await readFile(path.join(CHASE_DIR, "masks_1stHO", "Image_02L_1stHO.png")))).bits;
    const corrected = (await pngBits(await blobs.get(correction.uri))).bits;
    const caption = (pred: Uint8Array) => {
      let tp = 0;
      let fp = 0;
      let fn = 0;
      for (let i = 0; i < pred.length; i++) {
        if (pred[i] && truth[i]) tp++;
        else if (pred[i]) fp++;
        else if (truth[i]) fn++;
      }
      return `F1 ${((2 * tp) / (2 * tp + fp + fn)).toFixed(3)} over the whole image · TP ${tp} · FP ${fp} · FN ${fn}`;
    };
    const context = await browser.browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const page = await context.newPage();
    await login(page, baseUrl, auditor.email, auditor.password);
    await page.goto(`${baseUrl}/#/campaigns/${campaignId}/evaluation`);
    await page.waitForSelector('[data-testid="eval-image"]');
    await page.selectOption('[data-testid="eval-image"]', String(image2.id));
    await page.waitForSelector(`[data-testid="eval-right"] option[value="${correction.id}"]`, { state: "attached" });
    await page.selectOption('[data-testid="eval-left"]', String(prediction.id));
    await page.selectOption('[data-testid="eval-right"]', String(correction.id));
    await expect.poll(async () => (await page.locator('[data-testid="overlay-caption"]').allTextContents()).join("|"), { timeout: 20_000 }).toContain(`(#${correction.id}): `);
    const captions = await page.locator('[data-testid="overlay-caption"]').allTextContents();
    expect(captions).toHaveLength(2);
    expect(captions[0]).toContain(caption(prediction.bits));
    expect(captions[1]).toContain(caption(corrected));
    await shot(page, FILE, "13-evaluation-overlays");
    await context.close();
  });

  it("the auditor sees a version whose timing the server corrected: counted, marked, with the times as sent", async () => {
    // A client whose active time ran past its own end time (10 min in a 1 min span): stored, clamped, flagged.
    const late = await createTask(pool, { projectId: image1.project_id, imageId: image1.id, kind: "annotate", assigneeId: doctor.id });
    const auth = await fetch(`${baseUrl}/api/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: doctor.email, password: doctor.password }),
    });
    const { token } = (await auth.json()) as { token: string };
    const mask = await sharp(Buffer.alloc(image1.width * image1.height), { raw: { width: image1.width, height: image1.height, channels: 1 } }).png().toBuffer();
    const ended = Date.now();
    const res = await fetch(`${baseUrl}/api/tasks/${late.id}/submissions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({
        submission_id: "e2e-clamped",
        parent_version_id: null,
        mask_png_base64: mask.toString("base64"),
        active_ms: 600_000,
        started_at: new Date(ended - 60_000).toISOString(),
        ended_at: new Date(ended).toISOString(),
        edits: 1,
      }),
    });
    const body = (await res.json()) as { version: { id: number; active_ms: number; flags: string[] } };
    expect(res.status, JSON.stringify(body)).toBe(201);
    expect(body.version).toMatchObject({ active_ms: 60_000, flags: ["active_ms_clamped"] });

    const context = await browser.browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const page = await context.newPage();
    await login(page, baseUrl, auditor.email, auditor.password);
    await page.goto(`${baseUrl}/#/reports`);
    await page.waitForSelector('[data-testid="flagged-count"]');
    expect(await page.locator('[data-testid="flagged-count"]').textContent()).toContain("1 mask has a corrected timing");
    const markers = await page.locator('[data-testid="flags"]').allTextContents();
    expect(markers).toHaveLength(3);
    expect(markers.filter(Boolean)).toEqual(["⚑ active_ms_clamped"]);
    const flaggedRow = page.locator('[data-testid="work-rows"] tbody tr', { hasText: "⚑ active_ms_clamped" });
    expect(await flaggedRow.locator("td").first().textContent()).toBe(String(body.version.id));
    await shot(page, FILE, "14-auditor-flagged");
    // Left out on request: the two measured versions remain, none flagged.
    await page.selectOption('[data-testid="flagged-filter"]', "exclude");
    await expect.poll(() => page.locator('[data-testid="work-rows"] tbody tr').count()).toBe(2);
    expect(await page.locator('[data-testid="flagged-count"]').count()).toBe(0);
    // The audit log marks the submission and keeps the times as sent.
    await page.goto(`${baseUrl}/#/audit`);
    await page.waitForSelector('[data-testid="audit-flagged"]');
    const entry = page.locator('[data-testid="audit"] tbody tr', { has: page.locator('[data-testid="audit-flagged"]') });
    expect(await entry.count()).toBe(1);
    expect(await entry.textContent()).toContain('"active_ms":600000');
    await context.close();
  });
});
