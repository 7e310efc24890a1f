// The embedded stack of `medloop start`: Temporal dev server → PostgreSQL →
// migrations → TypeScript worker → Python gpu worker → API, then the demo project and
// users. Every bit of state lives in the data folder (Temporal's SQLite file, the
// PostgreSQL cluster, blobs, outbox), so starting again on the same folder resumes
// every campaign where it was.
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { loadConfig, repoRoot as defaultRepoRoot } from "../services/config.js";
import { createPool } from "../db/pool.js";
import { migrate } from "../db/migrate.js";
import { Supervisor, type ChildExit, type LogSink } from "./processes.js";
import { clearChildren, recordChild, stopLeftovers } from "./leftovers.js";
import { startTemporal } from "./temporalServer.js";
import { startPostgres } from "./postgres.js";
import { preferredPort, waitFor } from "./ports.js";
import { seedDemoProject, seedDemoUsersForStack, type DemoUser } from "./demo.js";
import { BlobStore } from "../services/blobs.js";
import { pythonWorkerCommand } from "../worker/pythonWorker.js";

export interface StackOptions {
  dataDir: string;
  /** API (and UI) port; 8080 when free, else any free port. */
  port?: number;
  /** Temporal frontend port; 7233 when free, else any free port. */
  temporalPort?: number;
  /** A PostgreSQL URL to use instead of the embedded server (default: MEDLOOP_DATABASE_URL). */
  databaseUrl?: string;
  /** Extra environment for every child (e.g. MEDLOOP_SMTP_URL in tests). */
  env?: NodeJS.ProcessEnv;
  /** Start the Python gpu worker (default true). */
  gpuWorker?: boolean;
  /** Create the demo users (default true). */
  demo?: boolean;
  /** Create the demo project with CHASE_DB1 when the data set is there (default true). */
  demoProject?: boolean;
  log?: LogSink;
  repoRoot?: string;
  /** Aborting during start-up stops what has started and rejects. */
  signal?: AbortSignal;
}

export interface StackInfo {
  pid: number;
  dataDir: string;
  apiUrl: string;
  temporalAddress: string;
  databaseUrl: string;
  startedAt: string;
}

export interface Stack extends StackInfo {
  demoUsers: DemoUser[];
  demoProject: string | null;
  /** Resolves when a child exits without being asked to. */
  crashed: Promise<ChildExit>;
  stop(): Promise<void>;
}

export const STACK_FILE = "stack.json";

