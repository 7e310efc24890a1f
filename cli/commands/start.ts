// `medloop start [--data DIR] [--port N]`: the embedded stack in the foreground.
// Ctrl-C (or SIGTERM) stops every part cleanly in reverse order; starting again on the
// same data folder resumes every campaign where it was.
import path from "node:path";
import { loadConfig } from "../../services/config.js";
import { startStack, type Stack } from "../../stack/stack.js";
import { guard, intOption, parse } from "../args.js";

export const summary = "start the whole system (Temporal, PostgreSQL, workers, API) on one data folder";

const usage = `usage: medloop start [--data DIR] [--port N] [--temporal-port N] [--no-gpu-worker]
  --data DIR          state folder (default: $MEDLOOP_DATA_DIR or .data)
  --port N            API and UI port (default 8080, or a free one; 0: any free port)
  --temporal-port N   Temporal frontend port (default 7233, or a free one)
  --no-gpu-worker     do not start the Python gpu worker (another machine serves the gpu queue)`;

export async function run(argv: string[]): Promise<number> {
  return guard("start", usage, async () => {
    const { values } = parse(argv, {
      data: { type: "string" },
      port: { type: "string" },
      "temporal-port": { type: "string" },
      "no-gpu-worker": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    const dataDir = values.data ? path.resolve(values.data) : loadConfig().dataDir;
    // Ctrl-C during start-up stops the parts already started instead of orphaning them.
    const interrupt = new AbortController();
    const onSignal = () => interrupt.abort();
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    process.once("SIGHUP", onSignal);
    const stack = await startStack({
      signal: interrupt.signal,
      dataDir,
      port: intOption("--port", values.port, 8080, 0),
      temporalPort: intOption("--temporal-port", values["temporal-port"], 7233, 0),
      gpuWorker: !values["no-gpu-worker"],
    }).finally(() => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      process.off("SIGHUP", onSignal);
    });
    printBanner(stack);
    return waitForShutdown(stack);
  });
}

function printBanner(stack: Stack): void {
  const lines = [
    "",
    `medloop is running (data folder ${stack.dataDir})`,
    `  UI and API   ${stack.apiUrl}   (OpenAPI document: ${stack.apiUrl}/api/openapi.json)`,
    `  Temporal     ${stack.temporalAddress}`,
    "  demo users (password in the last column):",
    ...stack.demoUsers.map((u) => `    ${u.role.padEnd(9)} ${u.email.padEnd(26)} ${u.password}`),
    ...(stack.demoProject ? [`  demo project "${stack.demoProject}" (CHASE_DB1) is ready for a campaign`] : []),
    "Press Ctrl-C to stop; `medloop start` again resumes where it was.",
    "",
  ];
  console.log(lines.join("\n"));
}

/** Runs until Ctrl-C / SIGTERM (exit 0) or until a part of the stack dies (exit 1). */
async function waitForShutdown(stack: Stack): Promise<number> {
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
    // A closed terminal: our children run in their own process groups and would not hear it.
    process.once("SIGHUP", () => resolve("SIGHUP"));
  });
  const outcome = await Promise.race([signalled.then((s) => ({ signal: s })), stack.crashed.then((c) => ({ crash: c }))]);
  if ("signal" in outcome) {
    console.log(`\n[stack] ${outcome.signal}: stopping (API, workers, PostgreSQL, Temporal)…`);
    // A second Ctrl-C while stopping should not kill us half-way; say so instead.
    process.on("SIGINT", () => console.log("[stack] still stopping; children are being shut down in order"));
    await stack.stop();
    console.log("[stack] stopped");
    return 0;
  }
  console.error(`[stack] ${outcome.crash.name} died; stopping the rest`);
  await stack.stop();
  return 1;
}
