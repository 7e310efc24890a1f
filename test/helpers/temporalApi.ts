// The test API wired to a real Temporal dev server (the `temporal` CLI in .venv) and the
// TypeScript worker with its real activities over the test database: what the API tests of
// campaigns share. No Python worker: gpu activities are not served.
import path from "node:path";
import { TestWorkflowEnvironment } from "@temporalio/testing";
import { repoRoot } from "../../services/config.js";
import { Mailer } from "../../services/mail.js";
import { campaignWorkflows, reviewNotifier, submissionNotifier } from "../../services/temporal.js";
import { buildActivities, createMedloopWorker } from "../../worker/main.js";
import { startTestApi, type TestApi } from "./api.js";

export interface TemporalTestApi {
  env: TestWorkflowEnvironment;
  api: TestApi;
  /** Shuts the worker down once every activity in flight has finished (idempotent). */
  drainWorker(): Promise<void>;
  /** Drains the worker, then stops the Temporal server and the API. */
  close(): Promise<void>;
}

export async function startTemporalTestApi(linkSecret: string): Promise<TemporalTestApi> {
  const env = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: "existing-path", path: path.join(repoRoot, ".venv", "bin", "temporal") }, ip: "127.0.0.1" },
  });
  const api = await startTestApi({
    campaigns: campaignWorkflows(env.client),
    notifySubmission: submissionNotifier(env.client),
    notifyReview: reviewNotifier(env.client),
    linkSecret,
  });
  const mailer = new Mailer({ smtpUrl: null, outboxDir: api.deps.config.outboxDir });
  const worker = await createMedloopWorker(
    env.nativeConnection,
    buildActivities({ pool: api.db.pool, blobs: api.deps.blobs, mailer, linkSecret, baseUrl: "http://ui.test/" }),
  );
  const running = worker.run();
  let drained: Promise<void> | null = null;
  const drainWorker = () => {
    if (!drained) {
      worker.shutdown();
      drained = running;
    }
    return drained;
  };
  return {
    env,
    api,
    drainWorker,
    async close() {
      await drainWorker().catch(() => undefined);
      await env.teardown();
      await api.close();
    },
  };
}
