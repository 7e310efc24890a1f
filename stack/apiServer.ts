// The API process: DATA's Express app (api/app.ts) with its real dependencies (the
// PostgreSQL pool, the blob store, the Temporal client), plus the built web UI
// (web/dist) when there is one. Run by the embedded stack and by docker-compose's `api`.
// Settings: docs/architecture.md; MEDLOOP_PORT is the port (default 8080).
import { existsSync } from "node:fs";
import path from "node:path";
import type { Server } from "node:http";
import express from "express";
import { createApp } from "../api/app.js";
import { createPool } from "../db/pool.js";
import { BlobStore } from "../services/blobs.js";
import { loadConfig } from "../services/config.js";
import { linkSecret } from "../services/mail.js";
import { deploymentServing } from "../serving/index.js";
import { campaignWorkflows, connectTemporal, reviewNotifier, submissionNotifier } from "../services/temporal.js";

async function main(): Promise<void> {
  const config = loadConfig();
  if (!config.databaseUrl) throw new Error("MEDLOOP_DATABASE_URL is not set (medloop start sets it for the API)");
  const port = Number(process.env.MEDLOOP_PORT || 8080);
  const pool = createPool(config.databaseUrl);
  const temporal = await connectTemporal(config.temporalAddress, config.temporalNamespace);
  const blobs = new BlobStore(config.blobRoot);
  // Approved models are served by the API process itself (/v2/…, /v1/models/…, /metrics).
  const serving = deploymentServing({ pool, blobs });
  const app = createApp({
    pool,
    blobs,
    serving,
    config,
    campaigns: campaignWorkflows(temporal),
    notifySubmission: submissionNotifier(temporal),
    notifyReview: reviewNotifier(temporal),
    linkSecret: await linkSecret(config.dataDir),
  });
  serveWebUi(app, path.join(config.repoRoot, "web", "dist"));
  const server = app.listen(port, "0.0.0.0");
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  console.log(`API listening on http://127.0.0.1:${port}/api (models: /v2, /v1/models, metrics: /metrics)`);
  const stop = async () => {
    await closeServer(server);
    await serving.close();
    await temporal.connection.close();
    await pool.end();
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop());
  process.once("SIGINT", () => void stop());
}

/** The single-page UI: static files, and index.html for every other non-API path. */
function serveWebUi(app: express.Express, dist: string): void {
  const index = path.join(dist, "index.html");
  if (!existsSync(index)) return;
  app.use(express.static(dist, { index: "index.html" }));
  app.use((req, res, next) => {
    if (req.method !== "GET" || req.path.startsWith("/api")) return next();
    res.sendFile(index);
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Open keep-alive connections would hold close() back.
    server.closeIdleConnections();
  });
}

main().catch((err: unknown) => {
  console.error(`api: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
