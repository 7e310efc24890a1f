// A lab lead in Chromium against the real stack (Temporal, the TypeScript worker, the API):
// creates a project, uploads an image and its reference mask by drag and drop with progress,
// then images and their masks from a separate folder with the same file names (masks dropped
// before and after their images), sees a drop with one stem twice refused by name, starts a
// campaign from the form (whose example count knows the seeds as soon as the page shows), and
// watches it live: the phase, the open tasks per doctor, pause, resume and stop, each answered
// by the running workflow.
import { readFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPool, type Pool } from "../../db/pool.js";
import { BlobStore } from "../../services/blobs.js";
import { importChase } from "../../services/imageImport.js";
import { CHASE_DIR, launchBrowser, login, shot, startUiStack, type UiStack } from "./helpers.js";

const FILE = "lead";

describe("lab lead in the browser", () => {
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

  it("creates a project, uploads by drag and drop, starts a campaign and follows it", async () => {
    const lead = ui.stack.demoUsers.find((u) => u.role === "lab_lead")!;
    const baseUrl = ui.stack.apiUrl;
    const context = await browser.browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("dialog", (d) => void d.accept());
    await login(page, baseUrl, lead.email, lead.password);
    await page.waitForSelector("h1:has-text('Projects')");

    await page.fill('input[name="name"]', "e2e campaign");
    await page.fill('input[name="description"]', "started from the browser");
    await page.click('button:has-text("Create project")');
    await page.waitForSelector('[data-testid="dropzone"]');
    const projectId = Number(/#\/projects\/(\d+)/.exec(page.url())![1]);
    await shot(page, FILE, "01-project-created");

    // Drop one seed image with its reference mask (named image + suffix) and a mask whose image
    // is missing; the bar reaches 100%, the server stores the pair, the orphan is not sent.
    const b64 = async (...parts: string[]) => (await readFile(path.join(CHASE_DIR, ...parts))).toString("base64");
    const dropped = [
      { name: "Image_01L.jpg", type: "image/jpeg", b64: await b64("images", "Image_01L.jpg") },
      { name: "Image_01L_1stHO.png", type: "image/png", b64: await b64("masks_1stHO", "Image_01L_1stHO.png") },
      { name: "Image_09R_1stHO.png", type: "image/png", b64: await b64("masks_1stHO", "Image_09R_1stHO.png") },
    ];
    await page.selectOption('[data-testid="dropzone"] select', "seed");
    await page.fill('[data-testid="mask-suffix"]', "_1stHO");
    const drop = async (zone: "dropzone" | "mask-dropzone", files: Array<{ name: string; type: string; b64: string }>) => {
      const transfer = await page.evaluateHandle((list) => {
        const dt = new DataTransfer();
        for (const f of list) dt.items.add(new File([Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0))], f.name, { type: f.type }));
        return dt;
      }, files);
      await page.dispatchEvent(`[data-testid="${zone}"]`, "drop", { dataTransfer: transfer });
    };
    await drop("dropzone", dropped);
    await page.waitForSelector('[data-testid="uploads"] :text("Image_01L.jpg: stored with its reference mask")');
    await page.waitForSelector('[data-testid="uploads"] .error:has-text("Image_09R_1stHO.png: not sent")');
    expect(await page.locator('[data-testid="uploads"] .progress > div').last().getAttribute("style")).toContain("100%");
    const stored = await pool.query<{ name: string; role: string; width: number; has_mask: boolean }>(
      "SELECT name, role, width, mask_uri IS NOT NULL AS has_mask FROM images WHERE project_id = $1",
      [projectId],
    );
    expect(stored.rows).toEqual([{ name: "Image_01L", role: "seed", width: 999, has_mask: true }]);

    // Masks from a separate folder with the same file names as their images, on the reference
    // masks zone. Dropped before their images they wait, and go with the images' drop; dropped
    // after, they are stored with the images already in the project.
    const image = async (stem: string) => ({ name: `${stem}.jpg`, type: "image/jpeg", b64: await b64("images", `${stem}.jpg`) });
    const sameNameMask = async (stem: string, ext = "png") => ({ name: `${stem}.${ext}`, type: "image/png", b64: await b64("masks_1stHO", `${stem}_1stHO.png`) });
    await page.selectOption('[data-testid="dropzone"] select', "pool");
    await drop("mask-dropzone", [await sameNameMask("Image_02R"), await sameNameMask("Image_03L")]);
    await page.waitForSelector('[data-testid="waiting-masks"]:has-text("2 masks wait for their images: Image_02R.png, Image_03L.png")');
    await drop("dropzone", [await image("Image_02R"), await image("Image_03L"), await image("Image_06L")]);
    await page.waitForSelector('[data-testid="uploads"] :text-is("Image_02R.jpg: stored with its reference mask")');
    await page.waitForSelector('[data-testid="uploads"] :text-is("Image_03L.jpg: stored with its reference mask")');
    await page.waitForSelector('[data-testid="uploads"] :text-is("Image_06L.jpg: stored")');
    expect(await page.locator('[data-testid="waiting-masks"]').textContent()).toBe("");
    await drop("mask-dropzone", [await sameNameMask("Image_06L")]);
    await page.waitForSelector('[data-testid="uploads"] :text-is("Image_06L.png: stored as the reference mask of Image_06L")');
    // One stem twice in a drop, on either zone: refused by name, nothing of it sent.
    await drop("dropzone", [await image("Image_07L"), await sameNameMask("Image_07L")]);
    await page.waitForSelector('[data-testid="uploads"] .error:has-text(\'Nothing sent: image stem "Image_07L" has 2 files: Image_07L.jpg, Image_07L.png\')');
    await drop("mask-dropzone", [await sameNameMask("Image_02R"), await sameNameMask("Image_02R", "tif")]);
    await page.waitForSelector('[data-testid="uploads"] .error:has-text(\'Nothing sent: mask stem "Image_02R" has 2 files: Image_02R.png, Image_02R.tif\')');
    await shot(page, FILE, "02-separate-masks");
    const withMasks = await pool.query<{ name: string; role: string; has_mask: boolean; mask_sha256: string | null }>(
      "SELECT name, role, mask_uri IS NOT NULL AS has_mask, mask_sha256 FROM images WHERE project_id = $1 ORDER BY name",
      [projectId],
    );
    expect(withMasks.rows.map((r) => [r.name, r.role, r.has_mask])).toEqual([
      ["Image_01L", "seed", true],
      ["Image_02R", "pool", true],
      ["Image_03L", "pool", true],
      ["Image_06L", "pool", true],
    ]);
    // Each stored mask is its own image's (three different masks).
    expect(new Set(withMasks.rows.slice(1).map((r) => r.mask_sha256)).size).toBe(3);

    // The rest of a tiny CHASE_DB1 set (with reference masks) as the importer brings it.
    const leadId = (await pool.query<{ id: number }>("SELECT id FROM users WHERE email = $1", [lead.email])).rows[0]!.id;
    await importChase({ pool, blobs: new BlobStore(ui.blobRoot) }, projectId, CHASE_DIR, leadId, ["Image_01R.jpg", "Image_04L.jpg", "Image_05L.jpg", "Image_11L.jpg"]);
    await page.reload();
    await page.waitForSelector('[data-testid="image-counts"]:has-text("8 images: 2 seed, 5 pool, 1 test")');
    await shot(page, FILE, "03-images-uploaded");
    // The form knows the seeds once the images have loaded, before anything in it is touched
    // (it used to say "0 seeds → 0 examples" until a field was edited): 2 × 4 flips × 11 crops.
    await page.waitForSelector('[data-testid="augment-summary"]:has-text("2 seeds → 88 examples")');

    // Start a tiny campaign from the form.
    const form = page.locator('[data-testid="campaign-form"]');
    await form.locator('input[name="name"]').fill("tiny");
    await form.locator('input[name="k"]').fill("1");
    await form.locator('input[name="maxRounds"]').fill("1");
    await form.locator('input[name="minutes"]').fill("0.2");
    await form.locator('input[name="epochs"]').fill("1");
    await form.locator('input[name="random_crop.size"]').fill("128x128");
    await form.locator('input[name="random_crop.count"]').fill("2");
    expect(await page.locator('[data-testid="augment-summary"]').textContent()).toContain("2 seeds → 16 examples");
    await page.click('[data-testid="preview-augment"]');
    await page.waitForSelector('[data-testid="augment-preview"] canvas');
    expect(await page.locator('[data-testid="augment-preview"] canvas').count()).toBe(8);
    await shot(page, FILE, "04-campaign-form");
    await page.click('[data-testid="start-campaign"]');
    await page.waitForURL(/#\/campaigns\/\d+$/);
    const campaignId = Number(/#\/campaigns\/(\d+)/.exec(page.url())![1]);
    const row = await pool.query<{ config: { k: number; augmentation: { steps: Array<{ op: string; size?: number[] }> }; train: Record<string, number> } }>(
      "SELECT config FROM campaigns WHERE id = $1",
      [campaignId],
    );
    expect(row.rows[0]!.config.k).toBe(1);
    expect(row.rows[0]!.config.train).toEqual({ minutes: 0.2 });
    expect(row.rows[0]!.config.augmentation.steps[1]).toMatchObject({ op: "random_crop", size: [128, 128] });

    // Live: the workflow enters the seeding phase and the seed tasks go out to the doctors.
    await page.waitForSelector('[data-testid="campaign-phase"]:has-text("seeding")', { timeout: 60_000 });
    await page.waitForSelector('[data-testid="open-tasks"] td:has-text("Dr.")', { timeout: 60_000 });
    const openTasks = await page.locator('[data-testid="open-tasks"] h2').textContent();
    expect(openTasks).toMatch(/Open tasks \(2 of 2\)/);
    await shot(page, FILE, "05-campaign-seeding");

    await page.click('button:has-text("Pause")');
    await page.waitForSelector('button:has-text("Resume"):not([disabled])', { timeout: 30_000 });
    await shot(page, FILE, "06-campaign-paused");
    await page.click('button:has-text("Resume")');
    await page.waitForSelector('button:has-text("Pause"):not([disabled])', { timeout: 30_000 });

    await page.click('button:has-text("Stop")');
    await page.waitForSelector('[data-testid="campaign-state"]:has-text("stopped")', { timeout: 60_000 });
    await shot(page, FILE, "07-campaign-stopped");
    expect(errors).toEqual([]);
    await context.close();
  });
});
