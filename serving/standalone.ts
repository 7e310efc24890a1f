// One deployment served by a process of its own (`medloop serve-model`): the serving router on
// its own port with process metrics, the model loaded before readiness turns true.
import express from "express";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createMetrics } from "./metrics.js";
import type { RateLimitOptions } from "./rateLimit.js";
import { getDeploymentVersion, registryProvider, type RegistryDeps } from "./registry.js";
import { createServingRouter } from "./server.js";

export interface StandaloneOptions {
  deployment: string;
  host?: string;
  port?: number;
  threads?: number;
  rateLimit?: RateLimitOptions;
  maxPixels?: number;
}

export interface RunningServer {
  url: string;
  version: number;
  provider: string;
  close(): Promise<void>;
}

export async function startModelServer(deps: RegistryDeps, opts: StandaloneOptions): Promise<RunningServer> {
  const current = await getDeploymentVersion(deps.pool, opts.deployment); // fails early on a wrong name
  const provider = registryProvider(deps, { only: [opts.deployment], threads: opts.threads });
  const { router } = createServingRouter({
    provider,
    metrics: createMetrics({ processMetrics: true }),
    ...(opts.rateLimit ? { rateLimit: opts.rateLimit } : {}),
    ...(opts.maxPixels ? { maxPixels: opts.maxPixels } : {}),
  });
  const app = express();
  app.disable("x-powered-by");
  app.use(router);
  app.use((_req, res) => void res.status(404).json({ error: "no such endpoint" }));
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(opts.port ?? 8500, opts.host ?? "127.0.0.1", () => resolve(s));
    s.once("error", reject);
  });
  // Clients keep connections alive while requests queue behind inference: do not close an idle
  // connection sooner than a busy server answers (Node's 5 s default races with the client).
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  await provider.preload();
  const served = await provider.resolve(opts.deployment);
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${opts.host ?? "127.0.0.1"}:${port}`,
    version: current.version,
    provider: served.model.provider,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await provider.close();
    },
  };
}
