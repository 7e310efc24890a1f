// The assisted correction tools in Chromium against the real stack. A correction task on a
// CHASE_DB1 image starts from a prediction (the 2nd observer's mask) with a probability map (the
// 1st observer's mask, blurred, as a 16-bit PNG). The doctor traces, grows, removes and
// re-thresholds with the mouse, each previewed before the click commits it, undoes one edit, and
// submits: the stored mask equals what services/correction/assist.ts gives for the same clicks,
// and the stored actions name the tools. Then the simulated doctor's action list for another
// image (services/simulate/correctionDoctor.ts) is played through the editor with the mouse: the
// stored mask equals the simulator's, pixel for pixel, and the stored actions match its list.
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Page } from "playwright-core";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPool, type Pool } from "../../db/pool.js";
import { recordPrediction } from "../../services/annotations.js";
import { BlobStore } from "../../services/blobs.js";
import { applyEdit, grow, probabilityFromSamples, remove, rethreshold, trace, type ProbabilityMap } from "../../services/correction/assist.js";
import type { Action } from "../../services/correction/effort.js";
import { cloneMask, type Mask, type Point } from "../../services/correction/raster.js";
import { components } from "../../services/correction/skeleton.js";
import { importImage, type Image } from "../../services/images.js";
import { decodeSamples, readMask } from "../../services/ingest/decode.js";
import { recordModel } from "../../services/models.js";
import { createProject } from "../../services/projects.js";
import { createTask, type Task } from "../../services/tasks.js";
import { prepareTruth, simulateCorrection } from "../../services/simulate/correctionDoctor.js";
import type { View } from "../../web/src/editor/view.js";
import { CHASE_DIR, differing, launchBrowser, login, pageMask, shot, startUiStack, type UiStack } from "./helpers.js";

const FILE = "assisted";

interface Case {
  image: Image;
  task: Task;
  prediction: Mask;
  truth: Mask;
  prob: ProbabilityMap;
}

async function maskOf(png: Buffer, name: string): Promise<Mask> {
  const m = await readMask(png, name);
  return { width: m.width, height: m.height, data: m.bits };
}

/** The probability map as the editor reads it: 16-bit samples / 65535. */
async function probOf(png: Buffer): Promise<ProbabilityMap> {
  return probabilityFromSamples(await decodeSamples(png, "probability"));
}

/**
 * Shows the image at one CSS pixel per image pixel with pixel centres on whole screen
 * coordinates (view offset −½), so a mouse event at an integer position is exactly a pixel
 * centre (x + ½, y + ½) in image coordinates; returns the canvas's page offset.
 */
async function pixelExactView(page: Page): Promise<{ left: number; top: number }> {
  return page.evaluate(() => {
    const e = (window as unknown as { __medloopEditor: { view: View; canvas: HTMLCanvasElement } }).__medloopEditor;
    e.view = { scale: 1, tx: -0.5, ty: -0.5 };
    const r = e.canvas.getBoundingClientRect();
    return { left: r.left, top: r.top };
  });
}

/**
 * Waits until the overlay shows the assisted tool's preview at the pointer (it is computed on an
 * animation frame, later on a busy machine) and returns its size: pixels, or path points.
 */
async function preview(page: Page): Promise<number> {
  const size = () =>
    page.evaluate(() => {
      const e = (window as unknown as { __medloopEditor: { pendingPreview: { indices: Uint32Array; path: unknown[] } | null } }).__medloopEditor;
      const p = e.pendingPreview;
      return p ? Math.max(p.indices.length, p.path.length) : 0;
    });
  await expect.poll(size, { timeout: 10_000 }).toBeGreaterThan(0);
  return size();
}

async function storedVersion(pool: Pool, taskId: number): Promise<{ uri: string; actions: Action[] }> {
  const { rows } = await pool.query<{ uri: string; actions: Action[] }>("SELECT uri, actions FROM annotation_versions WHERE task_id = $1", [taskId]);
  expect(rows).toHaveLength(1);
  return rows[0]!;
}

async function submit(page: Page): Promise<void> {
  await page.click('[data-testid="submit"]');
  await page.waitForSelector('[data-testid="task-message"].ok, [data-testid="task-message"].error', { timeout: 60_000 });
  const msg = page.locator('[data-testid="task-message"]');
  expect(await msg.getAttribute("class"), (await msg.textContent()) ?? "").toContain("ok");
}

