// Serving inside the API process: one router for every deployment in the registry, loaded on
// first use. The API mounts `router` at its root (paths /v2/…, /v1/models/…, /metrics).
import type { RateLimitOptions } from "./rateLimit.js";
import { registryProvider, type RegistryDeps } from "./registry.js";
import { createServingRouter } from "./server.js";

export { deployModel, createApiKey, listApiKeys, revokeApiKey, getDeploymentVersion, listDeploymentVersions } from "./registry.js";

export interface DeploymentServingOptions {
  rateLimit?: RateLimitOptions;
  maxPixels?: number;
  /** onnxruntime threads per loaded model (default: all cores). */
  threads?: number;
  /** How long a verified key is trusted before the database is asked again (default 5 s). */
  keyCacheMs?: number;
}

export function deploymentServing(deps: RegistryDeps, opts: DeploymentServingOptions = {}) {
  const provider = registryProvider(deps, { threads: opts.threads, keyCacheMs: opts.keyCacheMs });
  const { router, metrics } = createServingRouter({
    provider,
    ...(opts.rateLimit ? { rateLimit: opts.rateLimit } : {}),
    ...(opts.maxPixels ? { maxPixels: opts.maxPixels } : {}),
  });
  return { router, metrics, close: () => provider.close() };
}
