import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFile, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { LOCK_KEYS } from "../../db/lockKeys.js";
import { loadMigrations, migrate, migrationsDir } from "../../db/migrate.js";
import { appendAudit } from "../../services/audit.js";
import { verifyAuditChain } from "../../services/auditChain.js";
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

  it("seal the audit rows written before the hash chain existed, in id order", async () => {
    const before = await createTestDatabase({ migrated: false });
    const dir = await mkdtemp(path.join(os.tmpdir(), "medloop-migrations-"));
    try {
      for (const m of await readdir(migrationsDir)) {
        if (Number(m.slice(0, 3)) < 85) await copyFile(path.join(migrationsDir, m), path.join(dir, m));
      }
      await migrate(before.pool, dir);
      for (let i = 0; i < 3; i++) await before.pool.query("INSERT INTO audit_log (action, entity, details) VALUES ($1, 'old', '{}')", [`old.${i}`]);
      expect(await migrate(before.pool)).toContain(85);
      const { rows } = await before.pool.query<{ action: string; chain_seq: number }>("SELECT action, chain_seq::int FROM audit_log ORDER BY id");
      expect(rows).toEqual([0, 1, 2].map((i) => ({ action: `old.${i}`, chain_seq: i + 1 })));
      await appendAudit(before.pool, { actorId: null, action: "new", entity: "test" });
      expect(await verifyAuditChain(before.pool)).toMatchObject({ ok: true, rows: 4 });
    } finally {
      await before.drop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("give every advisory lock its own key, and the audit chain the key db/lockKeys.ts names", async () => {
    const keys = Object.values(LOCK_KEYS);
    expect(new Set(keys).size).toBe(keys.length);
    const chain = await readFile(path.join(migrationsDir, "085_audit_chain.sql"), "utf8");
    const used = [...chain.matchAll(/pg_advisory_xact_lock\((\d+)\)/g)].map((m) => Number(m[1]));
    expect(used).toEqual([LOCK_KEYS.AUDIT_CHAIN]);
  });
});