/** The stack running on a data folder, if its process is still alive. */
export async function runningStack(dataDir: string): Promise<StackInfo | null> {
  const file = path.join(dataDir, STACK_FILE);
  if (!existsSync(file)) return null;
  const info = JSON.parse(await readFile(file, "utf8")) as StackInfo;
  return processAlive(info.pid) ? info : null;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export async function startStack(options: StackOptions): Promise<Stack> {
  const dataDir = path.resolve(options.dataDir);
  const root = options.repoRoot ?? defaultRepoRoot;
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  await mkdir(dataDir, { recursive: true });
  const other = await runningStack(dataDir);
  if (other) throw new Error(`a stack (pid ${other.pid}) already runs on ${dataDir}: ${other.apiUrl}`);

  await stopLeftovers(dataDir, log);
  const supervisor = new Supervisor(log);
  // Recorded so that a stack started after this one was killed can stop its orphans.
  let pidsWritten = Promise.resolve();
  supervisor.onStart((name, pid) => {
    pidsWritten = pidsWritten.then(() => recordChild(dataDir, name, pid)).catch(() => undefined);
  });
  let crashedResolve: (exit: ChildExit) => void = () => undefined;
  const crashed = new Promise<ChildExit>((resolve) => (crashedResolve = resolve));
  supervisor.onCrash((exit) => crashedResolve(exit));
  const stopAll = async () => {
    await supervisor.stopAll();
    await pidsWritten;
    await clearChildren(dataDir);
    await rm(path.join(dataDir, STACK_FILE), { force: true });
  };

  const step = (message: string) => {
    if (options.signal?.aborted) throw new Error("start-up interrupted");
    log(`[stack] ${message}`);
  };
  try {
    step("starting the Temporal dev server");
    const temporal = await startTemporal(supervisor, { dataDir, repoRoot: root, port: options.temporalPort });
    step(`Temporal at ${temporal.address}; starting PostgreSQL`);
    const postgres = await startPostgres(supervisor, { dataDir, databaseUrl: options.databaseUrl });
    step(`PostgreSQL at ${redact(postgres.databaseUrl)}; migrating`);
    const env0 = childEnv(options.env, dataDir, postgres.databaseUrl, temporal.address);
    const seeded = await migrateAndSeed(postgres.databaseUrl, env0, options, log);
    // The API port is chosen before the workers start: their e-mails link to it.
    const port = await preferredPort(options.port ?? 8080, "0.0.0.0");
    const env = { ...env0, MEDLOOP_PORT: String(port) };
    const node = (name: string, entry: string, extra: NodeJS.ProcessEnv = {}) =>
      supervisor.start({
        name,
        command: process.execPath,
        args: ["--import", "tsx", path.join(root, entry)],
        cwd: root,
        env: { ...env, ...extra },
        stopTimeoutMs: 20_000,
      });
    step("starting the TypeScript worker");
    node("worker", "worker/main.ts");
    if (options.gpuWorker ?? true) {
      step("starting the Python gpu worker");
      supervisor.start(gpuWorkerSpec(root, env, temporal.address));
    }
    step("starting the API");
    node("api", "stack/apiServer.ts");
    const apiUrl = `http://127.0.0.1:${port}`;
    await waitForApi(supervisor, apiUrl);
    step(`API at ${apiUrl}`);
    const info: StackInfo = {
      pid: process.pid,
      dataDir,
      apiUrl,
      temporalAddress: temporal.address,
      databaseUrl: postgres.databaseUrl,
      startedAt: new Date().toISOString(),
    };
    await writeFile(path.join(dataDir, STACK_FILE), `${JSON.stringify(info, null, 2)}\n`);
    return { ...info, ...seeded, crashed, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** The environment every child sees: the settings of docs/architecture.md pointing at this stack. */
function childEnv(extra: NodeJS.ProcessEnv | undefined, dataDir: string, databaseUrl: string, temporalAddress: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    ...extra,
    MEDLOOP_DATA_DIR: dataDir,
    MEDLOOP_BLOB_ROOT: extra?.MEDLOOP_BLOB_ROOT ?? process.env.MEDLOOP_BLOB_ROOT ?? path.join(dataDir, "blobs"),
    MEDLOOP_DATABASE_URL: databaseUrl,
    MEDLOOP_TEMPORAL_ADDRESS: temporalAddress,
  };
}

function gpuWorkerSpec(root: string, env: NodeJS.ProcessEnv, address: string) {
  const { command, args } = pythonWorkerCommand({ address });
  if (!existsSync(command)) throw new Error(`the Python worker ${path.relative(root, command)} is missing; run bash scripts/setup.sh`);
  return {
    name: "gpu-worker",
    command,
    args,
    cwd: root,
    env: { ...env, PYTHONUNBUFFERED: "1" },
    // SIGINT lets the Python worker shut down gracefully: the SDK waits 30 s for running
    // activities, then cancels them (training checkpoints are resumed on the retry).
    stopSignal: "SIGINT" as const,
    stopTimeoutMs: 40_000,
  };
}

/** Migrations, then the demo users and project (services run in this process, on the stack's settings). */
async function migrateAndSeed(
  databaseUrl: string,
  env: NodeJS.ProcessEnv,
  options: StackOptions,
  log: LogSink,
): Promise<{ demoUsers: DemoUser[]; demoProject: string | null }> {
  const pool = createPool(databaseUrl, 2);
  try {
    const applied = await migrate(pool);
    if (applied.length) log(`[stack] applied migrations ${applied.join(", ")}`);
    const demoUsers = (options.demo ?? true) ? await seedDemoUsersForStack(pool) : [];
    const config = loadConfig(env);
    const demoProject = (options.demoProject ?? true)
      ? await seedDemoProject({ pool, blobs: new BlobStore(config.blobRoot) }, config.chaseDir, log)
      : null;
    return { demoUsers, demoProject };
  } finally {
    await pool.end();
  }
}

async function waitForApi(supervisor: Supervisor, apiUrl: string): Promise<void> {
  const died = supervisor.exited("api").then((exit) => {
    throw new Error(`the API exited during start-up (code ${exit.code}); see the [api] lines above`);
  });
  const ready = waitFor("the API", async () => {
    const res = await fetch(`${apiUrl}/api/health`);
    if (!res.ok) throw new Error(`GET /api/health answered ${res.status}`);
  }, 60_000, 300);
  await Promise.race([ready, died]);
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]+@/, "//$1:***@");
}
