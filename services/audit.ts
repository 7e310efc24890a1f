// Append-only audit log. The database trigger (db/migrations/001_initial.sql) rejects UPDATE,
// DELETE and TRUNCATE, except the seal that fills a new row's hash-chain columns when its
// transaction commits (db/migrations/085_audit_chain.sql; verified by services/auditChain.ts), so
// this module only ever inserts and reads.
import type { Queryable } from "../db/pool.js";

export interface AuditEntry {
  actorId: number | null;
  action: string;
  entity: string;
  entityId?: string | number | null;
  details?: Record<string, unknown>;
}

export interface AuditRow {
  id: number;
  at: Date;
  actor_id: number | null;
  actor_email: string | null;
  action: string;
  entity: string;
  entity_id: string | null;
  details: Record<string, unknown>;
}

export async function appendAudit(db: Queryable, entry: AuditEntry): Promise<void> {
  await db.query(
    "INSERT INTO audit_log (actor_id, action, entity, entity_id, details) VALUES ($1, $2, $3, $4, $5)",
    [
      entry.actorId,
      entry.action,
      entry.entity,
      entry.entityId === undefined || entry.entityId === null ? null : String(entry.entityId),
      JSON.stringify(entry.details ?? {}),
    ],
  );
}

export interface AuditFilter {
  entity?: string;
  entityId?: string;
  action?: string;
  actorId?: number;
  limit?: number;
  beforeId?: number;
}

export async function listAudit(db: Queryable, filter: AuditFilter = {}): Promise<AuditRow[]> {
  const where: string[] = [];
  const args: unknown[] = [];
  const add = (sql: string, value: unknown) => {
    args.push(value);
    where.push(sql.replace("?", `$${args.length}`));
  };
  if (filter.entity) add("a.entity = ?", filter.entity);
  if (filter.entityId) add("a.entity_id = ?", filter.entityId);
  if (filter.action) add("a.action = ?", filter.action);
  if (filter.actorId !== undefined) add("a.actor_id = ?", filter.actorId);
  if (filter.beforeId !== undefined) add("a.id < ?", filter.beforeId);
  args.push(Math.min(filter.limit ?? 100, 1000));
  const { rows } = await db.query<AuditRow>(
    `SELECT a.id, a.at, a.actor_id, u.email AS actor_email, a.action, a.entity, a.entity_id, a.details
       FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id
      ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
      ORDER BY a.id DESC LIMIT $${args.length}`,
    args,
  );
  return rows;
}
