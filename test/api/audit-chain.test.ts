// The audit log's hash chain (db/migrations/085_audit_chain.sql, services/auditChain.ts) on the
// real PostgreSQL: rows written concurrently are sealed into one unbroken chain; a row changed or
// deleted with the append-only triggers switched off (what a database owner can do) is found by
// `medloop audit verify` (exit 1 naming the row) and GET /api/audit/verify; a chain rewritten
// from that row on is caught by a head kept from before; the seal cannot be used to edit a row.
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendAudit } from "../../services/audit.js";
import { auditChainHead, verifyAuditChain } from "../../services/auditChain.js";
import { startTestApi, type TestApi } from "../helpers/api.js";

const repoRoot = path.resolve(import.meta.dirname, "../..");

describe("tamper-evident audit log", () => {
  let api: TestApi;

  const cli = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await promisify(execFile)(process.execPath, [path.join(repoRoot, "bin/medloop.mjs"), "audit", ...args], {
        cwd: repoRoot,
        env: { ...process.env, MEDLOOP_DATABASE_URL: api.db.url, MEDLOOP_DATA_DIR: api.dataDir },
      });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };

  /** What a database owner can do: switch the append-only triggers off, change rows, switch them on. */
  const asOwner = async (sql: string, args: unknown[] = []) => {
    const client = await api.db.pool.connect();
    try {
      await client.query("BEGIN");
      await client.query("ALTER TABLE audit_log DISABLE TRIGGER USER");
      await client.query(sql, args);
      await client.query("ALTER TABLE audit_log ENABLE TRIGGER USER");
      await client.query("COMMIT");
    } finally {
      client.release();
    }
  };

  beforeAll(async () => {
    api = await startTestApi();
    // Twenty writers at once, each in its own transaction: the chain must not fork.
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        appendAudit(api.db.pool, { actorId: null, action: "test.write", entity: "thing", entityId: i, details: { i, text: "a\nb \u00e9" } }),
      ),
    );
  });
  afterAll(async () => {
    await api?.close();
  });

  it("seals concurrent writers into one chain that verifies, in the service, the CLI and the API", async () => {
    const { rows } = await api.db.pool.query<{ n: string; max: string; nulls: string }>(
      "SELECT count(*) AS n, max(chain_seq) AS max, count(*) FILTER (WHERE hash IS NULL) AS nulls FROM audit_log",
    );
    expect(Number(rows[0]!.n)).toBeGreaterThanOrEqual(20);
    expect(Number(rows[0]!.max)).toBe(Number(rows[0]!.n)); // positions 1..n, no gap, no fork
    expect(Number(rows[0]!.nulls)).toBe(0);
    const report = await verifyAuditChain(api.db.pool);
    expect(report.broken).toBeNull();
    expect(report).toMatchObject({ ok: true, rows: Number(rows[0]!.n), broken: null });

    const cliOk = await cli("verify");
    expect(cliOk.code, cliOk.stderr).toBe(0);
    expect(cliOk.stdout).toContain("the audit chain holds");
    const head = await cli("head");
    expect(head.stdout.trim()).toBe(`${report.head!.chain_seq}:${report.head!.hash}`);

    const viaApi = await api.call("GET", "/api/audit/verify", { token: api.tokens.auditor });
    expect(viaApi.status).toBe(200);
    expect(viaApi.json).toMatchObject({ ok: true, broken: null });
    expect((await api.call("GET", "/api/audit/verify", { token: api.tokens.doctor })).status).toBe(403);
    expect((await api.call("GET", "/api/audit/verify?head=12:nothex", { token: api.tokens.auditor })).status).toBe(400);
  });

  it("refuses edits through the seal: a sealed row cannot be updated, even its chain columns", async () => {
    const { rows } = await api.db.pool.query<{ id: string }>("SELECT id FROM audit_log ORDER BY chain_seq LIMIT 1");
    const id = rows[0]!.id;
    await expect(api.db.pool.query("UPDATE audit_log SET details = '{}' WHERE id = $1", [id])).rejects.toThrow(/append-only/);
    await expect(api.db.pool.query("UPDATE audit_log SET hash = 'x' WHERE id = $1", [id])).rejects.toThrow(/append-only/);
    await expect(api.db.pool.query("DELETE FROM audit_log WHERE id = $1", [id])).rejects.toThrow(/append-only/);
  });

  it("names the first row changed behind the triggers' back; a kept head catches a rewritten chain", async () => {
    const kept = (await auditChainHead(api.db.pool))!;
    const { rows } = await api.db.pool.query<{ id: string; chain_seq: string }>("SELECT id, chain_seq FROM audit_log ORDER BY chain_seq OFFSET 7 LIMIT 1");
    const target = rows[0]!;
    await asOwner("UPDATE audit_log SET details = details || '{\"i\": 999}' WHERE id = $1", [target.id]);

    const report = await verifyAuditChain(api.db.pool);
    expect(report.ok).toBe(false);
    expect(report.broken).toMatchObject({ id: Number(target.id), chain_seq: Number(target.chain_seq) });
    expect(report.broken!.reason).toMatch(/content does not match/);
    expect(report.rows).toBe(Number(target.chain_seq) - 1);
    const cliBroken = await cli("verify");
    expect(cliBroken.code).toBe(1);
    expect(cliBroken.stderr).toContain(`broken at row ${target.id}`);
    const viaApi = await api.call("GET", "/api/audit/verify", { token: api.tokens.admin });
    expect(viaApi.json.broken.id).toBe(Number(target.id));

    // The owner rewrites the chain from there on with the database's own function: the chain
    // holds again by itself, but not against the head kept before.
    await asOwner(`DO $$
      DECLARE r audit_log; prev text; BEGIN
        FOR r IN SELECT * FROM audit_log WHERE chain_seq >= ${target.chain_seq} ORDER BY chain_seq LOOP
          SELECT hash INTO prev FROM audit_log WHERE chain_seq = r.chain_seq - 1;
          UPDATE audit_log SET prev_hash = prev, hash = audit_log_digest(prev, r.chain_seq, r) WHERE id = r.id;
        END LOOP; END $$`);
    expect((await verifyAuditChain(api.db.pool)).ok).toBe(true);
    const againstKept = await cli("verify", "--head", `${kept.chain_seq}:${kept.hash}`);
    expect(againstKept.code).toBe(1);
    expect(againstKept.stderr).toMatch(/kept head/);
  });

  it("tells a missing value from an empty one: entity_id NULL changed to '' breaks the chain", async () => {
    await appendAudit(api.db.pool, { actorId: null, action: "test.null", entity: "thing" });
    expect((await verifyAuditChain(api.db.pool)).ok).toBe(true); // the chain rewritten above holds by itself
    const { rows } = await api.db.pool.query<{ id: string }>("SELECT id FROM audit_log WHERE action = 'test.null'");
    await asOwner("UPDATE audit_log SET entity_id = '' WHERE id = $1", [rows[0]!.id]);
    const report = await verifyAuditChain(api.db.pool);
    expect(report.broken).toMatchObject({ id: Number(rows[0]!.id) });
  });

  it("finds a deleted row by the gap it leaves", async () => {
    const { rows } = await api.db.pool.query<{ id: string; chain_seq: string }>("SELECT id, chain_seq FROM audit_log ORDER BY chain_seq OFFSET 3 LIMIT 2");
    await asOwner("DELETE FROM audit_log WHERE id = $1", [rows[0]!.id]);
    const report = await verifyAuditChain(api.db.pool);
    expect(report.ok).toBe(false);
    expect(report.broken).toMatchObject({ id: Number(rows[1]!.id), chain_seq: Number(rows[1]!.chain_seq) });
    expect(report.broken!.reason).toMatch(/missing/);
  });
});
