// Brush-stroke render time of the web editor in Chromium on a 999×960 CHASE_DB1 image.
// Drives real mouse strokes through playwright-core and records, per rendered frame, the
// editor's work for that frame's input events, the repaint, and the latency from the first
// event to the painted frame. Writes benchmarks/results/ui_stroke.json.
//   npx tsx benchmarks/ui_stroke.ts
import { mkdir, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { createServer } from "vite";

const root = fileURLToPath(new URL("..", import.meta.url));
const chase = path.resolve(root, process.env.MEDLOOP_CHASE_DIR ?? "../shared/data/chase_db1");
const STROKES = 6;
const MOVES_PER_STROKE = 120;

interface Frame {
  handleMs: number;
  paintMs: number;
  latencyMs: number;
  events: number;
}

function stats(values: number[]) {
  const s = [...values].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * (s.length - 1)))]!;
  const r = (v: number) => Math.round(v * 1000) / 1000;
  return { n: s.length, median: r(q(0.5)), p95: r(q(0.95)), max: r(s[s.length - 1] ?? 0), mean: r(s.reduce((a, b) => a + b, 0) / Math.max(1, s.length)) };
}

async function main(): Promise<void> {
  const server = await createServer({ configFile: path.join(root, "web", "vite.config.ts"), server: { port: 0, strictPort: false }, logLevel: "error" });
  await server.listen();
  const address = server.httpServer!.address() as { port: number };
  const browser = await chromium.launch({
    executablePath: process.env.MEDLOOP_CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
  });
  const image = (await readFile(path.join(chase, "images", "Image_01L.jpg"))).toString("base64");
  const cases: Array<{ view: "fit" | "zoom4"; brush: number }> = [
    { view: "fit", brush: 8 },
    { view: "fit", brush: 40 },
    { view: "zoom4", brush: 8 },
  ];
  const results = [];
  try {
    for (const c of cases) {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await page.goto(`http://127.0.0.1:${address.port}/bench/ui-stroke.html`);
      await page.waitForFunction(() => document.title === "ready");
      await page.evaluate(([img, view, brush]) => (window as unknown as { benchSetup: (a: string, b: string, c: number) => Promise<void> }).benchSetup(img, view, brush), [image, c.view, c.brush] as [string, string, number]);
      for (let s = 0; s < STROKES; s++) {
        const y = 150 + s * 110;
        await page.mouse.move(200, y);
        await page.mouse.down();
        for (let i = 1; i <= MOVES_PER_STROKE; i++) {
          await page.mouse.move(200 + i * 7, y + Math.sin(i / 10) * 40);
        }
        await page.mouse.up();
      }
      await page.waitForTimeout(100);
      const frames = await page.evaluate(() => (window as unknown as { benchResults: () => Frame[] }).benchResults());
      const work = frames.map((f) => f.handleMs + f.paintMs);
      results.push({
        view: c.view,
        brush_size: c.brush,
        frames: frames.length,
        events: frames.reduce((a, f) => a + f.events, 0),
        handle_ms: stats(frames.map((f) => f.handleMs)),
        paint_ms: stats(frames.map((f) => f.paintMs)),
        work_per_frame_ms: stats(work),
        event_to_painted_ms: stats(frames.map((f) => f.latencyMs)),
        frames_with_work_within_16ms: Math.round((work.filter((w) => w <= 16).length / Math.max(1, work.length)) * 1000) / 1000,
      });
      await page.close();
    }
  } finally {
    await browser.close();
    await server.close();
  }
  const out = {
    benchmark: "ui_stroke",
    description: "Brush strokes on a 999×960 image in the web editor: per frame, editor work (stamping + layer recolour) and repaint of the dirty rectangle",
    image: "CHASE_DB1 Image_01L (999×960)",
    viewport: "1280×900 CSS px, device pixel ratio 1",
    browser: `${browser.version()} (Debian chromium, headless, --disable-gpu: software canvas)`,
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? "unknown" },
    strokes_per_case: STROKES,
    moves_per_stroke: MOVES_PER_STROKE,
    measured_at: new Date().toISOString(),
    results,
  };
  await mkdir(path.join(root, "benchmarks", "results"), { recursive: true });
  await writeFile(path.join(root, "benchmarks", "results", "ui_stroke.json"), `${JSON.stringify(out, null, 2)}\n`);
  console.log(JSON.stringify(results, null, 2));
}

await main();
