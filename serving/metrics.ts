// Prometheus metrics of the serving endpoints, on a registry of their own so that two routers in
// one process (tests, API + serving) never clash over metric names.
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface ServingMetrics {
  registry: Registry;
  requests: Counter<"model" | "endpoint" | "status">;
  errors: Counter<"model" | "endpoint" | "reason">;
  latency: Histogram<"model" | "endpoint">;
}

export function createMetrics(opts: { processMetrics?: boolean } = {}): ServingMetrics {
  const registry = new Registry();
  if (opts.processMetrics) collectDefaultMetrics({ register: registry });
  return {
    registry,
    requests: new Counter({
      name: "medloop_serving_requests_total",
      help: "Serving requests by model, endpoint and HTTP status",
      labelNames: ["model", "endpoint", "status"],
      registers: [registry],
    }),
    errors: new Counter({
      name: "medloop_serving_errors_total",
      help: "Serving requests answered with an error, by reason",
      labelNames: ["model", "endpoint", "reason"],
      registers: [registry],
    }),
    latency: new Histogram({
      name: "medloop_serving_request_duration_seconds",
      help: "Time from request to response, by model and endpoint",
      labelNames: ["model", "endpoint"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
  };
}
