import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadMigrations, migrate } from "../../db/migrate.js";
import { appendAudit } from "../../services/audit.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

describe("migrations", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase({ migrated: false });
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("apply every version once and are idempotent", async () => {
    const all = (await loadMigrations()).map((m) => m.version);
    expect(all.length).toBeGreaterThan(0);
    expect(await migrate(db.pool)).toEqual(all);
    expect(await migrate(db.pool)).toEqual([]);
    const { rows } = await db.pool.query<{ version: number }>("SELECT version FROM schema_migrations ORDER BY version");
    expect(rows.map((r) => r.version)).toEqual(all);
  });

  it("serialise concurrent migrators with the advisory lock", async () => {
    const results = await Promise.all([migrate(db.pool), migrate(db.pool), migrate(db.pool)]);
    expect(results).toEqual([[], [], []]);
  });

  it("keep the audit log append-only", async () => {
    await appendAudit(db.pool, { actorId: null, action: "test.event", entity: "test", entityId: 1, details: { a: 1 } });
    await expect(db.pool.query("UPDATE audit_log SET action = 'forged'")).rejects.toThrow(/append-only/);
    await expect(db.pool.query("DELETE FROM audit_log")).rejects.toThrow(/append-only/);
    await expect(db.pool.query("TRUNCATE audit_log")).rejects.toThrow(/append-only/);
    const { rows } = await db.pool.query<{ action: string }>("SELECT action FROM audit_log");
    expect(rows.map((r) => r.action)).toEqual(["test.event"]);
  });
});
