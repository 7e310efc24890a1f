// A throw-away PostgreSQL database per test file: created on the machine's server (or the
// one named by MEDLOOP_TEST_DATABASE_URL), migrated, and dropped afterwards.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { migrate } from "../../db/migrate.js";
import { createPool, type Pool } from "../../db/pool.js";

export const adminUrl = process.env.MEDLOOP_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

export interface TestDatabase {
  url: string;
  name: string;
  pool: Pool;
  drop(): Promise<void>;
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Creates an empty database; `migrated` (default true) applies db/migrations. */
export async function createTestDatabase(opts: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const name = `medloop_test_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const url = withDatabase(adminUrl, name);
  const pool = createPool(url, 5);
  if (opts.migrated ?? true) await migrate(pool);
  return {
    url,
    name,
    pool,
    async drop() {
      await pool.end();
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

/** Row counts of the tables a rejected request must leave unchanged. */
export async function rowCounts(pool: Pool): Promise<Record<string, number>> {
  const tables = ["users", "projects", "images", "tasks", "annotation_versions", "campaigns", "rounds", "models"];
  const out: Record<string, number> = {};
  for (const t of tables) {
    const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${t}`);
    out[t] = rows[0]!.n;
  }
  return out;
}
