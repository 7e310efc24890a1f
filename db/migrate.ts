// Applies the versioned SQL files of db/migrations in order. Each file runs in its own
// transaction together with its schema_migrations row; a session advisory lock keeps two
// processes (API and worker starting together) from migrating at the same time.
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Pool } from "./pool.js";
import { LOCK_KEYS } from "./lockKeys.js";

export const migrationsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), "migrations");
const LOCK_KEY = LOCK_KEYS.MIGRATIONS;

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export async function loadMigrations(dir = migrationsDir): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".sql")).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const match = /^(\d+)_([\w-]+)\.sql$/.exec(file);
    if (!match) throw new Error(`migration file name must look like 001_name.sql: ${file}`);
    const sql = await readFile(path.join(dir, file), "utf8");
    const checksum = createHash("sha256").update(sql).digest("hex");
    migrations.push({ version: Number(match[1]), name: match[2]!, sql, checksum });
  }
  const versions = new Set(migrations.map((m) => m.version));
  if (versions.size !== migrations.length) throw new Error("two migration files share a version number");
  return migrations;
}

/** Applies pending migrations; returns the versions applied by this call. */
export async function migrate(pool: Pool, dir = migrationsDir): Promise<number[]> {
  const migrations = await loadMigrations(dir);
  const client = await pool.connect();
  try {
    await client.query("SELECT pg_advisory_lock($1)", [LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ version: number; checksum: string }>(
      "SELECT version, checksum FROM schema_migrations",
    );
    const applied = new Map(rows.map((r) => [r.version, r.checksum]));
    const done: number[] = [];
    for (const m of migrations) {
      const known = applied.get(m.version);
      if (known !== undefined) {
        // An edited migration that already ran would silently diverge between databases.
        if (known !== m.checksum) throw new Error(`migration ${m.version}_${m.name} changed after it was applied`);
        continue;
      }
      try {
        await client.query("BEGIN");
        await client.query(m.sql);
        await client.query("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", [
          m.version,
          m.name,
          m.checksum,
        ]);
        await client.query("COMMIT");
      } catch (err) {
        await client.query("ROLLBACK").catch(() => undefined);
        throw new Error(`migration ${m.version}_${m.name} failed: ${(err as Error).message}`, { cause: err });
      }
      done.push(m.version);
    }
    return done;
  } finally {
    await client.query("SELECT pg_advisory_unlock($1)", [LOCK_KEY]).catch(() => undefined);
    client.release();
  }
}

// `tsx db/migrate.ts` migrates the database named by MEDLOOP_DATABASE_URL.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { createPool } = await import("./pool.js");
  const url = process.env.MEDLOOP_DATABASE_URL;
  if (!url) {
    console.error("db/migrate.ts: set MEDLOOP_DATABASE_URL");
    process.exit(2);
  }
  const pool = createPool(url, 1);
  try {
    const done = await migrate(pool);
    console.log(done.length ? `applied migrations ${done.join(", ")}` : "database is up to date");
  } finally {
    await pool.end();
  }
}
