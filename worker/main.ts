// The TypeScript worker: the workflows (workflows/index.ts) and the TypeScript activities
// on the task queue `medloop`. Run as `node --import tsx worker/main.ts` (the embedded
// stack does); settings come from the environment (services/config.ts).
import path from "node:path";
import { fileURLToPath } from "node:url";
import { NativeConnection, Worker, type WorkerOptions } from "@temporalio/worker";
import { createAugmentActivities } from "../activities/augment.js";
import { createNotifyActivities } from "../activities/notify.js";
import { createReportActivities } from "../activities/report.js";
import { selectActivities } from "../activities/select.js";
import { createStoreActivities } from "../activities/store.js";
import { createPool, type Pool } from "../db/pool.js";
import { BlobStore } from "../services/blobs.js";
import { loadConfig } from "../services/config.js";
import { Mailer, linkSecret } from "../services/mail.js";
import { pgTaskLinkStore, type TaskLinkStore } from "../services/taskLinks.js";
import { TASK_QUEUE } from "../workflows/types.js";

/** The one name of the TypeScript task queue (defined with the workflow types). */
export { TASK_QUEUE };

export const workflowsPath = fileURLToPath(new URL("../workflows/index.ts", import.meta.url));

export interface ActivityDeps {
  pool: Pool;
  blobs: BlobStore;
  mailer: Mailer;
  linkSecret: string;
  /** Where task links point (config.publicUrl, MEDLOOP_PUBLIC_URL). */
  baseUrl: string;
  /** How long a task link stays valid (config.taskLinkTtlSeconds); default 7 days. */
  linkTtlSeconds?: number;
  /** Where task links are recorded; default PostgreSQL through `pool`. */
  taskLinks?: TaskLinkStore;
}

/** Every TypeScript activity, bound to its dependencies. */
export function buildActivities(deps: ActivityDeps) {
  return {
    ...createStoreActivities({ pool: deps.pool, blobs: deps.blobs }),
    ...createAugmentActivities(deps.blobs),
    ...createNotifyActivities({
      mailer: deps.mailer,
      linkSecret: deps.linkSecret,
      baseUrl: deps.baseUrl,
      links: deps.taskLinks ?? pgTaskLinkStore(deps.pool),
      linkTtlSeconds: deps.linkTtlSeconds,
    }),
    ...createReportActivities(deps.blobs),
    ...selectActivities,
  };
}

export async function createMedloopWorker(
  connection: NativeConnection,
  activities: object,
  options: Partial<WorkerOptions> = {},
): Promise<Worker> {
  return Worker.create({
    connection,
    namespace: loadConfig().temporalNamespace,
    taskQueue: TASK_QUEUE,
    workflowsPath,
    activities,
    // Augmentation is CPU-bound: a few at a time keep the machine responsive.
    maxConcurrentActivityTaskExecutions: 8,
    shutdownGraceTime: "10 seconds",
    ...options,
  });
}

async function main(): Promise<void> {
  const config = loadConfig();
  if (!config.databaseUrl) throw new Error("MEDLOOP_DATABASE_URL is not set (the embedded stack sets it)");
  const pool = createPool(config.databaseUrl, 5);
  const mailer = new Mailer({ smtpUrl: config.smtpUrl, outboxDir: config.outboxDir });
  if (!config.publicUrlConfigured) {
    console.warn(`[worker] MEDLOOP_PUBLIC_URL is not set: task links point to ${config.publicUrl}, which opens only on this machine`);
  }
  const connection = await NativeConnection.connect({ address: config.temporalAddress });
  const worker = await createMedloopWorker(
    connection,
    buildActivities({
      pool,
      blobs: new BlobStore(config.blobRoot),
      mailer,
      linkSecret: await linkSecret(config.dataDir),
      baseUrl: config.publicUrl,
      linkTtlSeconds: config.taskLinkTtlSeconds,
    }),
  );
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => worker.shutdown());
  console.log(`[worker] task queue ${TASK_QUEUE} on ${config.temporalAddress}`);
  try {
    await worker.run();
  } finally {
    await connection.close();
    mailer.close();
    await pool.end();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(`[worker] ${(err as Error).message}`);
    process.exit(1);
  });
}