describe("assisted correction in the browser", () => {
  let ui: UiStack;
  let pool: Pool;
  let blobs: BlobStore;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let baseUrl: string;
  let doctor: { email: string; password: string };
  const cases: Record<string, Case> = {};

  beforeAll(async () => {
    ui = await startUiStack();
    baseUrl = ui.stack.apiUrl;
    pool = createPool(ui.stack.databaseUrl, 2);
    blobs = new BlobStore(ui.blobRoot);
    doctor = ui.stack.demoUsers.find((u) => u.role === "doctor")!;
    const ids = await pool.query<{ id: number; email: string }>("SELECT id, email FROM users");
    const idOf = (email: string) => ids.rows.find((r) => r.email === email)!.id;
    const lead = idOf(ui.stack.demoUsers.find((u) => u.role === "lab_lead")!.email);
    const project = await createProject(pool, { name: "e2e assisted", description: "browser test" }, lead);
    const model = await recordModel(pool, { campaignId: null, round: null, uri: "blob://models/e2e-assisted/" });
    const chase = (p: string) => readFile(path.join(CHASE_DIR, p));
    for (const stem of ["Image_03L", "Image_03R"]) {
      const image = await importImage({ pool, blobs }, { projectId: project.id, name: stem, role: "pool", data: await chase(`images/${stem}.jpg`), actorId: lead });
      const truthPng = await chase(`masks_1stHO/${stem}_1stHO.png`);
      const predPng = await chase(`masks_2ndHO/${stem}_2ndHO.png`);
      const probPng = await sharp(truthPng).greyscale().blur(1.5).toColourspace("grey16").png().toBuffer();
      const maskUri = await blobs.put(`predictions/e2e-assisted/${stem}.png`, predPng);
      const probUri = await blobs.put(`predictions/e2e-assisted/${stem}_prob.png`, probPng);
      const version = await recordPrediction({ pool, blobs }, { campaignId: null, round: null, modelId: model.id, imageId: image.id, maskUri, probUri });
      const task = await createTask(pool, {
        projectId: project.id,
        imageId: image.id,
        kind: "correct",
        parentVersionId: version.id,
        assigneeId: idOf(doctor.email),
        dueAt: new Date(Date.now() + 86400_000),
      });
      cases[stem] = { image, task, prediction: await maskOf(predPng, stem), truth: await maskOf(truthPng, stem), prob: await probOf(probPng) };
    }
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await pool?.end();
    await ui?.close();
  });

  async function open(c: Case): Promise<{ page: Page; left: number; top: number; close(): Promise<void> }> {
    const context = await browser.browser.newContext({ viewport: { width: 1400, height: 1300 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await login(page, baseUrl, doctor.email, doctor.password);
    await page.goto(`${baseUrl}/#/tasks/${c.task.id}`);
    await page.waitForFunction(() => "__medloopEditor" in window);
    // The editor fits the image to the stage on its first resize (later on a busy machine); the
    // pixel-exact view is set after that, or the fit would replace it.
    await page.waitForFunction(() => {
      const v = (window as unknown as { __medloopEditor: { view: View } }).__medloopEditor.view;
      return v.scale !== 1 || v.tx !== 0 || v.ty !== 0;
    });
    expect(differing(await pageMask(page), c.prediction.data)).toBe(0);
    const { left, top } = await pixelExactView(page);
    return {
      page,
      left,
      top,
      close: async () => {
        expect(errors).toEqual([]);
        await context.close();
      },
    };
  }

  it("traces, grows, removes and re-thresholds with previews and undo, and stores exactly that", async () => {
    const c = cases.Image_03L!;
    const { page, left, top, close } = await open(c);
    const at = (p: Point) => ({ x: left + p.x - 0.5, y: top + p.y - 0.5 }); // pixel centre → screen
    const W = c.image.width;
    const centre = (i: number): Point => ({ x: (i % W) + 0.5, y: Math.floor(i / W) + 0.5 });
    const expected = cloneMask(c.prediction);
    // What the prediction missed and what it has too much of, as the simulated doctor sees them.
    const truth = prepareTruth(c.truth);
    const missed = components(W, c.image.height, (i) => truth.skeleton[i] === 1 && expected.data[i] === 0).sort((a, b) => b.length - a.length);
    const spurious = components(W, c.image.height, (i) => expected.data[i] === 1 && truth.near[i] === 0).sort((a, b) => b.length - a.length);
    expect(missed[0]!.length).toBeGreaterThan(10);
    expect(spurious.length).toBeGreaterThan(0);

    // Trace: two clicks along the longest missed run; the path is previewed before Enter.
    await page.keyboard.press("t");
    const run = missed[0]!;
    const a = centre(run[0]!);
    const b = centre(run[run.length - 1]!);
    await page.mouse.click(at(a).x, at(a).y);
    await page.mouse.move(at(b).x, at(b).y);
    expect(await preview(page)).toBeGreaterThan(1);
    await page.mouse.click(at(b).x, at(b).y);
    await page.keyboard.press("Enter");
    applyEdit(expected, trace(expected, c.prob, [a, b]));
    await shot(page, FILE, "01-traced");
    expect(differing(await pageMask(page), expected.data)).toBe(0);

    // Grow: one click on the next missed run, previewed on hover.
    await page.keyboard.press("g");
    const g = centre(missed[1]![missed[1]!.length >> 1]!);
    await page.mouse.move(at(g).x, at(g).y);
    expect(await preview(page)).toBeGreaterThan(0);
    await page.mouse.click(at(g).x, at(g).y);
    applyEdit(expected, grow(expected, c.prob, g));
    expect(differing(await pageMask(page), expected.data)).toBe(0);

    // Remove: one click on a spurious piece, previewed in red.
    await page.keyboard.press("d");
    const r = centre(spurious[0]![0]!);
    await page.mouse.move(at(r).x, at(r).y);
    expect(await preview(page)).toBeGreaterThan(0);
    await page.mouse.click(at(r).x, at(r).y);
    applyEdit(expected, remove(expected, r));
    expect(differing(await pageMask(page), expected.data)).toBe(0);

    // Re-threshold brush: a stroke across the image's middle at threshold 0.3.
    await page.keyboard.press("k");
    const stroke = [{ x: 300.5, y: 480.5 }, { x: 420.5, y: 500.5 }, { x: 560.5, y: 470.5 }];
    await page.mouse.move(at(stroke[0]!).x, at(stroke[0]!).y);
    await page.mouse.down();
    for (const p of stroke.slice(1)) await page.mouse.move(at(p).x, at(p).y);
    await page.mouse.up();
    const beforeRethreshold = cloneMask(expected);
    const size = await page.evaluate(() => (window as unknown as { __medloopEditor: { brushSize: number } }).__medloopEditor.brushSize);
    applyEdit(expected, rethreshold(expected, c.prob, stroke, size, 0.3));
    expect(differing(await pageMask(page), expected.data)).toBe(0);
    expect(differing(beforeRethreshold.data, expected.data)).toBeGreaterThan(0);
    await shot(page, FILE, "02-tools-used");

    // Undo takes the re-threshold stroke back; redo and undo again leave it out.
    await page.keyboard.press("Control+z");
    expect(differing(await pageMask(page), beforeRethreshold.data)).toBe(0);
    await page.keyboard.press("Control+Shift+z");
    expect(differing(await pageMask(page), expected.data)).toBe(0);
    await page.keyboard.press("Control+z");

    await submit(page);
    const v = await storedVersion(pool, c.task.id);
    const stored = await maskOf(await blobs.get(v.uri), "stored");
    expect(differing(stored.data, beforeRethreshold.data)).toBe(0);
    // Every action that changed the mask is recorded, the undone one too (its effort was spent).
    expect(v.actions.map((x) => x.tool)).toEqual(["trace", "grow", "remove", "rethreshold"]);
    expect(v.actions[0]!.clicks).toBe(2);
    expect(v.actions[3]!.path_px).toBeGreaterThan(250);
    await close();
  });

  it("replays the simulated doctor's actions through the editor to the same mask and actions", async () => {
    const c = cases.Image_03R!;
    const simulated = simulateCorrection("assisted", c.prediction, prepareTruth(c.truth), c.prob);
    const tools = new Set(simulated.steps.map((s) => s.tool));
    expect(tools.has("trace") || tools.has("grow")).toBe(true);
    expect(tools.has("rethreshold")).toBe(true); // the threshold slider is replayed too
    expect(simulated.steps.length).toBeGreaterThan(5);
    const { page, left, top, close } = await open(c);
    const at = (p: Point) => ({ x: left + p.x - 0.5, y: top + p.y - 0.5 });
    const keys: Record<string, string> = { brush: "b", eraser: "e", trace: "t", grow: "g", remove: "d", rethreshold: "k" };
    // The pointer starts where the simulated doctor's does: the image's centre.
    await page.mouse.move(at({ x: c.image.width / 2, y: c.image.height / 2 }).x, at({ x: c.image.width / 2, y: c.image.height / 2 }).y);
    for (const step of simulated.steps) {
      await page.keyboard.press(keys[step.tool]!);
      if (step.tool === "brush" || step.tool === "eraser" || step.tool === "rethreshold") {
        // The sliders, as the doctor sets them: brush size, and the threshold of the re-threshold brush.
        await page.evaluate(
          ([size, threshold]) => {
            const e = (window as unknown as { __medloopEditor: { setBrushSize(v: number): void; setThreshold(v: number): void } }).__medloopEditor;
            e.setBrushSize(size!);
            if (threshold !== null) e.setThreshold(threshold!);
          },
          [step.size!, step.threshold ?? null] as const,
        );
        await page.mouse.move(at(step.points[0]!).x, at(step.points[0]!).y);
        await page.mouse.down();
        for (const p of step.points.slice(1)) await page.mouse.move(at(p).x, at(p).y);
        await page.mouse.up();
      } else {
        for (const p of step.points) await page.mouse.click(at(p).x, at(p).y);
        if (step.tool === "trace") await page.keyboard.press("Enter");
      }
    }
    expect(differing(await pageMask(page), simulated.mask.data)).toBe(0);
    await shot(page, FILE, "03-replayed");
    await submit(page);
    const v = await storedVersion(pool, c.task.id);
    expect(differing((await maskOf(await blobs.get(v.uri), "stored")).data, simulated.mask.data)).toBe(0);
    expect(v.actions).toHaveLength(simulated.actions.length);
    v.actions.forEach((got, k) => {
      const want = simulated.actions[k]!;
      expect({ tool: got.tool, clicks: got.clicks, width_px: got.width_px }).toEqual({ tool: want.tool, clicks: want.clicks, width_px: want.width_px });
      expect(Math.abs(got.path_px - want.path_px)).toBeLessThanOrEqual(0.2);
      expect(Math.abs(got.travel_px - want.travel_px)).toBeLessThanOrEqual(0.2);
    });
    await close();
  });
});
