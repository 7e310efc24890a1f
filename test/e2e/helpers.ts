// Shared parts of the browser tests: the UI built with Vite, the real stack (`medloop
// start`'s code) on a throw-away database and a temporary data folder, Debian's Chromium
// through playwright-core, screenshots under test/screenshots/.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { build } from "vite";
import { startStack, type Stack } from "../../stack/stack.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

export const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
export const screenshotDir = path.join(repoRoot, "test", "screenshots");
export const CHROMIUM = process.env.MEDLOOP_CHROMIUM ?? "/usr/bin/chromium";

export interface UiStack {
  stack: Stack;
  db: TestDatabase;
  dataDir: string;
  blobRoot: string;
  close(): Promise<void>;
}

/** Builds web/dist (the API serves it) so the test runs the UI as it is now. */
export async function buildUi(): Promise<void> {
  await build({ configFile: path.join(repoRoot, "web", "vite.config.ts"), logLevel: "warn" });
}

export async function startUiStack(opts: { gpuWorker?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<UiStack> {
  await buildUi();
  const db = await createTestDatabase({ migrated: false });
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "medloop-e2e-"));
  const lines: string[] = [];
  let stack: Stack;
  try {
    stack = await startStack({
      dataDir,
      databaseUrl: db.url,
      gpuWorker: opts.gpuWorker ?? false,
      env: opts.env,
      // Keep the children's output for a failure report instead of flooding the test log.
      log: (line) => {
        lines.push(line);
        if (lines.length > 400) lines.shift();
      },
    });
  } catch (err) {
    console.error(lines.slice(-60).join("\n"));
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    stack,
    db,
    dataDir,
    blobRoot: path.join(dataDir, "blobs"),
    async close() {
      await stack.stop();
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Chromium with a new, empty profile (playwright's launch makes a temporary one per browser). */
export async function launchBrowser(): Promise<{ browser: Browser; close(): Promise<void> }> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
    ],
  });
  return {
    browser,
    async close() {
      await browser.close();
    },
  };
}

/** Saves a full-page screenshot as test/screenshots/<file>-<step>.png. */
export async function shot(page: Page, file: string, step: string): Promise<void> {
  await mkdir(screenshotDir, { recursive: true });
  await page.screenshot({ path: path.join(screenshotDir, `${file}-${step}.png`), fullPage: true });
}

export async function login(page: Page, baseUrl: string, email: string, password: string): Promise<void> {
  await page.goto(`${baseUrl}/#/login`);
  await page.fill('input[name="email"]', email);
  await page.fill('input[name="password"]', password);
  await page.click('button[type="submit"]');
  await page.waitForSelector('[data-testid="whoami"]');
}

export const CHASE_DIR = path.resolve(repoRoot, process.env.MEDLOOP_CHASE_DIR ?? "../shared/data/chase_db1");

export interface CpuBurners {
  count: number;
  /** How many are still running (a test checks the load lasted). */
  alive(): number;
  stop(): Promise<void>;
}

/**
 * Busy-looping Node processes beside the browser, one per core unless told: the machine a doctor
 * submits from may be loaded, and a submission must not depend on the page being quick. Always
 * `stop()` them in a `finally`; each is killed by its own pid.
 */
export async function startCpuBurners(count = Math.max(1, os.availableParallelism())): Promise<CpuBurners> {
  const children: ChildProcess[] = [];
  const started = (child: ChildProcess) =>
    new Promise<void>((resolve, reject) => {
      child.once("spawn", () => resolve());
      child.once("error", reject);
    });
  try {
    for (let i = 0; i < count; i++) {
      const child = spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" });
      children.push(child);
      await started(child);
    }
  } catch (err) {
    for (const child of children) child.kill("SIGKILL");
    throw err;
  }
  return {
    count,
    alive: () => children.filter((c) => c.exitCode === null && c.signalCode === null).length,
    async stop() {
      await Promise.all(
        children.map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve();
              child.once("exit", () => resolve());
              child.kill("SIGKILL");
            }),
        ),
      );
    },
  };
}

/** The editor's mask in the page, as bytes (one 0/1 byte per pixel). */
export async function pageMask(page: Page): Promise<Uint8Array> {
  const b64 = await page.evaluate(() => {
    const e = (window as unknown as { __medloopEditor: { mask: { data: Uint8Array } } }).__medloopEditor;
    let s = "";
    const d = e.mask.data;
    for (let i = 0; i < d.length; i += 0x8000) s += String.fromCharCode(...d.subarray(i, i + 0x8000));
    return btoa(s);
  });
  return new Uint8Array(Buffer.from(b64, "base64"));
}

/** Pixels that differ between two masks of the same size (a size mismatch throws). */
export function differing(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new Error(`masks of ${a.length} and ${b.length} pixels`);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}
