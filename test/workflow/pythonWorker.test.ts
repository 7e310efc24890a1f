// worker/pythonWorker.ts against a real server: the Python gpu worker starts, polls the
// `gpu` task queue, and stops cleanly on stop() (SIGINT: it hands back running work).
import type { TestWorkflowEnvironment } from "@temporalio/testing";
import { afterAll, beforeAll, expect, it } from "vitest";
import { spawnPythonWorker, type PythonWorker } from "../../worker/pythonWorker.js";
import { createTimeSkippingEnv } from "./helpers.js";

let env: TestWorkflowEnvironment;
let worker: PythonWorker | null = null;
beforeAll(async () => {
  env = await createTimeSkippingEnv();
});
afterAll(async () => {
  await worker?.stop(5000);
  await env?.teardown();
});

it("spawns the Python worker on the gpu task queue and stops it gracefully", async () => {
  const lines: string[] = [];
  worker = spawnPythonWorker({ address: env.address, log: (line) => lines.push(line) });
  for (let i = 0; i < 1200 && !lines.some((l) => l.includes("gpu worker serving task queue 'gpu'")); i++) {
    if (worker.child.exitCode !== null) throw new Error(`the Python worker exited early:\n${lines.join("\n")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(lines.join("\n")).toContain(`gpu worker serving task queue 'gpu' on ${env.address}`);
  await worker.stop(30_000);
  expect(await worker.exited).toBe(0);
  expect(lines.join("\n")).toContain("gpu worker stopped");
});
